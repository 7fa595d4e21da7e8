"""Event retries as rows: a failed event run leaves a retry due after the back-off; when due,
any node queues it as a run of the same scope; that run's end settles it (done, due again, or
given up after the last delay). Stopped runs and deletion-guard stops are not retried."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

import engine.state.models  # noqa: F401 - registers the tables
from engine.plan import GUARD
from engine.scope import Scope
from engine.state.models import EventRetry, Execution, Policy, Task
from engine.state.retries import EVENT_RETRY_SECONDS
from engine.state.runs import RunStore
from registry.meta.db import Database, create_engine, init_schema
from registry.meta.models import utcnow

pytestmark = pytest.mark.anyio
R = EventRetry.__table__  # type: ignore[attr-defined]
X = Execution.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
SCOPE = Scope(tags={"team/app": {"1.0"}})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RunStore]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    await init_schema(engine)
    db = Database(engine)
    async with db.write() as c:
        await c.execute(insert(P).values(id=1, name="p", trigger_type="event_based"))
    yield RunStore(db, "node-a")
    await db.dispose()


async def _run(store: RunStore, status: str, **execution: object) -> int:
    """An event run of policy 1 that ends with one task of ``status``."""
    eid = await store.create_execution(1, "event_based", scope=SCOPE.to_json())
    async with store.db.write() as c:
        if execution:
            await c.execute(update(X).where(X.c.id == eid).values(**execution))
    await store.add_tasks(eid, [{"status": status}])
    await store.finalize(eid, execution.get("status_text"))  # type: ignore[arg-type]
    return eid


async def _retries(store: RunStore) -> list[dict[str, object]]:
    async with store.db.read() as c:
        return [dict(r) for r in (await c.execute(select(R))).mappings().all()]


async def _make_due(store: RunStore) -> None:
    async with store.db.write() as c:
        await c.execute(update(R).values(due_at=utcnow() - timedelta(seconds=1)))


async def test_a_failed_event_run_is_retried_with_back_off_until_it_succeeds(
    store: RunStore,
) -> None:
    failed = await _run(store, "Failed")
    (retry,) = await _retries(store)
    assert retry["attempt"] == 1 and retry["execution_id"] is None
    due = retry["due_at"]
    assert isinstance(due, datetime)
    wait = (due.replace(tzinfo=UTC) - utcnow()).total_seconds()
    assert EVENT_RETRY_SECONDS[0] - 2 < wait <= EVENT_RETRY_SECONDS[0]
    assert await store.queue_due_retries() == []  # not due yet
    await _make_due(store)
    (again,) = await store.queue_due_retries()
    assert again != failed
    run = await store.execution(again)
    assert run is not None and Scope.from_json(run.scope_json).tags == SCOPE.tags
    assert await store.queue_due_retries() == []  # queued once, by one node
    await store.add_tasks(again, [{"status": "Failed"}])
    await store.finalize(again)
    (retry,) = await _retries(store)
    assert retry["attempt"] == 2 and retry["execution_id"] is None
    await _make_due(store)
    (third,) = await store.queue_due_retries()
    await store.add_tasks(third, [{"status": "Succeed"}])
    await store.finalize(third)
    assert await _retries(store) == []


async def test_retries_end_after_the_last_delay(store: RunStore) -> None:
    await _run(store, "Failed")
    for _ in EVENT_RETRY_SECONDS:
        await _make_due(store)
        (eid,) = await store.queue_due_retries()
        await store.add_tasks(eid, [{"status": "Failed"}])
        await store.finalize(eid)
    assert await _retries(store) == []


async def test_stopped_and_guarded_runs_wait_for_a_person(store: RunStore) -> None:
    await _run(store, "Failed", stop_requested=True)
    await _run(store, "Failed", status_text=f"{GUARD}: 9 deletions exceed max_deletions=1")
    await _run(store, "Succeed")
    assert await _retries(store) == []


async def test_a_retry_of_a_disabled_policy_ends(store: RunStore) -> None:
    await _run(store, "Failed")
    async with store.db.write() as c:
        await c.execute(update(P).values(enabled=False))
    await _make_due(store)
    assert await store.queue_due_retries() == []
    assert await _retries(store) == []
