"""Runs and tasks taken several at a time, on SQLite and on PostgreSQL: one transaction claims
the runs a push queued for each of its policies (never two whole runs of one policy, nor two
event runs of one policy whose scopes conflict, even when several nodes claim batches at once;
event runs naming different tags run at once), and a run's workers lease what they will start
in one transaction (each task once)."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest
from sqlalchemy import select

import engine.state.models  # noqa: F401 - registers the tables
from engine.scope import Scope
from engine.state.models import Execution
from engine.state.runs import RunStore
from engine.state.status import TaskStatus
from registry.meta.db import Database

pytestmark = pytest.mark.anyio
X = Execution.__table__  # type: ignore[attr-defined]
SCOPE = '{"digests":{},"tags":{"apps/a":["1"]},"whole":[]}'


def scope(tags: dict[str, list[str]] | None = None, whole: list[str] | None = None) -> str:
    return Scope({}, {r: set(t) for r, t in (tags or {}).items()}, set(whole or [])).to_json()


def node(db: Database, name: str) -> RunStore:
    return RunStore(db, name, timedelta(seconds=30))


async def _policies_in_progress(db: Database) -> list[int]:
    async with db.read() as c:
        rows = await c.execute(select(X.c.policy_id).where(X.c.status == "InProgress"))
        return sorted(int(r[0]) for r in rows)


async def test_one_claim_takes_a_run_of_each_policy_and_no_second_of_one(db: Database) -> None:
    store = node(db, "a")
    first = [await store.create_execution(p, "event_based", scope=SCOPE) for p in (1, 2, 3)]
    second = [await store.create_execution(p, "event_based", scope=SCOPE) for p in (1, 2)]
    assert await store.claim_executions(8) == first  # oldest first, one per policy
    assert await store.claim_executions(8) == []
    await store.finalize(first[0])
    assert await store.claim_executions(8) == [second[0]]  # policy 1's next, now free
    assert await store.claim_executions(0) == []
    assert await _policies_in_progress(db) == [1, 2, 3]


async def test_the_limit_bounds_a_claim(db: Database) -> None:
    store = node(db, "a")
    runs = [await store.create_execution(p, "manual") for p in (1, 2, 3)]
    assert await store.claim_executions(2) == runs[:2]
    assert await store.claim_executions(2) == runs[2:]


async def test_nodes_claiming_batches_at_once_take_one_run_per_policy(db: Database) -> None:
    stores = [node(db, f"n{i}") for i in range(6)]
    for _ in range(4):
        for p in (1, 2, 3):
            await stores[0].create_execution(p, "event_based", scope=SCOPE)
    claimed: list[int] = []

    async def claim(store: RunStore) -> None:
        claimed.extend(await store.claim_executions(4))

    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(claim, store)
    assert len(claimed) == len(set(claimed)) == 3, claimed
    assert await _policies_in_progress(db) == [1, 2, 3]


async def test_workers_lease_what_they_start_in_one_go_each_task_once(db: Database) -> None:
    a, b = node(db, "a"), node(db, "b")
    eid = await a.create_execution(1, "manual")
    await a.add_tasks(eid, [{"digest": f"sha256:{i}"} for i in range(5)])
    mine = await a.lease_tasks(eid, 3)
    theirs = await b.lease_tasks(eid, 8)  # fewer than asked: all that is left
    assert [t.attempts for t in mine + theirs] == [1] * 5
    assert len({t.id for t in mine + theirs}) == 5 and len(theirs) == 2
    assert await a.lease_tasks(eid, 8) == []
    for t in mine + theirs:
        owner = a if t in mine else b
        await owner.finish_task(t.id, TaskStatus.SUCCEED, "copied", "", "", 10)
    assert await a.finalize(eid) == "Succeed"
    run = await a.execution(eid)
    assert run is not None and (run.total, run.succeed, run.bytes_copied) == (5, 5, 50)


async def test_event_runs_of_one_policy_naming_other_tags_run_at_once(db: Database) -> None:
    store = node(db, "a")
    first = await store.create_execution(1, "event_based", scope=scope({"apps/a": ["1", "2"]}))
    other_tag = await store.create_execution(1, "event_based", scope=scope({"apps/a": ["3"]}))
    assert await store.claim_executions(8) == [first, other_tag]
    same_tag = await store.create_execution(1, "event_based", scope=scope({"apps/a": ["2", "4"]}))
    whole = await store.create_execution(1, "event_based", scope=scope(whole=["apps/a"]))
    elsewhere = await store.create_execution(1, "event_based", scope=scope({"apps/b": ["2"]}))
    # a tag in common waits; the runs queued after it wait behind it (nothing overtakes)
    assert await store.claim_executions(8) == []
    await store.finalize(first)
    assert await store.claim_executions(8) == [same_tag]
    await store.finalize(other_tag)
    assert await store.claim_executions(8) == []  # whole apps/a conflicts with apps/a:2,4
    await store.finalize(same_tag)
    assert await store.claim_executions(8) == [whole, elsewhere]


async def test_a_whole_run_and_event_runs_of_one_policy_are_separate_kinds(db: Database) -> None:
    store = node(db, "a")
    runs = [
        await store.create_execution(1, "manual"),
        await store.create_execution(1, "event_based", scope=scope({"apps/a": ["1"]})),
        await store.create_execution(1, "manual"),
    ]
    assert await store.claim_executions(8) == runs[:2]
    await store.finalize(runs[0])
    assert await store.claim_executions(8) == [runs[2]]


async def test_nodes_claiming_at_once_never_run_conflicting_event_runs(db: Database) -> None:
    stores = [node(db, f"n{i}") for i in range(6)]
    disjoint = [
        await stores[0].create_execution(1, "event_based", scope=scope({"apps/a": [str(i)]}))
        for i in range(3)
    ]
    await stores[0].create_execution(1, "event_based", scope=scope({"apps/a": ["0"]}))
    claimed: list[int] = []

    async def claim(store: RunStore) -> None:
        claimed.extend(await store.claim_executions(4))

    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(claim, store)
    assert sorted(claimed) == disjoint, claimed
