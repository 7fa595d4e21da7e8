"""Prepared statements (registry.meta.prepared) on the inline SQLite connection give what
SQLAlchemy gives for the same statement: rows, mappings, typed values, defaults, row counts,
inserted keys and errors; what they cannot run as SQLAlchemy would is left to SQLAlchemy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel.sql.sqltypes import UTCDateTime

from registry.meta.db import Database, create_engine
from registry.meta.leases import db_now
from registry.meta.prepared import one_of, prepared, run_prepared

pytestmark = pytest.mark.anyio

META = MetaData()
RUNS = Table(
    "runs",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String(32), nullable=False, unique=True),
    Column("status", String(16), nullable=False, default="Pending"),
    Column("done", Boolean, nullable=False, default=False),
    Column("total", Integer, nullable=False, default=0),
    Column("at", UTCDateTime()),  # as the models' times: read back aware
)

BY_ID = prepared(select(RUNS).where(RUNS.c.id == bindparam("rid")))
BY_STATUS = prepared(
    select(RUNS.c.name, RUNS.c.at)
    .where(one_of(RUNS.c.status, ("Pending", "InProgress")))
    .order_by(RUNS.c.id)
)
COUNT = prepared(select(func.count()).select_from(RUNS))
ADD = prepared(insert(RUNS))
SET = prepared(update(RUNS).where(RUNS.c.id == bindparam("rid")))  # SET columns: the parameters
CLOSE = prepared(update(RUNS).where(RUNS.c.id == bindparam("rid")).values(at=db_now(), done=True))
AT = datetime(2026, 12, 5, 19, 30, 1, 250000, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(create_engine(f"sqlite:///{tmp_path / 'prepared.db'}"))
    async with database.engine.begin() as c:
        await c.run_sync(META.create_all)
    yield database
    await database.dispose()


async def both(db: Database, statement: Any, params: Any = None) -> tuple[Any, Any]:
    """``statement`` read on the inline connection and on the async engine: as mappings."""
    async with db.quick_read() as c:
        inline = [dict(r) for r in (await c.execute(statement, params)).mappings().all()]
    async with db.read() as c:
        engine = [dict(r) for r in (await c.execute(statement, params)).mappings().all()]
    return inline, engine


async def test_rows_and_types_are_sqlalchemys(db: Database) -> None:
    async with db.quick_write() as c:
        res = await c.execute(ADD, [{"name": "a", "at": AT}, {"name": "b", "at": None}])
        assert res.rowcount == 2
        one = await c.execute(ADD, {"name": "c", "status": "Succeed", "done": True, "at": AT})
        assert one.inserted_primary_key == (3,)
    inline, engine = await both(db, BY_ID, {"rid": 1})
    assert inline == engine
    assert inline == [
        {"id": 1, "name": "a", "status": "Pending", "done": False, "total": 0, "at": AT}
    ]  # the columns' defaults were written, the time read back aware
    inline, engine = await both(db, BY_STATUS)
    assert inline == engine == [{"name": "a", "at": AT}, {"name": "b", "at": None}]
    async with db.quick_read() as c:
        assert (await c.execute(COUNT)).scalar_one() == 3
        assert (await c.execute(BY_ID, {"rid": 9})).mappings().first() is None
        assert (await c.execute(BY_ID, {"rid": 3})).first()[1:4] == ("c", "Succeed", True)
        assert (await c.execute(BY_STATUS)).scalars().all() == ["a", "b"]


async def test_updates_set_their_parameters_and_values(db: Database) -> None:
    async with db.quick_write() as c:
        await c.execute(ADD, {"name": "a"})
        await c.execute(ADD, {"name": "b"})
        assert (await c.execute(SET, {"rid": 1, "status": "InProgress", "total": 4})).rowcount == 1
        assert (await c.execute(CLOSE, {"rid": 2, "status": "Succeed"})).rowcount == 1
        assert (await c.execute(SET, {"rid": 7, "total": 1})).rowcount == 0
    inline, engine = await both(db, select(RUNS).order_by(RUNS.c.id))
    assert inline == engine
    first, second = inline
    assert (first["status"], first["total"], first["done"], first["at"]) == (
        "InProgress",
        4,
        False,
        None,
    )
    assert (second["status"], second["done"]) == ("Succeed", True)
    assert isinstance(second["at"], datetime)  # the database's time, read back as SQLAlchemy does


async def test_errors_are_sqlalchemys_and_roll_the_block_back(db: Database) -> None:
    async with db.quick_write() as c:
        await c.execute(ADD, {"name": "a"})
    with pytest.raises(IntegrityError):
        async with db.quick_write() as c:
            await c.execute(ADD, {"name": "b"})
            await c.execute(ADD, {"name": "a"})  # unique name
    async with db.quick_read() as c:
        assert (await c.execute(COUNT)).scalar_one() == 1
    with pytest.raises(StatementError):  # rows naming different columns: SQLAlchemy says so
        async with db.quick_write() as c:
            await c.execute(ADD, [{"name": "x", "total": 1}, {"name": "y"}])


async def test_only_what_it_can_run_as_sqlalchemy_would(db: Database) -> None:
    """Not prepared, an ``IN`` list expanded at execution, a callable default: SQLAlchemy's."""
    raw = db._inline.backend.reader()  # type: ignore[union-attr]
    dialect = db.engine.dialect
    assert run_prepared(raw, dialect, BY_ID, {"rid": 1}) is not None
    assert run_prepared(raw, dialect, select(RUNS).where(RUNS.c.id == 1), None) is None
    in_list = prepared(select(RUNS.c.id).where(RUNS.c.id.in_(bindparam("ids", expanding=True))))
    assert run_prepared(raw, dialect, in_list, {"ids": [1, 2]}) is None
    stamped = Table(
        "runs",
        MetaData(),
        Column("id", Integer, primary_key=True),
        Column("name", String),
        Column("status", String, default="Pending"),
        Column("done", Boolean, default=False),
        Column("total", Integer, default=0),
        Column("at", UTCDateTime(), default=lambda: AT),
    )
    assert run_prepared(raw, dialect, prepared(insert(stamped)), {"name": "z"}) is None
    async with db.quick_write() as c:  # and it runs, through SQLAlchemy
        await c.execute(ADD, [{"name": "a"}, {"name": "b"}, {"name": "c"}])
        assert (await c.execute(in_list, {"ids": [1, 3]})).scalars().all() == [1, 3]
        await c.execute(prepared(insert(stamped)), {"name": "z"})
    inline, _ = await both(db, BY_ID, {"rid": 4})
    assert inline[0]["at"] == AT
