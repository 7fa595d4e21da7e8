"""The replication lag's definition, rule by rule (``engine.lag``'s docstring), on states
written into a real database — SQLite and PostgreSQL — and measured at a clock the test sets:
the figure is exact, never a wall-clock reading."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from engine.lag import LOCAL_TARGET, LagBasis, LagMemo, LagSample, replication_lag
from tests.metrics.state import State, at, digest, open_state, scope
from tests.support.postgres import PostgresCluster

D1, D2, D3 = digest("one"), digest("two"), digest("three")
NOW = 1000.0  # seconds after T0, when every lag below is measured


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A new empty database each call."""
    if request.param == "sqlite":
        names = iter(range(1000))
        return lambda: f"sqlite+aiosqlite:///{tmp_path / f'lag{next(names)}.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    return cluster.create_database


def measure(
    new_db: Callable[[], str], build: Callable[[State], Awaitable[None]]
) -> dict[str, LagSample]:
    """Build a state in a new database, then the samples at NOW by policy name."""

    async def go() -> dict[str, LagSample]:
        state = await open_state(new_db())
        try:
            await build(state)
            return {s.policy: s for s in await replication_lag(state.db, at(NOW))}
        finally:
            await state.close()

    return anyio.run(go)


def lag_of(samples: dict[str, LagSample], policy: str = "p") -> float:
    return samples[policy].lag_seconds


def test_a_push_replicated_by_its_event_run_is_no_lag(db_url: Callable[[], str]) -> None:
    async def build(s: State) -> None:
        pid = await s.policy("p", dest=await s.endpoint("dist"))
        e = await s.event(10, "push", "apps/a", D1, "1")
        await s.cursor(e)
        run = await s.run(pid, "Succeed", 10.1, 11, scope(("apps/a", D1, "1")))
        await s.task(run, "apps/a", D1, ["1"])

    samples = measure(db_url, build)
    assert samples["p"] == LagSample("p", 1, "dist", 1, 0.0, None, LagBasis.EVENTS)


def test_an_unconsumed_event_is_lag_from_when_it_was_written(db_url: Callable[[], str]) -> None:
    async def build(s: State) -> None:
        await s.policy("p", dest=await s.endpoint("dist"))
        done = await s.event(5, "push", "apps/a", D1, "1")
        await s.cursor(done)  # consumed and (below) replicated
        run = await s.run(1, "Succeed", 5.5, 6, scope(("apps/a", D1, "1")))
        await s.task(run, "apps/a", D1, ["1"])
        await s.event(12.25, "push", "apps/b", D2, "1")  # after the cursor

    samples = measure(db_url, build)
    assert lag_of(samples) == NOW - 12.25
    assert samples["p"].oldest_change_at == at(12.25)


def test_a_change_in_a_run_that_has_not_succeeded_is_lag(db_url: Callable[[], str]) -> None:
    for status, end in (("Pending", None), ("InProgress", None), ("Failed", 40.0)):

        async def build(s: State, status: str = status, end: float | None = end) -> None:
            pid = await s.policy("p", dest=await s.endpoint("dist"))
            await s.event(20, "push", "apps/a", D1, "1")
            e = await s.event(30, "push", "apps/a", D2, "2")
            await s.cursor(e)
            await s.run(pid, status, 20.5, end, scope(("apps/a", D1, "1"), ("apps/a", D2, "2")))

        assert lag_of(measure(db_url, build)) == NOW - 20, status


def test_a_failed_run_retried_with_success_is_no_lag(db_url: Callable[[], str]) -> None:
    async def build(s: State) -> None:
        pid = await s.policy("p", dest=await s.endpoint("dist"))
        e = await s.event(20, "push", "apps/a", D1, "1")
        await s.cursor(e)
        await s.run(pid, "Failed", 20.5, 25, scope(("apps/a", D1, "1")))
        retry = await s.run(pid, "Succeed", 30, 31, scope(("apps/a", D1, "1")))
        await s.task(retry, "apps/a", D1, ["1"])

    assert lag_of(measure(db_url, build)) == 0.0


