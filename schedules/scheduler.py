"""APScheduler 4 under Seawall: cron schedules of policies and reconciliation of event policies.

Schedules live in the metadata database (APScheduler's SQLAlchemy data store), so every node
sharing the database sees the same schedules and a firing is acquired by exactly one node. The
policy table stays the source of truth: :meth:`ScheduleService.sync` makes the scheduler's
schedules match it (on start, when the API changes a policy, and every few seconds for changes
made on other nodes).

- ``policy-<id>``: a ``scheduled`` policy's cron (with its time zone). A firing missed while
  Seawall was down runs once when it starts (no misfire limit, coalesced to the latest).
- ``reconcile-<id>``: an ``event_based`` policy's whole-policy run every
  ``reconcile_seconds`` (the first one interval after the policy is created or changed; run
  it by hand for an initial sync): whatever events could not carry (a remote that never sent
  its webhook, a run that failed) is caught up.
- ``dr-check``: the failover checks of every region every ``dr.check_interval_seconds``
  (:meth:`ScheduleService.check_regions_every`; absent while it is 0). Give every node the
  same interval: each keeps the schedule in step with its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from anyio.abc import TaskGroup
from apscheduler import AsyncScheduler, CoalescePolicy, ConflictPolicy, ScheduleUpdated
from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
from apscheduler.eventbrokers.local import LocalEventBroker
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.cron import CronError, cron_trigger
from engine.state.models import Policy
from registry.meta.db import Database
from schedules.jobs import check_regions, fire_policy, install_region_checks

__all__ = ["ScheduleService", "create_scheduler_tables"]

log = logging.getLogger("seawall.schedules")
P = Policy.__table__  # type: ignore[attr-defined]
SYNC_SECONDS = 5.0
FIRE_TASK = "schedules.jobs:fire_policy"
DR_CHECK = "dr-check"  # the failover checks' schedule


def create_scheduler_tables(conn: Connection) -> None:
    """APScheduler's tables and its schema-version row, made on ``conn`` if missing: run in the
    schema step (under the schema lock), so workers or nodes starting at once on a new database
    do not race each other's ``CREATE TABLE`` in the data store's own start (one of them failed
    with "table … already exists" and ran without its lifespan)."""
    metadata = SQLAlchemyDataStore(conn.engine).get_table_definitions()
    metadata.create_all(conn)
    version = metadata.tables["metadata"]
    if conn.execute(select(version.c.schema_version)).first() is None:
        conn.execute(version.insert().values(schema_version=1))


class ScheduleService:
    def __init__(self, db: Database, *, identity: str, reconcile_seconds: float = 3600.0) -> None:
        self.db = db
        self.reconcile_seconds = reconcile_seconds
        self.scheduler = AsyncScheduler(
            SQLAlchemyDataStore(db.engine),
            # Local even with several nodes: APScheduler 4.0.0a6's asyncpg broker fails under
            # anyio 4.x (its LISTEN callback calls start_soon outside a task). Nodes learn of
            # schedule changes made elsewhere through their own sync loop (see sync).
            LocalEventBroker(),
            identity=identity,
            cleanup_interval=timedelta(minutes=15),
        )
        self._wake = anyio.Event()
        self.dr_check_seconds = 0.0  # see check_regions_every
        logging.getLogger("apscheduler").setLevel(
            max(logging.WARNING, logging.getLogger().getEffectiveLevel())
        )

    def wake(self) -> None:
        """A policy may have changed: sync the schedules now."""
        self._wake.set()

    def check_regions_every(
        self, seconds: float, check: Callable[[], Awaitable[object]] | None
    ) -> None:
        """Run ``check`` (the failover checks) every ``seconds`` on whichever node acquires
        the firing (0: the ``dr-check`` schedule is removed); set before :meth:`start`."""
        self.dr_check_seconds = seconds
        install_region_checks(check)

    async def start(self, tg: TaskGroup) -> None:
        await tg.start(self._serve, name="schedules")

    async def _serve(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with self.scheduler:
            await self.sync()
            await self.scheduler.start_in_background()
            task_status.started()
            while True:
                with anyio.move_on_after(SYNC_SECONDS):
                    await self._wake.wait()
                self._wake = anyio.Event()
                try:
                    await self.sync()
                except Exception:
                    log.exception("syncing schedules with policies failed; retrying")

    def _wanted(self, rows: list[Any]) -> dict[str, tuple[Any, dict[str, Any], str]]:
        """``{schedule id: (trigger, metadata, trigger label)}`` the policies ask for."""
        wanted: dict[str, tuple[Any, dict[str, Any], str]] = {}
        for pid, trigger_type, cron, tz in rows:
            if trigger_type == "scheduled" and cron:
                meta = {"policy_id": pid, "cron": cron, "tz": tz or "UTC"}
                try:
                    wanted[f"policy-{pid}"] = (cron_trigger(cron, tz or "UTC"), meta, "scheduled")
                except CronError as e:
                    log.error("policy %s: not scheduled: %s", pid, e)
            elif trigger_type == "event_based" and self.reconcile_seconds > 0:
                meta = {"policy_id": pid, "every": self.reconcile_seconds}
                first = datetime.now(UTC) + timedelta(seconds=self.reconcile_seconds)
                trigger = IntervalTrigger(seconds=self.reconcile_seconds, start_time=first)
                wanted[f"reconcile-{pid}"] = (trigger, meta, "event_based")
        return wanted

    async def sync(self) -> None:
        """Make the scheduler's schedules match the enabled policies' triggers, and wake this
        node's schedule loop for the earliest fire time in the shared store (a schedule another
        node added, or one a dead node held: the local event broker does not hear of them)."""
        async with self.db.read() as c:
            rows = (
                await c.execute(
                    select(P.c.id, P.c.trigger_type, P.c.trigger_cron, P.c.trigger_timezone).where(
                        P.c.enabled.is_(True)
                    )
                )
            ).all()
        wanted = self._wanted(list(rows))
        stored = await self.scheduler.get_schedules()
        times = [s.next_fire_time for s in stored if s.next_fire_time]
        if times:
            await self.scheduler.event_broker.publish_local(
                ScheduleUpdated(schedule_id="*", task_id=FIRE_TASK, next_fire_time=min(times))
            )
        existing = {s.id: s for s in stored if s.id.startswith(("policy-", "reconcile-"))}
        for sid in existing:
            if sid not in wanted:
                await self.scheduler.remove_schedule(sid)
                log.info("schedule %s removed", sid)
        for sid, (trigger, meta, label) in wanted.items():
            current = existing.get(sid)
            if current is not None and current.metadata == meta:
                continue
            await self.scheduler.add_schedule(
                fire_policy,
                trigger,
                id=sid,
                args=[meta["policy_id"], label],
                coalesce=CoalescePolicy.latest,
                misfire_grace_time=None,
                metadata=meta,
                conflict_policy=ConflictPolicy.replace,
            )
            log.info("schedule %s set: %s", sid, meta)
        await self._sync_region_checks({s.id: s for s in stored})

    async def _sync_region_checks(self, stored: dict[str, Any]) -> None:
        """The ``dr-check`` schedule as :attr:`dr_check_seconds` asks (see the module)."""
        current = stored.get(DR_CHECK)
        if self.dr_check_seconds <= 0:
            if current is not None:
                await self.scheduler.remove_schedule(DR_CHECK)
                log.info("schedule %s removed", DR_CHECK)
            return
        meta: dict[str, Any] = {"every": self.dr_check_seconds}
        if current is not None and current.metadata == meta:
            return
        await self.scheduler.add_schedule(
            check_regions,
            IntervalTrigger(seconds=self.dr_check_seconds),
            id=DR_CHECK,
            coalesce=CoalescePolicy.latest,
            misfire_grace_time=None,
            metadata=meta,
            conflict_policy=ConflictPolicy.replace,
        )
        log.info("schedule %s set: %s", DR_CHECK, meta)
