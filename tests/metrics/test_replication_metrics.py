"""The replication and check families, computed from a real database at an injected clock and
read back through the Prometheus text parser: counts by outcome, bytes, backlog, the lag
gauge; repeated scrapes count each row once."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from engine.metrics import CheckMetrics, CheckResult, ReplicationMetrics
from tests.metrics.state import TK, State, X, at, digest, open_state, scope

D1, D2 = digest("one"), digest("two")
NOW = 1000.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class _Families:
    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Sequence[Metric]:
        return self.families


def scrape(families: Sequence[Metric]) -> Samples:
    """The families as Prometheus would read them: ``{(name, sorted labels): value}``."""
    text = generate_latest(_Families(families)).decode()  # type: ignore[arg-type]
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


async def _world(s: State) -> int:
    """Two policies; finished, running and dry runs with tasks; an event pending for p."""
    p = await s.policy("p", dest=await s.endpoint("dist"))
    q = await s.policy("q", dest=await s.endpoint("dr"), trigger="scheduled")
    ok = await s.run(p, "Succeed", 1, 2, scope(("apps/a", D1, "1")))
    await s.task(ok, "apps/a", D1, ["1"], bytes_copied=1000, end=2)
    await s.task(ok, "apps/a", D2, ["2"], outcome="skipped-identical", end=2)
    bad = await s.run(p, "Failed", 3, 4, scope(("apps/a", D2, "3")))
    await s.task(bad, "apps/a", D2, ["3"], status="Failed", outcome="failed", end=4)
    running = await s.run(q, "InProgress", 5, None, trigger="scheduled")
    await s.task(running, "apps/b", D1, ["x"], bytes_copied=500, end=6)
    await s.task(running, "apps/b", D2, ["y"], status="Pending", outcome="", end=None)
    dry = await s.run(q, "Succeed", 7, 8, trigger="manual", dry_run=True)
    await s.task(dry, "apps/b", D1, ["x"], outcome="would-copy", end=8)
    consumed = await s.event(2.5, "push", "apps/a", D2, "3")  # in the failed run
    await s.cursor(consumed)
    await s.event(9, "push", "apps/z", D1, "9")  # not consumed yet
    return running


def test_families_from_the_database(database_url: str) -> None:
    async def go() -> tuple[Samples, Samples, Samples]:
        s = await open_state(database_url)
        try:
            running = await _world(s)
            metrics = ReplicationMetrics(s.db, clock=lambda: at(NOW))
            first = scrape(await metrics.collect())
            # the running run ends; another one runs and ends; both scraped again, twice
            await s.task(running, "apps/b", D2, ["y"], bytes_copied=250, end=NOW - 1)
            async with s.db.write() as c:
                await c.execute(TK.delete().where(TK.c.status == "Pending"))
                await c.execute(
                    X.update().where(X.c.id == running).values(status="Succeed", end_time=at(NOW))
                )
            second = scrape(await metrics.collect())
            third = scrape(await metrics.collect())
            return first, second, third
        finally:
            await s.close()

    first, second, third = anyio.run(go)
    runs = "seawall_replication_runs_total"
    assert value(first, runs, policy="p", trigger="event_based", status="Succeed") == 1
    assert value(first, runs, policy="p", trigger="event_based", status="Failed") == 1
    assert value(first, runs, policy="q", trigger="manual", status="Succeed") is None  # dry
    active = "seawall_replication_runs_active"
    assert value(first, active, policy="q", status="InProgress") == 1
    tasks = "seawall_replication_tasks_total"
    assert value(first, tasks, policy="p", operation="copy", outcome="copied") == 1
    assert value(first, tasks, policy="p", operation="copy", outcome="skipped-identical") == 1
    assert value(first, tasks, policy="p", operation="copy", outcome="failed") == 1
    assert value(first, tasks, policy="q", operation="copy", outcome="copied") == 1
    assert value(first, tasks, policy="q", operation="copy", outcome="would-copy") is None
    copied = "seawall_replication_copied_bytes_total"
    assert value(first, copied, policy="p") == 1000
    assert value(first, copied, policy="q") == 500
    assert value(first, "seawall_replication_event_backlog") == 1
    # p: the failed push at 2.5 is the oldest change not replicated; q has not succeeded
    # since it was created (an hour before T0): the same push is its oldest change
    lag = "seawall_replication_lag_seconds"
    assert value(first, lag, policy="p", target="dist") == NOW - 2.5
    assert value(first, lag, policy="q", target="dr") == NOW - 2.5
    oldest = "seawall_replication_oldest_change_timestamp_seconds"
    assert value(first, oldest, policy="p", target="dist") == at(2.5).timestamp()
    info = "seawall_replication_policy_info"
    labels = {"source": "local", "target": "dist", "trigger": "event_based", "enabled": "true"}
    assert value(first, info, policy="p", **labels) == 1

    assert value(second, runs, policy="q", trigger="scheduled", status="Succeed") == 1
    assert value(second, lag, policy="q", target="dr") == NOW - 9  # since its run (at 5)
    assert value(second, active, policy="q", status="InProgress") is None
    assert value(second, tasks, policy="q", operation="copy", outcome="copied") == 2
    assert value(second, copied, policy="q") == 750
    assert value(second, copied, policy="p") == 1000  # settled rows counted once
    assert third == second


def test_check_results_recorded_here_and_loaded_newest_wins() -> None:
    loaded = [
        CheckResult("eu", False, 12.5, 3, 1, at(50)),
        CheckResult("us", True, 0.0, 0, 0, at(10)),
    ]

    async def load() -> list[CheckResult]:
        return loaded

    checks = CheckMetrics(load=load)
    checks.record_check("us", False, 99.0, ["a:1", "b:2"], ["c:3"], checked_at=at(20))
    checks.record_check("eu", True, 0.0, 0, 0, checked_at=at(40))  # older than the loaded one
    samples = scrape(anyio.run(checks.collect))
    assert value(samples, "seawall_dr_check_healthy", region="eu") == 0
    assert value(samples, "seawall_dr_check_lag_seconds", region="eu") == 12.5
    assert value(samples, "seawall_dr_check_missing_artifacts", region="eu") == 3
    assert value(samples, "seawall_dr_check_healthy", region="us") == 0
    assert value(samples, "seawall_dr_check_missing_artifacts", region="us") == 2
    assert value(samples, "seawall_dr_check_differing_tags", region="us") == 1
    assert value(samples, "seawall_dr_check_timestamp_seconds", region="us") == at(20).timestamp()
    checks.forget("us")
    loaded.pop()
    samples = scrape(anyio.run(checks.collect))
    assert value(samples, "seawall_dr_check_healthy", region="us") is None
