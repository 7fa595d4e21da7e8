"""The metadata database: an async SQLAlchemy engine for SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from registry.meta import models  # noqa: F401 - registers the tables

__all__ = ["Database", "create_engine", "init_schema"]


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url`` (``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://…``).

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a killed process never loses a
    committed transaction; a power cut may roll back the last few (the database stays
    consistent, and blob bytes are fsynced before their rows are written, so nothing visible is
    ever partial).
    """
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


async def init_schema(engine: AsyncEngine) -> None:
    """Create missing tables (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(SQLModel.metadata.create_all)


class Database:
    """The engine plus the write discipline: SQLite allows one writer at a time, and letting
    pooled connections race for its lock costs milliseconds of busy-handler sleeps per write, so
    this process's writes queue on an in-process lock instead (other processes still meet
    ``busy_timeout``). PostgreSQL writes run concurrently."""

    def __init__(self, engine: AsyncEngine, write_lock: anyio.Lock | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        if write_lock is None and self.dialect == "sqlite":
            write_lock = anyio.Lock()
        self._write_lock = write_lock

    def read(self) -> AsyncContextManager[AsyncConnection]:
        return self.engine.connect()

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.begin() as conn:
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()
