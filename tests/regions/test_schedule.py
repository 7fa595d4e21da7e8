"""The scheduled failover check: a ``dr-check`` interval schedule in the shared scheduler
store while ``dr.check_interval_seconds`` is set, none while it is 0; a firing runs the
installed checks."""

from __future__ import annotations

from pathlib import Path

import anyio

from registry.meta.db import Database, create_engine, init_schema
from schedules import jobs
from schedules.scheduler import DR_CHECK, ScheduleService


async def scenario(url: str) -> None:
    engine = create_engine(url)
    await init_schema(engine)
    service = ScheduleService(Database(engine), identity="node-1", reconcile_seconds=0)
    runs: list[str] = []

    async def checks() -> None:
        runs.append("checked")

    try:
        async with service.scheduler:
            service.check_regions_every(90.0, checks)
            await service.sync()
            (schedule,) = [s for s in await service.scheduler.get_schedules() if s.id == DR_CHECK]
            assert schedule.metadata == {"every": 90.0}
            assert schedule.trigger.seconds == 90  # type: ignore[attr-defined]
            assert schedule.task_id == "schedules.jobs:check_regions"
            await service.sync()  # unchanged: kept as it is
            assert [s.id for s in await service.scheduler.get_schedules()] == [DR_CHECK]
            await jobs.check_regions()  # what a firing runs
            assert runs == ["checked"]
            service.check_regions_every(0.0, None)
            await service.sync()
            assert await service.scheduler.get_schedules() == []
            await jobs.check_regions()  # nothing installed: only logged
            assert runs == ["checked"]
    finally:
        jobs.install_region_checks(None)
        await engine.dispose()


def test_dr_check_schedule_follows_the_setting(tmp_path: Path) -> None:
    anyio.run(scenario, f"sqlite+aiosqlite:///{tmp_path / 'sched.db'}")
