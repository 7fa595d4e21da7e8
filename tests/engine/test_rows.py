"""The run store's rows are values with one field per column: a run and its policy read back
from the database as what was stored, and as the same mapping observers took before (the
table's row); a column added to a table without its field fails here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import FrozenInstanceError, fields
from pathlib import Path

import pytest
from sqlalchemy import insert, select

import engine.state.models  # noqa: F401 - registers the tables
from engine.state.models import Execution, Policy
from engine.state.rows import ExecutionRow, PolicyRow
from engine.state.runs import RunStore
from engine.state.status import ExecutionStatus
from engine.taskrun import LeasedTask
from registry.meta.db import Database, create_engine, init_schema

pytestmark = pytest.mark.anyio
X = Execution.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RunStore]:
    db = Database(create_engine(f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"))
    await init_schema(db.engine)
    async with db.write() as c:
        await c.execute(
            insert(P).values(
                id=7, name="p", dest_namespace="dr", speed_bytes_per_second=1024, deletion=True
            )
        )
    yield RunStore(db, "node-a")
    await db.dispose()


def test_one_field_per_column() -> None:
    assert [f.name for f in fields(ExecutionRow)] == [c.name for c in X.columns]
    assert [f.name for f in fields(PolicyRow)] == [c.name for c in P.columns]


async def test_rows_read_back_as_stored(store: RunStore) -> None:
    eid = await store.create_execution(7, "manual", status_text="queued: behind 1")
    run, policy = await store.execution(eid), await store.policy(7)
    assert run is not None and policy is not None
    assert (run.id, run.policy_id, run.trigger, run.status_text) == (
        eid,
        7,
        "manual",
        "queued: behind 1",
    )
    assert run.status is ExecutionStatus.PENDING and run.active and not run.planned
    assert (policy.id, policy.name, policy.dest_namespace) == (7, "p", "dr")
    assert (
        policy.speed_bytes_per_second == 1024 and policy.deletion and policy.src_registry_id is None
    )
    async with store.db.read() as c:
        stored_run = dict((await c.execute(select(X))).mappings().one())
        stored_policy = dict((await c.execute(select(P))).mappings().one())
    assert run.as_dict() == stored_run
    assert policy.as_dict() == stored_policy
    with pytest.raises(FrozenInstanceError):
        run.status = ExecutionStatus.FAILED  # type: ignore[misc]
    assert await store.execution(eid + 1) is None and await store.policy(8) is None


async def test_a_leased_task_and_a_finished_run(store: RunStore) -> None:
    eid = await store.create_execution(7, "manual")
    await store.add_tasks(
        eid,
        [{"digest": "sha256:a", "tags_json": '["1", "2"]', "dst_repository": "dr/app"}],
    )
    task = await store.lease_task(eid)
    assert isinstance(task, LeasedTask)
    assert (task.digest, task.tags, task.dst_repository, task.attempts) == (
        "sha256:a",
        ("1", "2"),
        "dr/app",
        1,
    )
    await store.finish_task(task.id, "Succeed", "copied", "", "", 10)
    assert await store.finalize(eid) is ExecutionStatus.SUCCEED
    run = await store.execution(eid)
    assert run is not None and not run.active
    assert (run.total, run.succeed, run.bytes_copied) == (1, 1, 10)
    assert run.end_time is not None and run.lease_owner is None
