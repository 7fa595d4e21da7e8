"""SQLAlchemy Core statements on a local SQLite database, run inline on the event loop.

The async engine (aiosqlite) hops to a thread and back for every statement: ~720 µs of CPU for
an indexed SELECT here (see :mod:`registry.meta.sql`) and two turns of the event loop — inside
a write transaction, both paid while the process's write lock is held. Measured at 25 pushes/s
fanned out to two Seawalls on 2 cores, the engine's write transactions (a run's rows, its
tasks, the outbox: ~7 per push) held the lock 10 ms at the median and the registry's writes
waited ~140 ms for it. Run inline through SQLAlchemy's synchronous engine, on the registry
executor's own connections and write lock (:class:`~registry.meta.sql.SqliteBackend`), the same
statements cost ~170 µs each and no turn of the loop.

Statements built once (:func:`~registry.meta.prepared.prepared`) skip SQLAlchemy's per-call
work here: ~20 µs each for a one-row read, block included.

Only statements whose size their arguments bound belong here (one run's rows, a batch of
events, a scope's ledger keys): a whole policy's ledger or a listing stays on the async engine.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Executable

from registry.meta.prepared import PreparedResult, run_prepared
from registry.meta.sql import SqliteBackend

__all__ = ["InlineConnection", "InlineSqlite"]


class InlineConnection:
    """The part of :class:`~sqlalchemy.ext.asyncio.AsyncConnection` the engine uses —
    ``await c.execute(statement)`` and ``c.dialect`` — over a synchronous connection. The
    statement runs when called; awaiting it never yields to the loop."""

    def __init__(self, engine: Engine, raw: sqlite3.Connection) -> None:
        self._engine, self._raw = engine, raw
        self._conn: Connection | None = None  # SQLAlchemy's, opened for the first statement
        self.dialect: Dialect = engine.dialect

    async def execute(
        self,
        statement: Executable,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    ) -> CursorResult[Any] | PreparedResult:
        """A :func:`~registry.meta.prepared.prepared` statement runs on the ``sqlite3``
        connection itself; any other through SQLAlchemy."""
        fast = run_prepared(self._raw, self.dialect, statement, parameters)
        if fast is not None:
            return fast
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn.execute(statement, parameters)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class InlineSqlite:
    """SQLAlchemy over a :class:`SqliteBackend`'s two connections (read, write), on the event
    loop's thread; its writes take the backend's write lock and transaction."""

    def __init__(self, backend: SqliteBackend) -> None:
        self.backend = backend
        self._reader = _engine(backend.reader)
        self._writer = _engine(backend.writer)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[InlineConnection]:
        """Statements on committed data, each its own snapshot (as on the async engine)."""
        conn = InlineConnection(self._reader, self.backend.reader())
        try:
            yield conn
        finally:
            conn.close()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[InlineConnection]:
        """A transaction: committed when the block ends, rolled back if it raises. The block
        should await nothing but its statements: the write lock is held until it ends."""
        async with self.backend.transaction():
            conn = InlineConnection(self._writer, self.backend.writer())
            try:
                yield conn
            finally:
                conn.close()


def _engine(connection: Callable[[], sqlite3.Connection]) -> Engine:
    """An engine whose one connection is the backend's ``connection()``."""
    return create_engine(
        "sqlite://",
        creator=lambda: _Borrowed(connection()),
        poolclass=StaticPool,
        pool_reset_on_return=None,
    )


class _Borrowed:
    """The backend's connection as SQLAlchemy sees it: the backend owns its transactions
    (``BEGIN IMMEDIATE`` … ``COMMIT`` in :meth:`SqliteBackend.transaction`) and its life, so
    SQLAlchemy's ``commit``, ``rollback`` and ``close`` do nothing — a connection closed after
    its block must not end the transaction another block has begun since."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)
