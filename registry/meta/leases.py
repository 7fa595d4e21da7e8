"""Leases and claims on the database's clock, for every node sharing the database.

A *lease* is a row's ``lease_owner`` / ``lease_expires`` pair: its owner works on the row until
``lease_expires`` and renews it while working; once it has passed, any node may take the row.
Runs (``execution``), their tasks, webhook deliveries and event retries all keep time this way.

Every time a lease is compared with or set from is the **database's**, computed in the SQL
itself: nodes whose clocks disagree (one minutes ahead, one behind) still agree on whether a
lease has passed, because they all ask the same clock. A node's own clock is for what is local
to it (when to look again); :func:`clock_skew` measures how far it is from the database's.

The expressions compile per dialect and keep the stored form:

=============== ========================================== ====================================
                now                                        stored as
=============== ========================================== ====================================
PostgreSQL      ``statement_timestamp()`` (start of the    ``timestamptz`` (a ``timestamp``
                statement: stable within it, after any     column compares in the session's
                lock the transaction waited for before)    UTC)
SQLite          ``strftime('%Y-%m-%d %H:%M:%f000','now')`` text, SQLAlchemy's form
                (UTC, milliseconds)                        ``YYYY-MM-DD HH:MM:SS.ffffff``: the
                                                           strings order as the times do
=============== ========================================== ====================================

A *claim* takes a row that stands for a resource more than one node may want (a policy, whose
runs must not overlap). :func:`claim_lock` serialises the claims: on PostgreSQL a row lock
(``FOR NO KEY UPDATE SKIP LOCKED``: a node never waits for another's claim, and inserting rows
that refer to the locked one is not blocked), held until the claiming transaction ends; the
claim's own check must then run in a *later* statement of that transaction, whose snapshot
sees every claim committed before the lock was granted. SQLite has one writer at a time: a
claim made in one ``UPDATE`` statement (its check in its ``WHERE``) is already serialised.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import Float, bindparam, literal, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlmodel.sql.sqltypes import UTCDateTime

if TYPE_CHECKING:  # db imports the executors; leases need only the type
    from registry.meta.db import SqlConnection

__all__ = [
    "claim_lock",
    "clock_skew",
    "database_time",
    "db_now",
    "db_time_in",
    "lease_free",
    "lease_held",
    "lease_seconds",
    "sql_now",
    "sql_time_in",
]

#: SQLite: the database's time in SQLAlchemy's stored form (``%f`` is ``SS.SSS``).
_SQLITE_FORMAT = "'%Y-%m-%d %H:%M:%f000'"


class _DbNow(FunctionElement[datetime]):
    """The database's current time (UTC)."""

    type = UTCDateTime()
    name = "db_now"
    inherit_cache = True


class _DbTimeIn(FunctionElement[datetime]):
    """The database's current time plus a number of seconds (one argument, may be negative)."""

    type = UTCDateTime()
    name = "db_time_in"
    inherit_cache = True


@compiles(_DbNow, "postgresql")
def _now_postgresql(element: _DbNow, compiler: Any, **kw: Any) -> str:
    return "statement_timestamp()"


@compiles(_DbNow, "sqlite")
def _now_sqlite(element: _DbNow, compiler: Any, **kw: Any) -> str:
    return f"strftime({_SQLITE_FORMAT}, 'now')"


@compiles(_DbTimeIn, "postgresql")
def _in_postgresql(element: _DbTimeIn, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(statement_timestamp() + make_interval(secs => {seconds}))"


@compiles(_DbTimeIn, "sqlite")
def _in_sqlite(element: _DbTimeIn, compiler: Any, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime({_SQLITE_FORMAT}, 'now', printf('%+.3f seconds', {seconds}))"


def db_now() -> ColumnElement[datetime]:
    """The database's current time, as a SQL expression (typed: reads back as an aware UTC
    datetime)."""
    return _DbNow()  # type: ignore[return-value]


def db_time_in(seconds: float | timedelta | str) -> ColumnElement[datetime]:
    """The database's time ``seconds`` from now (negative: ago). A ``str`` names a bind
    parameter holding the seconds, for statements built once and run with different values."""
    if isinstance(seconds, str):
        value: Any = bindparam(seconds, type_=Float())
    else:
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        value = literal(float(seconds), Float())
    return _DbTimeIn(value)  # type: ignore[return-value]


def lease_seconds(lease: timedelta | float) -> float:
    """A lease's length in seconds (a bind value for :func:`db_time_in`)."""
    return lease.total_seconds() if isinstance(lease, timedelta) else float(lease)


def lease_free(expires: Any) -> ColumnElement[bool]:
    """The lease whose end is the column ``expires`` is free: never taken, or passed."""
    return expires.is_(None) | (expires < db_now())  # type: ignore[no-any-return]


def lease_held(expires: Any) -> ColumnElement[bool]:
    """The lease whose end is the column ``expires`` has not passed (someone holds it)."""
    return expires >= db_now()  # type: ignore[no-any-return]


async def claim_lock(c: SqlConnection, key: Any, value: Any) -> bool:
    """Serialise claims on the row whose primary key column ``key`` equals ``value``, inside
    the caller's transaction; False when another transaction is claiming it right now (or it
    does not exist): skip it, try again later.

    PostgreSQL: the row is locked (``FOR NO KEY UPDATE SKIP LOCKED``) until the transaction
    ends; check what the claim depends on in a statement *after* this one. SQLite: always True
    (one writer at a time; make the claim one statement that checks as it writes).
    """
    if c.dialect.name != "postgresql":
        return True
    row = (
        await c.execute(
            select(key).where(key == value).with_for_update(skip_locked=True, key_share=True)
        )
    ).first()
    return row is not None


async def database_time(c: AsyncConnection) -> datetime:
    """The database's current time (aware, UTC)."""
    found = (await c.execute(select(db_now()))).scalar_one()
    if isinstance(found, str):  # SQLite, when the type's processing is bypassed
        found = datetime.fromisoformat(found)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


async def clock_skew(c: AsyncConnection, node_time: datetime) -> timedelta:
    """How far ``node_time`` (a node's clock, read now) is ahead of the database's clock
    (negative: behind), within a round trip."""
    return node_time - await database_time(c)


_DIALECTS = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}


@cache
def sql_now(dialect: str) -> str:
    """:func:`db_now` as SQL text in ``dialect`` (``sqlite`` or ``postgresql``), for the
    registry's plain-SQL executor (:mod:`registry.meta.sql`); the same expression, compiled."""
    return str(_DbNow().compile(dialect=_DIALECTS[dialect]))


@cache
def sql_time_in(dialect: str, param: str) -> str:
    """:func:`db_time_in` as SQL text in ``dialect``: the database's time plus the seconds in
    the ``:param`` bind parameter (a float; negative: ago), for :mod:`registry.meta.sql`."""
    seconds: ColumnElement[Any] = literal_column(f":{param}")
    return str(_DbTimeIn(seconds).compile(dialect=_DIALECTS[dialect]))
