"""Garbage collection keeps the database's time, on SQLite and on PostgreSQL: a node whose clock
runs minutes ahead or behind takes no periodic-collection lease another node holds (and takes a
passed one), keeps a live hold and its blob, finishes no stale claim, keeps a blob marked a
moment ago for the whole grace, and a publishing node waits for a live claim and takes over only
a stale one. Nodes are in this process: the collection's clock is injected (``GcOptions.clock``),
the request path's is this module's ``datetime`` in :mod:`registry.meta.fence`."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Table, delete, insert, select, update

import registry.meta.fence as fence_module
from registry.meta.db import Database, create_engine, init_schema
from registry.meta.fence import HOLD_TTL, BlobFence
from registry.meta.gc import SqlGcIndex
from registry.meta.leases import db_now, db_time_in
from registry.meta.models import BlobGc, BlobHold, GcLease
from registry.meta.sql import PostgresBackend, SqlBackend, SqliteBackend, postgres_dsn
from registry.oci.digest import Digest
from registry.storage import paths
from registry.storage.drivers.filesystem import FilesystemDriver
from registry.storage.fence import BlobBusy
from registry.storage.gc import Collector, GcOptions, GcReport

pytestmark = pytest.mark.anyio
HOLDS: Table = BlobHold.__table__  # type: ignore[attr-defined]
MARKS: Table = BlobGc.__table__  # type: ignore[attr-defined]
LEASES: Table = GcLease.__table__  # type: ignore[attr-defined]
OFF = timedelta(minutes=20)  # how far a node's clock is off: more than CLAIM_STALE (15 min)
SKEWS = {"ahead": OFF, "behind": -OFF}
LEASE = timedelta(minutes=10)
SLACK = timedelta(seconds=5)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Site:
    """One database (through SQLAlchemy for setting up, the registry's executor for the code
    under test) and one store."""

    db: Database
    sql: SqlBackend
    driver: FilesystemDriver

    async def run(self, statement: object) -> None:
        async with self.db.write() as c:
            await c.execute(statement)  # type: ignore[call-overload]

    async def count(self, table: Table) -> int:
        async with self.db.read() as c:
            return len((await c.execute(select(table))).all())

    async def put_blob(self, name: str, age: timedelta = timedelta(0)) -> str:
        """Bytes stored under ``/blobs`` (modified ``age`` ago, by the store's clock)."""
        data = name.encode()
        digest = Digest.parse("sha256:" + hashlib.sha256(data).hexdigest())
        await self.driver.put_content(paths.blob_data(digest), data)
        if age:
            full = Path(self.driver.root) / paths.blob_data(digest).lstrip("/")
            then = time.time() - age.total_seconds()
            os.utime(full, (then, then))
        return str(digest)

    async def stored(self) -> set[str]:
        return {i.path async for i in self.driver.walk(paths.BLOBS)}

    async def collect(self, grace: timedelta, skew: timedelta) -> GcReport:
        """One collection by a node whose clock is ``skew`` off the database's."""
        options = GcOptions(grace, clock=lambda: datetime.now(UTC) + skew)
        return await Collector(self.driver, SqlGcIndex(self.sql, f"gc{skew}"), options).run()


@pytest.fixture(params=["sqlite", "postgresql"])
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
        sql: SqlBackend = SqliteBackend(str(tmp_path / "r.db"))
    else:
        url = request.getfixturevalue("postgres_url")
        dsn = postgres_dsn(url)
        assert dsn is not None
        sql = PostgresBackend(dsn)
    db = Database(create_engine(url))
    await init_schema(db.engine)
    yield Site(db, sql, FilesystemDriver(tmp_path / "store"))
    await sql.aclose()
    await db.dispose()


def node_clock(skew: timedelta) -> type[datetime]:
    """``datetime`` whose ``now`` is ``skew`` off (a node whose system clock is off)."""

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Skewed:  # type: ignore[override]
            return super().now(tz) + skew  # type: ignore[arg-type, return-value]

    return Skewed


@pytest.fixture
def publisher_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], None]:
    """Set the clock of the request path's fence (this process) ``skew`` off."""

    def set_skew(skew: timedelta) -> None:
        monkeypatch.setattr(fence_module, "datetime", node_clock(skew))

    return set_skew


async def _lease_left(site: Site) -> timedelta:
    async with site.db.read() as c:
        until, now = (await c.execute(select(LEASES.c.until, db_now()))).one()
    return until - now  # type: ignore[no-any-return]


@pytest.mark.parametrize("first", ["right", "ahead", "behind"])
async def test_no_node_takes_a_live_gc_lease_whatever_its_clock(site: Site, first: str) -> None:
    skews = {"right": timedelta(0), **SKEWS}

    async def take(name: str) -> bool:
        now = datetime.now(UTC) + skews[name]  # what collect_if_due passes: its own clock
        return await SqlGcIndex(site.sql, name).take_lease("periodic", now, now + LEASE)

    assert await take(first)
    assert LEASE - SLACK < await _lease_left(site) <= LEASE  # ends by the database's time
    others = [n for n in skews if n != first]
    assert [await take(n) for n in others] == [False, False]
    await site.run(update(LEASES).values(until=db_time_in(-1)))  # the interval has passed
    assert [await take(n) for n in others] == [True, False]
    assert LEASE - SLACK < await _lease_left(site) <= LEASE


