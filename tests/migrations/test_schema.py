"""The schema step on SQLite and on a real PostgreSQL: every way a database can arrive (empty,
made by 9420392, made before migrations at any schema since, newer than this code) ends at the
models' schema — Alembic's comparison of database and models is empty — or is refused, changing
nothing; nodes starting at once take turns."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from alembic import command
from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from registry.meta.db import POSTGRES_INDEXES, create_engine, init_schema
from seawall.migrations import (
    HEAD,
    VERSION_TABLE,
    DowngradeRefused,
    SchemaState,
    SchemaTooNew,
    State,
    Upgrade,
    upgrade_database,
)
from seawall.migrations.runner import alembic_config, head, read_state
from seawall.migrations.schema import APSCHEDULER_TABLES, differences
from tests.migrations.support import old_database

pytestmark = pytest.mark.anyio

#: tables whose rows an upgrade must keep (the fixture has rows in each)
DATA_TABLES = (
    "repository",
    "manifest",
    "tag",
    "blob",
    "repo_blob",
    "account",
    "permission",
    "registry_endpoint",
    "policy",
    "execution",
    "task",
    "replicated",
    "notify_webhook",
    "event",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'seawall.db'}"
    return str(request.getfixturevalue("postgres_url"))


@asynccontextmanager
async def opened(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def on(engine: AsyncEngine, fn: Callable[[Connection], Any]) -> Any:
    async with engine.connect() as conn:
        return await conn.run_sync(fn)


async def agrees_with_models(engine: AsyncEngine) -> None:
    assert await on(engine, differences) == []
    if engine.dialect.name == "postgresql":  # the listing indexes, not in the models
        found = await on(engine, lambda c: {r[0] for r in c.execute(text(PG_INDEXES_SQL))})
        assert set(POSTGRES_INDEXES) <= found


PG_INDEXES_SQL = "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"


async def state(engine: AsyncEngine) -> SchemaState:
    result: SchemaState = await on(engine, read_state)
    return result


async def tables(engine: AsyncEngine) -> set[str]:
    return set(await on(engine, lambda c: inspect(c).get_table_names()))


async def counts(engine: AsyncEngine) -> dict[str, int]:
    def count(c: Connection) -> dict[str, int]:
        return {
            t: int(c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in DATA_TABLES
        }

    result: dict[str, int] = await on(engine, count)
    return result


def run_revisions(to: str) -> Callable[[Connection], None]:
    """A schema step running the revisions themselves (not ``create_all``) up to ``to``."""
    return lambda conn: command.upgrade(alembic_config(conn), to)


def test_head_names_the_newest_revision() -> None:
    """The start's fast path compares the database with ``HEAD``: it must be the revisions'."""
    assert head() == HEAD


async def test_an_empty_database_is_created_at_head(empty_url: str) -> None:
    async with opened(empty_url) as engine:
        done = await upgrade_database(engine)
        assert (done.before.state, done.after) == (State.EMPTY, HEAD)
        await agrees_with_models(engine)
        again = await upgrade_database(engine)
        assert again.before.state is State.CURRENT and not again.changed


async def test_the_revisions_from_the_base_build_what_create_all_builds(empty_url: str) -> None:
    """A new database is made by ``create_all`` and stamped; the revisions run one by one from
    nothing must arrive at the very same schema, or upgraded databases drift from new ones."""
    async with opened(empty_url) as engine:
        await init_schema(engine, run_revisions("head"))
        assert (await state(engine)).state is State.CURRENT
        await agrees_with_models(engine)


async def test_a_9420392_database_is_stamped_at_the_baseline_and_upgraded(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with opened(old_database(kind, tmp_path, request)) as engine:
        before = await state(engine)
        assert (before.state, before.stamp_as) == (State.UNVERSIONED, "0001")
        rows = await counts(engine)
        assert all(rows.values()), rows  # the fixture has data everywhere that matters
        scheduler = await tables(engine) & APSCHEDULER_TABLES
        assert scheduler, "the fixture was made with a scheduled policy"

        done = await upgrade_database(engine)
        assert done.describe() == (
            f"database schema made before migrations upgraded (stamped 0001) to {HEAD}"
        )
        await agrees_with_models(engine)
        assert await counts(engine) == rows
        assert await tables(engine) & APSCHEDULER_TABLES == scheduler  # APScheduler's own


@pytest.mark.parametrize(
    ("drops", "stamp_as"),
    [
        pytest.param((), "0002", id="made-by-the-code-just-before-migrations"),
        pytest.param(
            ("DROP TABLE event_retry", "ALTER TABLE registry_endpoint DROP COLUMN options_json"),
            "0001",
            id="made-between-9420392-and-migrations",
        ),
        pytest.param(
            ("ALTER TABLE execution DROP COLUMN scope_json",), None, id="older-than-9420392"
        ),
    ],
)
async def test_a_database_made_before_migrations_is_stamped_where_it_stands(
    empty_url: str, drops: tuple[str, ...], stamp_as: str | None
) -> None:
    """Seawall before migrations grew its schema piecemeal (``create_all`` and added columns):
    stamped at the last revision whose objects it has, the rest made where missing."""
    async with opened(empty_url) as engine:
        await init_schema(engine, run_revisions("0002"))  # what that code's schema was

        def unversion(conn: Connection) -> None:
            for ddl in (f"DROP TABLE {VERSION_TABLE}", *drops):
                conn.execute(text(ddl))

        await init_schema(engine, unversion)
        before = await state(engine)
        assert (before.state, before.stamp_as) == (State.UNVERSIONED, stamp_as)
        done = await upgrade_database(engine)
        assert done.after == HEAD
        await agrees_with_models(engine)


async def test_a_newer_database_is_refused_and_left_alone(empty_url: str) -> None:
    async with opened(empty_url) as engine:
        await upgrade_database(engine)

        def newer(conn: Connection) -> None:  # as a newer Seawall leaves it
            conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))

        await init_schema(engine, newer)
        with pytest.raises(SchemaTooNew) as refused:
            await upgrade_database(engine)
        message = str(refused.value)
        assert "\n" not in message
        assert f"at revision 9999, newer than this Seawall knows (its newest is {HEAD})" in message
        now = await state(engine)
        assert (now.state, now.revision) == (State.AHEAD, "9999")


async def test_a_downgrade_is_refused_and_changes_nothing(empty_url: str) -> None:
    async with opened(empty_url) as engine:
        await upgrade_database(engine)
        with pytest.raises(DowngradeRefused, match="restore the backup"):
            await init_schema(engine, lambda c: command.downgrade(alembic_config(c), "0001"))
        assert (await state(engine)).state is State.CURRENT
        await agrees_with_models(engine)


async def test_a_failing_schema_step_changes_nothing(empty_url: str) -> None:
    """All of a step or none of it, on SQLite too (its DDL runs in the immediate transaction);
    SQLite's foreign keys are back on afterwards."""

    def half(conn: Connection) -> None:
        conn.execute(text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("a revision failed")

    async with opened(empty_url) as engine:
        with pytest.raises(RuntimeError, match="a revision failed"):
            await init_schema(engine, half)
        assert "half_done" not in await tables(engine)
        if engine.dialect.name == "sqlite":
            assert (
                await on(engine, lambda c: c.exec_driver_sql("PRAGMA foreign_keys").scalar()) == 1
            )


async def test_nodes_starting_at_once_upgrade_one_after_the_other(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Three processes' engines on one 9420392 database: the schema lock lets one upgrade it;
    the others then find it current (without the lock they would each run the revisions)."""
    url = old_database(kind, tmp_path, request)
    done: list[Upgrade] = []

    async def node() -> None:
        async with opened(url) as engine:
            done.append(await upgrade_database(engine))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(node)
    found = sorted(d.before.state for d in done)
    assert found == sorted([State.UNVERSIONED, State.CURRENT, State.CURRENT])
    async with opened(url) as engine:
        await agrees_with_models(engine)


def test_every_table_the_server_registers_has_a_revision() -> None:
    """A model table outside :data:`MODEL_MODULES` is made by no revision: upgraded databases
    would lack it (new ones too: the schema step creates only the listed modules' tables)."""
    script = (
        "import seawall.app\n"
        "from sqlmodel import SQLModel\n"
        "from seawall.migrations.schema import target_metadata\n"
        "print(' '.join(sorted(set(SQLModel.metadata.tables) - set(target_metadata().tables))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == [], (
        f"tables with no revision: {out.stdout.strip()}; add their module to "
        "seawall/migrations/schema.py MODEL_MODULES and run python -m seawall.migrations"
    )
