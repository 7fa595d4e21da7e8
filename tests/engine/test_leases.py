"""Leases on the database's clock, on SQLite and on PostgreSQL: a node whose clock is a day
ahead (or behind) takes nobody's run or task, a lease written by Python before this change
still compares right, claims of one policy's runs never overlap, a webhook delivery another
node is sending waits for its lease, and a node learns how far its clock is from the
database's. (Several real nodes at once: ``test_multinode_leases``.)"""

from __future__ import annotations

from datetime import datetime, timedelta

import anyio
import httpx
import pytest
from sqlalchemy import insert, select, update

import engine.state.models  # noqa: F401 - registers the tables
from engine.notify import Notifier, NotifySettings
from engine.notify.models import Delivery, Webhook
from engine.state.models import Execution, Task
from engine.state.runs import RunStore
from engine.state.status import TaskStatus
from registry.meta.db import Database
from registry.meta.leases import db_now, db_time_in
from registry.meta.models import utcnow

pytestmark = pytest.mark.anyio
X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
W = Webhook.__table__  # type: ignore[attr-defined]
D = Delivery.__table__  # type: ignore[attr-defined]
DAY = timedelta(days=1)
LEASE = timedelta(seconds=30)


def node(db: Database, name: str, skew: timedelta = timedelta(0)) -> RunStore:
    return RunStore(db, name, LEASE, clock=lambda: utcnow() + skew)


async def _owner(db: Database, task_id: int) -> str | None:
    async with db.read() as c:
        return (await c.execute(select(T.c.lease_owner).where(T.c.id == task_id))).scalar()


async def _expire(db: Database, table: object, row_id: int) -> None:
    """The lease of ``row_id`` passes (as if its holder died LEASE ago)."""
    async with db.write() as c:
        await c.execute(
            update(table).where(table.c.id == row_id).values(lease_expires=db_time_in(-1))  # type: ignore[attr-defined]
        )


async def test_a_node_ahead_or_behind_takes_no_task_that_is_held(db: Database) -> None:
    right, ahead, behind = node(db, "right"), node(db, "ahead", DAY), node(db, "behind", -DAY)
    eid = await right.create_execution(1, "manual")
    await right.add_tasks(eid, [{"digest": "sha256:a"}])
    task = await behind.lease_task(eid)
    assert task is not None and task.attempts == 1 and await _owner(db, task.id) == "behind"
    async with db.read() as c:
        expires, now = (await c.execute(select(T.c.lease_expires, db_now()))).one()
    assert LEASE - timedelta(seconds=5) < expires - now <= LEASE  # the database's time
    assert await ahead.lease_task(eid) is None
    assert await right.lease_task(eid) is None
    await _expire(db, T, task.id)
    again = await ahead.lease_task(eid)
    assert again is not None and again.id == task.id and again.attempts == 2
    assert await _owner(db, task.id) == "ahead"
    await behind.finish_task(task.id, TaskStatus.SUCCEED, "copied", "", "", 0)  # too late
    await ahead.finish_task(task.id, TaskStatus.SUCCEED, "copied", "", "by ahead", 0)
    async with db.read() as c:
        row = (await c.execute(select(T.c.log, T.c.status, T.c.lease_owner))).one()
    assert tuple(row) == ("by ahead", "Succeed", None)


async def test_leases_written_by_python_compare_with_the_database_time(db: Database) -> None:
    """Rows from before this change hold times the node wrote; they compare as before."""
    store = node(db, "n", DAY)
    eid = await store.create_execution(1, "manual")
    past, future = utcnow() - timedelta(seconds=60), utcnow() + timedelta(seconds=60)
    rows = [
        {"execution_id": eid, "status": "InProgress", "lease_owner": "gone", "lease_expires": t}
        for t in (future, past)
    ]
    async with db.write() as c:
        await c.execute(insert(T), rows)
    leased = await store.lease_task(eid)
    assert leased is not None and leased.id == 2  # the one whose lease passed
    assert await store.lease_task(eid) is None


async def test_one_run_of_a_policy_at_a_time_whatever_the_clocks(db: Database) -> None:
    right, ahead = node(db, "right"), node(db, "ahead", DAY)
    first = await right.create_execution(1, "manual")
    second = await right.create_execution(1, "manual")
    other = await right.create_execution(2, "manual")
    assert await right.claim_execution() == first
    assert await ahead.claim_execution() == other  # not the held run, nor a second of policy 1
    assert await ahead.claim_execution() is None
    await _expire(db, X, first)  # its node died: its run is taken over before a newer one
    assert await ahead.claim_execution() == first
    assert await right.claim_execution() is None
    assert await right.renew_execution(first) is False  # it knows it lost the run
    await ahead.finalize(first)
    assert await right.claim_execution() == second


async def test_claims_made_at_once_take_one_run_per_policy(db: Database) -> None:
    stores = [node(db, f"n{i}", DAY * (i - 4)) for i in range(8)]
    for _ in range(5):
        await stores[0].create_execution(1, "manual")
    claimed: list[int | None] = []

    async def claim(store: RunStore) -> None:
        claimed.append(await store.claim_execution())

    async with anyio.create_task_group() as tg:
        for store in stores:
            tg.start_soon(claim, store)
    assert len([c for c in claimed if c is not None]) == 1, claimed
    async with db.read() as c:
        held = (await c.execute(select(X.c.id).where(X.c.status == "InProgress"))).all()
    assert len(held) == 1


async def test_a_delivery_another_node_is_sending_waits_for_its_lease(db: Database) -> None:
    async with db.write() as c:
        await c.execute(insert(W).values(id=1, policy_id=1, name="w", address="http://hook.test/"))
        await c.execute(
            insert(D).values(
                webhook_id=1,
                policy_id=1,
                event_type="TEST",
                payload_json="{}",
                next_attempt_at=db_time_in(-60),
                lease_owner="other",
                lease_expires=db_time_in(30),
            )
        )
    sent: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200)

    notifier = Notifier(db, NotifySettings(), node_id="me", transport=httpx.MockTransport(receive))
    async with notifier._clients() as clients:
        assert await notifier.deliver_due(clients) == 0
        await _expire(db, D, 1)
        assert await notifier.deliver_due(clients) == 1
    assert len(sent) == 1
    async with db.read() as c:
        status, history, updated, now = (
            await c.execute(select(D.c.status, D.c.history_json, D.c.updated_at, db_now()))
        ).one()
    assert status == "Success" and '"http_status": 200' in history
    assert abs(now - updated) < timedelta(seconds=5)


async def test_a_node_learns_how_far_its_clock_is_off(db: Database) -> None:
    for skew in (DAY, -DAY, timedelta(0)):
        off = await node(db, "n", skew).clock_skew()
        assert abs(off - skew) < timedelta(seconds=5)
    async with db.read() as c:
        stamp = (await c.execute(select(db_now()))).scalar_one()
    assert isinstance(stamp, datetime) and abs(stamp - utcnow()) < timedelta(seconds=5)
