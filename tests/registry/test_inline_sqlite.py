"""SQLite writes on the event loop (registry.meta.sql.SqliteBackend, registry.meta.inline):
they commit or roll back whole, never block the loop while another process holds the
database's lock, keep SQLAlchemy from ending a transaction it did not begin, and checkpoint
the write-ahead log off the loop."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select

from registry.meta import sql as sql_module
from registry.meta.db import Database, create_engine
from registry.meta.sql import SqliteBackend

pytestmark = pytest.mark.anyio

ROWS = Table("rows", MetaData(), Column("id", Integer, primary_key=True), Column("v", String))


@pytest.fixture
def path(tmp_path: Path) -> str:
    p = str(tmp_path / "inline.db")
    with sqlite3.connect(p) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, v TEXT)")
    return p


@pytest.fixture
def backend(path: str) -> Iterator[SqliteBackend]:
    b = SqliteBackend(path)
    yield b
    b.close()


@pytest.fixture
async def db(path: str) -> AsyncIterator[Database]:
    database = Database(create_engine(f"sqlite:///{path}"))
    yield database
    await database.dispose()


async def _count(db: Database) -> int:
    async with db.quick_read() as c:
        return int((await c.execute(select(func.count()).select_from(ROWS))).scalar_one())


async def test_quick_writes_commit_whole_or_not_at_all(db: Database) -> None:
    async with db.quick_write() as c:
        await c.execute(insert(ROWS).values(v="a"))
        await c.execute(insert(ROWS).values(v="b"))
    with pytest.raises(RuntimeError):
        async with db.quick_write() as c:
            await c.execute(insert(ROWS).values(v="c"))
            raise RuntimeError("the block fails")
    assert await _count(db) == 2
    # and the connection is usable after the rollback
    async with db.quick_write() as c:
        await c.execute(insert(ROWS).values(v="d"))
    assert await _count(db) == 3


async def test_a_write_waits_on_the_loop_for_another_process(
    path: str, backend: SqliteBackend
) -> None:
    """Another process holds SQLite's write lock: the write waits without blocking the loop
    (the test itself goes on running) and commits once the lock is free."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    done = anyio.Event()

    async def write() -> None:
        await backend.write(lambda t: t.execute("INSERT INTO rows (v) VALUES ('x')"))
        done.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(write)
            await anyio.sleep(0.2)  # reached only if the waiting write left the loop free
            assert not done.is_set()
            other.execute("COMMIT")
            with anyio.fail_after(10):
                await done.wait()
        assert other.execute("SELECT count(*) FROM rows").fetchone() == (1,)
    finally:
        other.close()


async def test_a_block_that_ended_cannot_end_the_next_ones_transaction(db: Database) -> None:
    """Two quick writes queue on one lock and one connection; the first one's SQLAlchemy
    connection closing (which rolls back, as SQLAlchemy does) leaves the second's rows be."""
    second_inside = anyio.Event()
    release_second = anyio.Event()

    async def first() -> None:
        async with db.quick_write() as c:
            await c.execute(insert(ROWS).values(v="first"))

    async def second() -> None:
        async with db.quick_write() as c:
            await c.execute(insert(ROWS).values(v="second"))
            second_inside.set()
            await release_second.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await second_inside.wait()
        tg.start_soon(first)  # queued on the write lock behind the second
        async with db.quick_read() as c:  # the reader sees committed rows only
            assert (await c.execute(select(func.count()).select_from(ROWS))).scalar() == 0
        release_second.set()
    assert await _count(db) == 2


async def test_large_writes_run_off_the_loop_and_commit(backend: SqliteBackend) -> None:
    rows = [{"v": str(i)} for i in range(2000)]
    await backend.write(
        lambda t: t.executemany("INSERT INTO rows (v) VALUES (:v)", rows), large=True
    )
    assert await backend.one("SELECT count(*) FROM rows") == (2000,)


async def test_the_log_is_checkpointed_every_so_many_commits(
    backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_module, "CHECKPOINT_EVERY", 3)
    checkpoints: list[int] = []
    real = backend._checkpoint
    monkeypatch.setattr(backend, "_checkpoint", lambda: (checkpoints.append(1), real())[1])
    for i in range(7):
        await backend.write(lambda t, i=i: t.execute("INSERT INTO rows (v) VALUES (:v)", v=i))
    assert len(checkpoints) == 2
    assert await backend.one("SELECT count(*) FROM rows") == (7,)


async def test_the_log_starts_again_under_a_stream_of_writes(
    path: str, backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints hold this process's writes off, so each one copies every frame and the log
    is reused from its start: under writes from many tasks at once it stays small (a
    checkpoint racing the writes never caught up and the log grew without bound)."""
    monkeypatch.setattr(sql_module, "CHECKPOINT_EVERY", 20)
    blob = "x" * 3000

    async def writer() -> None:
        for _ in range(40):
            await backend.write(lambda t: t.execute("INSERT INTO rows (v) VALUES (:v)", v=blob))
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for _ in range(25):
            tg.start_soon(writer)
    assert await backend.one("SELECT count(*) FROM rows") == (1000,)
    # 1,000 commits of a page or two each: ~6 MB of log without a restart
    assert _log_bytes(path) < 1_000_000


def _log_bytes(path: str) -> int:
    return os.path.getsize(path + "-wal")