def test_a_run_that_planned_before_the_change_does_not_count(db_url: Callable[[], str]) -> None:
    """Tag 1 moved to D2 and back to D1 while a run was copying: the run copied 1 -> D2 (its
    task says so), so the move back, written before the run ended, is not replicated."""

    async def build(s: State) -> None:
        pid = await s.policy("p", dest=await s.endpoint("dist"))
        await s.event(10, "push", "apps/a", D1, "1")
        await s.event(11, "push", "apps/a", D2, "1")
        back = await s.event(13, "push", "apps/a", D1, "1")  # after the run was claimed
        await s.cursor(back)
        run = await s.run(pid, "Succeed", 10.5, 15, scope(("apps/a", D1, "1"), ("apps/a", D2, "1")))
        await s.task(run, "apps/a", D2, ["1"])
        await s.run(pid, "Failed", 13.5, 20, scope(("apps/a", D1, "1")))  # the next one failed

    samples = measure(db_url, build)
    assert lag_of(samples) == NOW - 13  # the move to D2 was replicated and superseded 10


def test_a_later_replicated_change_supersedes_an_older_failed_one(
    db_url: Callable[[], str],
) -> None:
    async def build(s: State) -> None:
        pid = await s.policy("p", dest=await s.endpoint("dist"))
        await s.event(10, "push", "apps/a", D1, "1")
        e = await s.event(50, "push", "apps/a", D2, "1")
        await s.cursor(e)
        await s.run(pid, "Failed", 10.5, 12, scope(("apps/a", D1, "1")))
        run = await s.run(pid, "Succeed", 50.5, 51, scope(("apps/a", D2, "1")))
        await s.task(run, "apps/a", D2, ["1"])

    assert lag_of(measure(db_url, build)) == 0.0


def test_a_whole_policy_run_counts_only_when_created_after_the_change(
    db_url: Callable[[], str],
) -> None:
    async def build(s: State, whole_start: float) -> None:
        pid = await s.policy("p", dest=await s.endpoint("dist"))
        e = await s.event(20, "push", "apps/a", D1, "1")
        await s.cursor(e)
        await s.run(pid, "Failed", 20.5, 25, scope(("apps/a", D1, "1")))
        await s.run(pid, "Succeed", whole_start, 60, trigger="manual")

    assert lag_of(measure(db_url, lambda s: build(s, 21))) == 0.0
    assert lag_of(measure(db_url, lambda s: build(s, 19))) == NOW - 20  # planned before it


def test_dry_runs_replicate_nothing(db_url: Callable[[], str]) -> None:
    async def build(s: State) -> None:
        pid = await s.policy("p", dest=await s.endpoint("dist"))
        e = await s.event(20, "push", "apps/a", D1, "1")
        await s.cursor(e)
        await s.run(pid, "Failed", 20.5, 25, scope(("apps/a", D1, "1")))
        await s.run(pid, "Succeed", 30, 31, trigger="manual", dry_run=True)

    assert lag_of(measure(db_url, build)) == NOW - 20


def test_only_covered_changes_count(db_url: Callable[[], str]) -> None:
    """Name filters and the deletion setting decide, as for the outbox consumer; a change
    from before the policy existed is not its change."""

    async def build(s: State) -> None:
        dist = await s.endpoint("dist")
        await s.policy("p", dest=dist, filters=[{"type": "name", "value": "apps/**"}], created=0)
        await s.event(-5, "push", "apps/old", D3, "1")  # before the policy
        await s.event(20, "push", "other/x", D1, "1")  # outside its filter
        await s.event(30, "untag", "apps/a", D2, "gone")  # a deletion: not replicated by p
        await s.cursor(0)

    assert lag_of(measure(db_url, build)) == 0.0


def test_a_deletion_counts_when_the_policy_replicates_deletions(db_url: Callable[[], str]) -> None:
    async def build(s: State) -> None:
        await s.policy("p", dest=await s.endpoint("dist"), deletion=True)
        await s.event(30, "untag", "apps/a", D2, "gone")
        await s.cursor(0)

    assert lag_of(measure(db_url, build)) == NOW - 30


