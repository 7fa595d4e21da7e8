"""Event-triggered replication: the registry's outbox feeds the event-based policies.

Every change the registry makes (a manifest pushed, a tag set or removed, an artifact or a
repository deleted) writes an ``event`` row in the same transaction as the change. This
consumer reads the rows after its cursor, turns them into event-scoped runs of the matching
push-based policies (:func:`engine.state.runs.enqueue_scoped`) and advances the cursor, all in
one transaction: a crash before the commit replays the events, after it they are done, so each
event is acted on exactly once in effect (runs are idempotent by digest anyway). Events written
while the engine was stopped are simply read when it starts.

With several nodes sharing a database each runs a consumer; the cursor update is conditional
on the position read, so two nodes reading the same events cannot both commit their runs.
On PostgreSQL, ids are taken before commit, so an event can become visible after one with a
higher id: the consumer reads only the unbroken run of ids after its cursor and waits up to
``gap_seconds`` for a missing id (a transaction still committing) before passing it (its
transaction rolled back, or is slow: the ids passed over are looked for again, as holes, for
``hole_seconds``, and events that appear there are acted on then). Those waits are this node's
own (a monotonic clock); the times it writes and prunes by are the database's
(:mod:`registry.meta.leases`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
from anyio.abc import TaskGroup
from sqlalchemy import bindparam, delete, insert, select, update

from engine.state.models import OUTBOX_CURSOR, OutboxCursor
from engine.state.runs import enqueue_events
from registry.meta.db import Database, SqlConnection
from registry.meta.leases import db_now, db_time_in
from registry.meta.models import Event
from registry.meta.prepared import prepared

__all__ = ["OutboxConsumer"]

log = logging.getLogger("seawall.schedules")
E = Event.__table__  # type: ignore[attr-defined]
C = OutboxCursor.__table__  # type: ignore[attr-defined]
CURSOR = OUTBOX_CURSOR  # this consumer's row in outbox_cursor
BATCH = 500
MAX_HOLES = 1000  # ids of one gap kept as holes (a larger gap is a sequence jump, not commits)

_POSITION = prepared(select(C.c.position).where(C.c.name == CURSOR))
_NEWER = prepared(select(E.c.id).where(E.c.id > bindparam("after")).limit(1))
_EVENTS_AFTER = prepared(
    select(E.c.id, E.c.action, E.c.repository, E.c.digest, E.c.tag)
    .where(E.c.id > bindparam("after"))
    .order_by(E.c.id)
    .limit(BATCH)
)
#: the cursor moved on, if no other consumer moved it first
_MOVE = prepared(
    update(C)
    .where(C.c.name == CURSOR, C.c.position == bindparam("was"))
    .values(position=bindparam("now"), updated_at=db_now())
)


class _Raced(Exception):
    """Another node advanced the cursor first: roll back and read again."""


class OutboxConsumer:
    def __init__(
        self,
        db: Database,
        wake_runs: Callable[[], None],
        *,
        poll_seconds: float = 0.5,
        keep_events: timedelta = timedelta(days=7),
        gap_seconds: float = 5.0,
        hole_seconds: float = 600.0,
    ) -> None:
        """``poll_seconds``: how often to look for events written by other nodes (this node's
        registry wakes the consumer at once). Consumed events older than ``keep_events`` are
        pruned."""
        self.db, self.wake_runs = db, wake_runs
        self.poll_seconds, self.keep_events = poll_seconds, keep_events
        self.gap_seconds, self.hole_seconds = gap_seconds, hole_seconds
        self._gap: tuple[int, float] | None = None  # (cursor position, when the gap was seen)
        self._holes: dict[int, float] = {}  # ids passed over -> when
        self._wake = anyio.Event()
        self._written = False

    def outbox_changed(self) -> None:
        self._written = True  # by this process: no need to look whether there is anything
        self._wake.set()

    async def start(self, tg: TaskGroup) -> None:
        tg.start_soon(self._loop, name="outbox-consumer")

    async def _loop(self) -> None:
        pruned_at = 0.0
        while True:
            self._wake = anyio.Event()
            try:
                while await self.consume_once():
                    pass
                if anyio.current_time() - pruned_at > 3600:
                    pruned_at = anyio.current_time()
                    await self.prune()
            except Exception:
                log.exception("consuming the event outbox failed; retrying")
                await anyio.sleep(1.0)
            with anyio.move_on_after(self.poll_seconds):
                await self._wake.wait()

    async def _anything_new(self) -> bool:
        """Whether there are events after the cursor (or holes to look in): a read, so an idle
        poll never takes the write lock that the registry's pushes need."""
        if self._holes:
            return True
        async with self.db.quick_read() as c:
            position = (await c.execute(_POSITION)).scalar() or 0
            return (await c.execute(_NEWER, {"after": position})).first() is not None

    async def consume_once(self) -> bool:
        """Turn the next batch of events into runs; True if there may be more."""
        written, self._written = self._written, False
        if not written and not await self._anything_new():
            return False
        for _ in range(5):
            try:
                async with self.db.quick_write() as c:  # a batch: bounded
                    more, queued = await self._consume(c)
            except _Raced:
                continue
            if queued:
                self.wake_runs()  # after the commit, so the runs are visible to the claim
            return more
        return True

    def _unbroken(self, position: int, ids: list[int]) -> tuple[int, list[int]]:
        """How many of ``ids`` (ascending, all > position) follow the cursor without a gap, and
        the ids passed over: a gap older than ``gap_seconds`` is passed over (and its ids kept
        as holes, looked for again until ``hole_seconds``: a transaction that was only slow)."""
        expected, n = position + 1, 0
        for i in ids:
            if i != expected:
                break
            expected, n = i + 1, n + 1
        if n or not ids:
            self._gap = None
            return n, []
        now = anyio.current_time()
        if self._gap is None or self._gap[0] != position:
            self._gap = (position, now)
        if now - self._gap[1] < self.gap_seconds:
            return 0, []
        log.warning(
            "outbox: events %d..%d not committed yet; passing over", position + 1, ids[0] - 1
        )
        self._gap = None
        n, _ = self._unbroken(ids[0] - 1, ids)
        return n, list(range(position + 1, ids[0]))[-MAX_HOLES:]

    async def _late(self, c: SqlConnection) -> list[Any]:
        """Events that appeared in holes passed over earlier (their transactions were slow)."""
        now = anyio.current_time()
        for hole, seen in list(self._holes.items()):
            if now - seen > self.hole_seconds:
                del self._holes[hole]
        if not self._holes:
            return []
        rows = (
            await c.execute(
                select(E.c.id, E.c.action, E.c.repository, E.c.digest, E.c.tag).where(
                    E.c.id.in_(sorted(self._holes))
                )
            )
        ).all()
        for row in rows:
            self._holes.pop(int(row[0]), None)
        if rows:
            log.info("outbox: %d late events found in holes", len(rows))
        return list(rows)

    async def _consume(self, c: SqlConnection) -> tuple[bool, list[int]]:
        position = (await c.execute(_POSITION)).scalar()
        if position is None:
            await c.execute(insert(C).values(name=CURSOR, position=0, updated_at=db_now()))
            position = 0
        events = (await c.execute(_EVENTS_AFTER, {"after": position})).all()
        n, passed = self._unbroken(position, [int(e[0]) for e in events])
        events = events[:n]
        late = await self._late(c)
        if not events and not late:
            return False, []
        found = [(a, r, d, t) for _, a, r, d, t in [*late, *events]]
        queued = await enqueue_events(c, None, found)
        if events:
            moved = await c.execute(_MOVE, {"was": position, "now": events[-1][0]})
            if not moved.rowcount:
                raise _Raced
            stamp = anyio.current_time()
            self._holes.update({hole: stamp for hole in passed})
        if queued:
            log.debug("%d events queued runs %s", len(found), queued)
        return len(events) == BATCH, queued

    async def prune(self) -> None:
        """Drop events that are consumed and older than ``keep_events`` (the last consumed one
        stays: SQLite numbers a new row after the highest one left)."""
        async with self.db.write() as c:
            position = (await c.execute(_POSITION)).scalar()
            if not position:
                return
            cutoff = db_time_in(-self.keep_events)
            await c.execute(delete(E).where(E.c.id < position, E.c.created_at < cutoff))
