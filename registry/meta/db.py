"""The metadata database: an async SQLAlchemy engine for SQLite (embedded default) or PostgreSQL.

URLs: ``sqlite[+aiosqlite]:///path``; ``postgresql://user:pass@host:port/db`` (also
``postgres://`` and ``postgresql+<driver>://``), normalised to ``postgresql+asyncpg://`` here and
to a plain DSN for the hot-path executor (:func:`registry.meta.sql.postgres_dsn`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from contextlib import asynccontextmanager
from typing import Any

import anyio
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlmodel import SQLModel

from registry.meta import models  # noqa: F401 - registers the tables
from registry.meta.sql import PG_SERVER_SETTINGS, SQLITE_PRAGMAS, postgres_dsn

__all__ = ["Database", "create_engine", "init_schema", "is_postgres", "sqlalchemy_url"]

#: The key of the PostgreSQL advisory lock held around schema creation: nodes starting at once
#: against one fresh database create the tables one after the other, not in a race.
SCHEMA_LOCK_KEY = 0x5EA3A11  # "seawall"

#: Indexes the PostgreSQL hot path needs beyond the models': listings page with ``COLLATE "C"``
#: (byte order, as SQLite's), which the default-collation indexes cannot serve.
_POSTGRES_INDEXES = (
    'CREATE INDEX IF NOT EXISTS ix_repository_name_c ON repository (name COLLATE "C")',
    'CREATE INDEX IF NOT EXISTS ix_tag_name_c ON tag (repository_id, name COLLATE "C")',
)


#: Indexes garbage collection needs (``registry.meta.gc``), made here for a database created
#: before they were in the models (``create_all`` adds indexes only with a new table).
_GC_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_repo_blob_digest ON repo_blob (digest)",
    "CREATE INDEX IF NOT EXISTS ix_manifest_ref_ref ON manifest_ref (ref_digest)",
    "CREATE INDEX IF NOT EXISTS ix_repo_manifest_digest ON repo_manifest (digest)",
)


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


async def init_schema(engine: AsyncEngine) -> None:
    """Create missing tables (idempotent). On PostgreSQL under a transaction-scoped advisory
    lock, so several nodes starting at once against one fresh database do not race (without it,
    two ``CREATE TABLE`` of the same table collide on ``pg_type``'s unique index)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
        await conn.run_sync(SQLModel.metadata.create_all)
        await conn.run_sync(_add_missing_columns)
        for ddl in _GC_INDEXES:
            await conn.execute(text(ddl))
        if conn.dialect.name == "postgresql":
            for ddl in _POSTGRES_INDEXES:
                await conn.execute(text(ddl))


def _add_missing_columns(conn: Connection) -> None:
    """Columns added to a table since the database was created (``create_all`` makes missing
    tables only): ``ALTER TABLE … ADD COLUMN`` with the column's default, so a data directory
    from an earlier version keeps working. Columns are only ever added, never changed."""
    inspector = inspect(conn)
    for table in SQLModel.metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            ddl = f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'
            default = getattr(column.default, "arg", None)
            if default is not None and not callable(default):
                ddl += f" DEFAULT {_literal(default)}"
                if not column.nullable:
                    ddl += " NOT NULL"
            conn.execute(text(ddl))


def _literal(value: object) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


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
