"""The metadata database: an async SQLAlchemy engine for SQLite (embedded default) or PostgreSQL.

URLs: ``sqlite[+aiosqlite]:///path``; ``postgresql://user:pass@host:port/db`` (also
``postgres://`` and ``postgresql+<driver>://``), normalised to ``postgresql+asyncpg://`` here and
to a plain DSN for the hot-path executor (:func:`registry.meta.sql.postgres_dsn`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy import Connection, MetaData, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from registry.meta import models  # noqa: F401 - registers the tables
from registry.meta.inline import InlineConnection, InlineSqlite
from registry.meta.sql import (
    PG_SERVER_SETTINGS,
    SQLITE_PRAGMAS,
    SqliteBackend,
    postgres_dsn,
    sqlite_path,
)

#: A connection of either kind: the async engine's, or SQLite's inline one (``execute`` and
#: ``dialect`` only).
SqlConnection = AsyncConnection | InlineConnection

__all__ = [
    "POSTGRES_INDEXES",
    "SCHEMA_LOCK_KEY",
    "Database",
    "SchemaStep",
    "SqlConnection",
    "create_engine",
    "create_schema",
    "init_schema",
    "is_postgres",
    "sqlalchemy_url",
]

#: The key of the PostgreSQL advisory lock held around the schema step: nodes starting at once
#: against one database create or upgrade the schema one after the other, not in a race.
SCHEMA_LOCK_KEY = 0x5EA3A11  # "seawall"

#: Indexes the PostgreSQL hot path needs beyond the models' (by name): listings page with
#: ``COLLATE "C"`` (byte order, as SQLite's), which the default-collation indexes cannot serve.
POSTGRES_INDEXES = {
    "ix_repository_name_c": 'ON repository (name COLLATE "C")',
    "ix_tag_name_c": 'ON tag (repository_id, name COLLATE "C")',
}

#: Brings the schema of the database on the connection up to date. It runs inside the schema
#: transaction (:func:`init_schema`), so it should not commit; it raises to roll everything back.
SchemaStep = Callable[[Connection], None]


def is_postgres(url: str) -> bool:
    return postgres_dsn(url) is not None


def sqlalchemy_url(url: str) -> str:
    """``url`` with the async driver SQLAlchemy needs (``+aiosqlite``, ``+asyncpg``)."""
    dsn = postgres_dsn(url)
    if dsn is not None:
        return "postgresql+asyncpg" + dsn[len("postgresql") :]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    return url


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url`` (``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://…``).

    SQLite runs in WAL mode with ``synchronous=NORMAL``: a killed process never loses a
    committed transaction; a power cut may roll back the last few (the database stays
    consistent, and blob bytes are fsynced before their rows are written, so nothing visible is
    ever partial).
    """
    url = sqlalchemy_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for pragma in SQLITE_PRAGMAS:
                cur.execute(pragma)
            cur.close()

        return engine
    return create_async_engine(
        url,
        pool_size=5,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"server_settings": dict(PG_SERVER_SETTINGS)},
    )


def create_schema(conn: Connection, metadata: MetaData = SQLModel.metadata) -> None:
    """The tables of ``metadata`` (default: every registered model's), made where missing,
    with the PostgreSQL indexes: the whole schema of an empty database. It adds nothing to a
    table that exists; changing one is the job of a versioned migration (``seawall.migrations``),
    passed to :func:`init_schema` as the step."""
    metadata.create_all(conn)
    if conn.dialect.name == "postgresql":
        for name, on in POSTGRES_INDEXES.items():
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} {on}"))


async def init_schema(engine: AsyncEngine, step: SchemaStep = create_schema) -> None:
    """Run ``step`` (default: :func:`create_schema`) in one transaction that holds the schema
    lock, so processes starting at once against one database take turns and each sees the
    schema the one before left; the step's changes are all committed or, if it raises, none.

    PostgreSQL: a transaction-scoped advisory lock (:data:`SCHEMA_LOCK_KEY`); DDL is
    transactional. SQLite: ``BEGIN IMMEDIATE`` (the database's write lock, waiting up to its
    busy timeout), with foreign keys off while it runs — SQLite changes a table by copying it
    into a new one, which foreign-key actions would otherwise cascade into — and back on after.
    """
    async with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY}
                    )
                await conn.run_sync(step)
            return
        await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # no effect inside a transaction
        await conn.commit()
        try:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            await conn.run_sync(step)
            await conn.commit()
        finally:
            await conn.rollback()  # nothing left after the commit; else the step's changes
            await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            await conn.commit()


class Database:
    """The engine plus the write discipline: SQLite allows one writer at a time, and letting
    pooled connections race for its lock costs milliseconds of busy-handler sleeps per write, so
    this process's writes queue on an in-process lock instead (other processes still meet
    ``busy_timeout``). PostgreSQL writes run concurrently.

    On a SQLite file, :meth:`quick_read` and :meth:`quick_write` run inline on the event loop
    (:mod:`registry.meta.inline`) over ``sqlite``, the registry's executor, whose write lock all
    writes then share; without one given, the database makes its own."""

    def __init__(self, engine: AsyncEngine, sqlite: SqliteBackend | None = None) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._owned: SqliteBackend | None = None
        if sqlite is None and self.dialect == "sqlite":
            path = sqlite_path(engine.url.render_as_string())
            if path and path != ":memory:":
                sqlite = self._owned = SqliteBackend(path)
        self._inline = InlineSqlite(sqlite) if sqlite is not None else None
        self._write_lock: anyio.Lock | None = None
        if self.dialect == "sqlite":
            self._write_lock = sqlite.write_lock if sqlite is not None else anyio.Lock()

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

    def quick_read(self) -> AsyncContextManager[SqlConnection]:
        """Reads whose size their arguments bound (a row, one run's rows, a batch): on a SQLite
        file inline on the event loop, else as :meth:`read`."""
        if self._inline is None:
            return self.engine.connect()
        return self._inline.read()

    def quick_write(self) -> AsyncContextManager[SqlConnection]:
        """A write transaction of such statements, as :meth:`quick_read`; its block awaits
        nothing but them (on SQLite the write lock is held until it ends)."""
        if self._inline is None:
            return self.write()
        return self._inline.write()

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._owned is not None:
            self._owned.close()
