"""The lag of a real event policy falling behind on purpose: its destination (CNCF
distribution) is stopped, a push waits, and the lag — computed from the running server's
database at an injected clock, and shown by its ``/metrics`` — is the age of that push; once
the destination is back and a run succeeds, the lag is 0."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx

from engine.lag import LagSample, replication_lag
from engine.metrics import ReplicationMetrics
from registry.meta.db import Database, create_engine
from tests.metrics.scrape import parse, scrape, value
from tests.replication.support import add_endpoint, add_policy, api, digest_of
from tests.schedules.test_events import eventually
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

EVENT = {"type": "event_based"}


def pushed_at(server: SeawallProcess, repo: str) -> datetime:
    """When the registry wrote the push event of ``repo`` (its outbox row)."""
    with sqlite3.connect(server.data_dir / "seawall.db") as db:
        row = db.execute(
            "SELECT created_at FROM event WHERE action = 'push' AND repository = ?", (repo,)
        ).fetchone()
    return datetime.fromisoformat(row[0]).replace(tzinfo=UTC)


def lag_at(server: SeawallProcess, now: datetime) -> tuple[dict[str, LagSample], str]:
    """The samples of ``engine.lag`` and the metrics text, at ``now``, read from the live
    server's database by this process."""

    async def go() -> tuple[dict[str, LagSample], str]:
        from prometheus_client.exposition import generate_latest

        engine = create_engine(f"sqlite+aiosqlite:///{server.data_dir / 'seawall.db'}")
        try:
            db = Database(engine)
            samples = {s.policy: s for s in await replication_lag(db, now)}
            families = await ReplicationMetrics(db, clock=lambda: now).collect()

            class Families:
                def collect(self) -> object:
                    return families

            return samples, generate_latest(Families()).decode()  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return anyio.run(go)


def test_lag_is_the_age_of_the_oldest_push_not_replicated(
    local: SeawallProcess, tmp_path: Path
) -> None:
    dist = DistributionProcess(tmp_path / "dist").start()
    try:
        with (
            client(local.url, "admin", local.admin_password) as c,
            api(local.url, local.admin_password) as a,
            httpx.Client(base_url=dist.url) as d,
        ):
            pid = add_policy(a, "to-dist", dest=add_endpoint(a, "dist", dist.url), trigger=EVENT)
            first, _ = push_image(c, "apps/first", "1", seed="first")
            eventually(lambda: digest_of(d, "apps/first", "1") == first, what="first push")
            # once its run has ended (after the tag is there), no lag, however late it is read
            later = pushed_at(local, "apps/first") + timedelta(days=1)
            eventually(lambda: lag_at(local, later)[0]["to-dist"].lag_seconds == 0.0)

            dist.stop()  # the destination goes away; pushes wait
            push_image(c, "apps/late", "1", seed="late")
            push_image(c, "apps/later", "1", seed="later")
            late = pushed_at(local, "apps/late")
            now = late + timedelta(seconds=42.5)  # the clock the lag is measured at
            samples, text = lag_at(local, now)
            assert samples["to-dist"].oldest_change_at == late
            assert samples["to-dist"].lag_seconds == 42.5
            labels = {"policy": "to-dist", "target": "dist"}
            assert value(parse(text), "seawall_replication_lag_seconds", **labels) == 42.5
            # the server's own /metrics: the same oldest change (its lag is at its own clock)
            served = scrape(local.url, ("admin", local.admin_password))
            oldest = "seawall_replication_oldest_change_timestamp_seconds"
            assert value(served, oldest, **labels) == late.timestamp()
            assert value(served, "seawall_replication_lag_seconds", **labels) > 0

            dist.start()  # back: the waiting run's next attempt, or a run now, catches up
            a.post("/replication/executions", json={"policy_id": pid})
            eventually(
                lambda: lag_at(local, now)[0]["to-dist"].lag_seconds == 0.0,
                timeout_s=90,
                what="caught up",
            )
            assert digest_of(d, "apps/later", "1") is not None
            served = scrape(local.url, ("admin", local.admin_password))
            assert value(served, "seawall_replication_lag_seconds", **labels) == 0.0
            assert value(served, oldest, **labels) == 0.0
    finally:
        dist.stop()