def test_scheduled_policies_count_changes_since_their_last_successful_run(
    db_url: Callable[[], str],
) -> None:
    async def build(s: State, last_success: float | None) -> None:
        pid = await s.policy("p", dest=await s.endpoint("dist"), trigger="scheduled", created=0)
        await s.event(10, "push", "apps/a", D1, "1")
        await s.event(40, "push", "apps/a", D2, "2")
        await s.cursor(2)
        if last_success is not None:
            await s.run(pid, "Succeed", last_success, last_success + 5, trigger="scheduled")
        await s.run(pid, "Failed", 100, 105, trigger="scheduled")

    assert lag_of(measure(db_url, lambda s: build(s, None))) == NOW - 10  # never: since created
    assert lag_of(measure(db_url, lambda s: build(s, 20))) == NOW - 40
    assert lag_of(measure(db_url, lambda s: build(s, 50))) == 0.0


def test_a_remote_source_is_measured_by_its_runs(db_url: Callable[[], str]) -> None:
    async def build(s: State, later_success: bool) -> None:
        src = await s.endpoint("upstream")
        pid = await s.policy("p", src=src)
        await s.run(pid, "Succeed", 5, 6, trigger="scheduled")
        await s.run(pid, "Failed", 70, 75, scope(("apps/a", D1, "1")))
        if later_success:
            await s.run(pid, "Succeed", 80, 81, scope(("apps/a", D1, "1")))

    samples = measure(db_url, lambda s: build(s, False))
    assert samples["p"].basis is LagBasis.RUNS
    assert samples["p"].target == LOCAL_TARGET and samples["p"].target_id is None
    assert lag_of(samples) == NOW - 70
    assert lag_of(measure(db_url, lambda s: build(s, True))) == 0.0


def test_disabled_policies_have_no_sample(db_url: Callable[[], str]) -> None:
    async def build(s: State) -> None:
        await s.policy("off", dest=await s.endpoint("dist"), enabled=False)
        await s.event(10, "push", "apps/a", D1, "1")

    assert measure(db_url, build) == {}


def test_many_changes_in_many_runs_scan_to_the_oldest_pending(db_url: Callable[[], str]) -> None:
    """Three thousand replicated pushes (more than a page of the scan) and one failed push
    among them: its age is the lag."""

    async def build(s: State) -> None:
        pid = await s.policy("p", dest=await s.endpoint("dist"))
        pushes = [
            (100 + i * 0.1, "push", "apps/hot", digest(f"d{i}"), "latest") for i in range(3000)
        ]
        await s.events(pushes)
        failed = await s.event(50, "push", "apps/hot", D1, "pinned")  # id after, written before
        await s.cursor(failed)
        await s.run(pid, "Failed", 51, 52, scope(("apps/hot", D1, "pinned")))
        run = await s.run(
            pid, "Succeed", 400.5, 401, scope(("apps/hot", digest("d2999"), "latest"))
        )
        await s.task(run, "apps/hot", digest("d2999"), ["latest"])

    assert lag_of(measure(db_url, build)) == NOW - 50


def test_a_memo_between_calls_changes_no_figure(db_url: Callable[[], str]) -> None:
    """``/metrics`` keeps a memo between scrapes: each call gives what a fresh one would."""

    async def go() -> list[float]:
        s = await open_state(db_url())
        memo, seen = LagMemo(), []
        try:
            pid = await s.policy(
                "p",
                dest=await s.endpoint("dist"),
                trigger="scheduled",
                filters=[{"type": "name", "value": "apps/**"}],
                created=0,
            )

            async def both() -> None:
                fresh = await replication_lag(s.db, at(NOW))
                kept = await replication_lag(s.db, at(NOW), memo)
                assert fresh == kept
                seen.append(kept[0].lag_seconds)

            await s.event(10, "push", "other/x", D1, "1")
            await both()  # nothing covered yet
            await s.event(50, "push", "apps/a", D1, "1")
            await both()  # found among the newer events only
            await s.event(60, "push", "apps/b", D2, "1")
            await both()  # the oldest found stays
            await s.run(pid, "Succeed", 55, 70, trigger="scheduled")
            await both()  # since moved: scanned again
            return seen
        finally:
            await s.close()

    assert anyio.run(go) == [0.0, NOW - 50, NOW - 50, NOW - 60]