@pytest.mark.parametrize("skew", SKEWS.values(), ids=SKEWS.keys())
async def test_a_gc_node_off_by_minutes_keeps_a_live_hold_and_its_blob(
    site: Site, skew: timedelta
) -> None:
    """A publication with two minutes left on its hold (it may link any moment), of a blob that
    is unreferenced and ripe: the hold and the bytes stay."""
    digest = await site.put_blob("held", age=timedelta(hours=2))
    await site.run(insert(HOLDS).values(digest=digest, token="t", until=db_time_in(120)))
    await site.run(insert(MARKS).values(digest=digest, marked_at=db_time_in(-7200)))
    report = await site.collect(timedelta(0), skew)
    assert (report.blobs_removed, report.errors) == (0, 0)
    assert len(await site.stored()) == 1 and await site.count(HOLDS) == 1
    await site.run(update(HOLDS).values(until=db_time_in(-1)))  # its publisher died
    report = await site.collect(timedelta(0), skew)
    assert report.blobs_removed == 1 and await site.stored() == set()
    assert await site.count(HOLDS) == 0 and await site.count(MARKS) == 0


@pytest.mark.parametrize("skew", SKEWS.values(), ids=SKEWS.keys())
async def test_a_gc_node_off_by_minutes_finishes_no_stale_claim(
    site: Site, skew: timedelta
) -> None:
    """A claim 16 minutes old (its collection died; a publication may have taken the blob over
    since): no collection deletes its bytes; the claim is dropped."""
    digest = await site.put_blob("claimed", age=timedelta(hours=2))
    await site.run(
        insert(MARKS).values(
            digest=digest, marked_at=db_time_in(-7200), claimed_at=db_time_in(-960), owner="dead"
        )
    )
    report = await site.collect(timedelta(hours=1), skew)
    assert (report.blobs_removed, report.errors) == (0, 0)
    assert len(await site.stored()) == 1 and await site.count(MARKS) == 0


@pytest.mark.parametrize("skew", SKEWS.values(), ids=SKEWS.keys())
async def test_a_blob_marked_a_moment_ago_waits_the_whole_grace(
    site: Site, skew: timedelta
) -> None:
    """Stored long ago, unreferenced a moment ago: the node that marks it and the one that
    looks again right after (clocks 2 × 20 minutes apart) both keep it for the 10-minute grace;
    once the mark is older than the grace it goes."""
    await site.put_blob("old", age=timedelta(hours=2))
    grace = timedelta(minutes=10)
    first = await site.collect(grace, skew)
    assert (first.blobs_marked, first.blobs_removed) == (1, 0)
    second = await site.collect(grace, -skew)
    assert (second.blobs_kept, second.blobs_removed) == (1, 0)
    assert len(await site.stored()) == 1
    await site.run(update(MARKS).values(marked_at=db_time_in(-601)))
    third = await site.collect(grace, -skew)
    assert third.blobs_removed == 1 and await site.stored() == set()


async def test_a_publishing_node_ahead_waits_for_a_live_claim(
    site: Site, publisher_clock: Callable[[timedelta], None]
) -> None:
    """A collection claimed the blob a minute ago (it is deleting the bytes): a publishing
    node whose clock is 20 minutes ahead waits (``503`` after its wait), never takes over."""
    publisher_clock(OFF)
    digest = "sha256:" + "a" * 64
    claim = {"digest": digest, "marked_at": db_time_in(-7200), "owner": "gc"}
    await site.run(insert(MARKS).values(claimed_at=db_time_in(-60), **claim))
    with pytest.raises(BlobBusy):
        await BlobFence(site.sql, wait_seconds=0.2).hold(digest)
    assert await site.count(MARKS) == 1 and await site.count(HOLDS) == 0


async def test_a_publishing_node_behind_takes_over_a_stale_claim(
    site: Site, publisher_clock: Callable[[timedelta], None]
) -> None:
    """The claim is 16 minutes old (its collection died): a node 20 minutes behind takes the
    blob over, and its hold lasts ``HOLD_TTL`` by the database's time."""
    publisher_clock(-OFF)
    digest = "sha256:" + "b" * 64
    claim = {"digest": digest, "marked_at": db_time_in(-7200), "owner": "gc"}
    await site.run(insert(MARKS).values(claimed_at=db_time_in(-960), **claim))
    fence = BlobFence(site.sql, wait_seconds=0.2)
    await fence.hold(digest)
    assert await site.count(MARKS) == 0
    async with site.db.read() as c:
        until, now = (await c.execute(select(HOLDS.c.until, db_now()))).one()
    assert HOLD_TTL - SLACK < until - now <= HOLD_TTL
    await fence.release(digest)
    await site.run(delete(HOLDS))
