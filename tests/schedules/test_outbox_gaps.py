"""The outbox on a real PostgreSQL, where an event id can become visible after a higher one:
the consumer waits for the gap, passes over it, and still acts on the event when its slow
transaction commits (nothing lost, nothing doubled)."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy import insert, select

import engine.state.models  # noqa: F401 - the replication tables
from engine.scope import Scope
from engine.state.models import Execution, Policy
from registry.meta.db import Database, create_engine, init_schema
from registry.meta.models import Event, utcnow
from schedules.outbox import OutboxConsumer

E = Event.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
X = Execution.__table__  # type: ignore[attr-defined]


def _event(repo: str, tag: str) -> dict[str, object]:
    return {
        "created_at": utcnow(),
        "action": "push",
        "repository": repo,
        "digest": "sha256:" + "a" * 64,
        "tag": tag,
    }


async def _scenario(url: str) -> list[Scope]:
    engine = create_engine(url)
    db = Database(engine)
    await init_schema(engine)
    async with db.write() as c:
        await c.execute(
            insert(P).values(name="ev", trigger_type="event_based", filters_json="[]", enabled=True)
        )
    consumer = OutboxConsumer(db, lambda: None, gap_seconds=0.5, hole_seconds=60)
    slow = await engine.connect()
    slow_tx = await slow.begin()
    await slow.execute(insert(E).values(**_event("slow/app", "1")))  # id 1, not committed
    async with db.write() as c:
        await c.execute(insert(E).values(**_event("fast/app", "1")))  # id 2, committed
    assert await consumer.consume_once() is False  # waits: id 1 may still come
    async with db.read() as c:
        assert (await c.execute(select(X.c.id))).all() == []
    await anyio.sleep(0.6)
    await consumer.consume_once()  # passes over id 1, acts on id 2
    await slow_tx.commit()  # the slow transaction ends
    await slow.close()
    await consumer.consume_once()  # finds id 1 in its hole
    await consumer.consume_once()  # and nothing more
    async with db.read() as c:
        scopes = [Scope.from_json(r[0]) for r in await c.execute(select(X.c.scope_json))]
    await engine.dispose()
    return scopes


@pytest.mark.slow
def test_a_slow_transaction_s_event_is_not_lost(postgres_url: str) -> None:
    scopes = anyio.run(_scenario, postgres_url)
    merged = Scope()
    for scope in scopes:
        merged.merge(scope)
    assert merged.tags == {"fast/app": {"1"}, "slow/app": {"1"}}, scopes
