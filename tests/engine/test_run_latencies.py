"""A run's push → replicated latencies (``engine.latency.run_latencies``) from its tasks and
their outbox events: the same figures whether the run's events are read one digest at a time
(a few digests) or in ``IN`` batches (more), on either database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

import engine.state.models  # noqa: F401 - registers the tables
from engine.latency import DIGESTS_ONE_BY_ONE, run_latencies
from engine.state.models import Execution, Task
from registry.meta.db import Database
from registry.meta.models import Event

pytestmark = pytest.mark.anyio
X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]
PUSHED = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


async def _run_of(db: Database, copies: int) -> tuple[int, list[float]]:
    """A run that copied ``copies`` digests, each pushed at PUSHED and copied i × 0.25 s later
    (plus one older push of the first digest, and one task that was not a copy)."""
    async with db.write() as c:
        run = await c.execute(insert(X).values(policy_id=1, trigger="event_based"))
        eid = int(run.inserted_primary_key[0])  # type: ignore[index]
        digests = [f"sha256:{i:064x}" for i in range(copies)]
        pushed = {"created_at": PUSHED, "action": "push", "repository": "r"}
        events = [{**pushed, "digest": d} for d in digests]
        events.append({**events[0], "created_at": PUSHED - timedelta(seconds=30)})
        await c.execute(insert(E), events)
        tasks = [
            {
                "execution_id": eid,
                "status": "Succeed",
                "outcome": "copied",
                "src_repository": "r",
                "dst_repository": "r",
                "digest": d,
                "end_time": PUSHED + timedelta(seconds=0.25 * (i + 1)),
            }
            for i, d in enumerate(digests)
        ]
        tasks.append({**tasks[0], "outcome": "skipped"})
        await c.execute(insert(T), tasks)
    return eid, [0.25 * (i + 1) for i in range(copies)]


@pytest.mark.parametrize("copies", [3, DIGESTS_ONE_BY_ONE + 5])
async def test_latencies_from_the_runs_own_events(db: Database, copies: int) -> None:
    eid, expected = await _run_of(db, copies)
    since = PUSHED - timedelta(minutes=2)
    async with db.quick_read() as c:
        quick = sorted(await run_latencies(c, eid, since))
    async with db.read() as c:
        engine = sorted(await run_latencies(c, eid, since))
    assert quick == engine == pytest.approx(expected)
