"""The parts of read-through that need no server: single flight, the pending manifests' bounds
(an injected clock), the content store's additions (on SQLite and PostgreSQL), where the
upstream list comes from (a real SQLite database), and the TCP probe that lets a failed region
back in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import insert

import engine.state.models  # noqa: F401 - registers the tables
from engine.regions.models import Region
from engine.state.models import RegistryEndpoint
from registry.http.pending import PendingManifests
from registry.http.upstream import SingleFlight
from registry.meta.content import ContentStore, ManifestRecord
from registry.meta.db import Database, create_engine, init_schema
from registry.meta.sql import PostgresBackend, SqliteBackend, postgres_dsn, sqlite_path
from registry.oci.manifest import ParsedManifest, parse_manifest
from seawall.read_through import connects, named_endpoints, region_endpoints
from tests.support.client import image_manifest, sha256

pytestmark = pytest.mark.anyio
E = RegistryEndpoint.__table__  # type: ignore[attr-defined]
G = Region.__table__  # type: ignore[attr-defined]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_single_flight_runs_identical_work_once_and_shares_its_outcome() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls, release = [], anyio.Event()

    async def work() -> int:
        calls.append(1)
        await release.wait()
        return 42

    results: list[int] = []

    async def ask() -> None:
        results.append(await flight.run("k", work))

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        assert flight.running("k")
        release.set()
    assert calls == [1] and results == [42] * 20 and flight.joined == 19
    assert not flight.running("k")

    async def fails() -> int:
        raise LookupError("gone")

    with pytest.raises(LookupError):
        await flight.run("k", fails)
    assert await flight.run("k", work) == 42  # the key is free again after a failure


async def test_a_leader_that_is_cancelled_still_serves_the_others() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    release = anyio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    got: list[str] = []
    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as leader_scope:
            tg.start_soon(flight.run, "k", work)
            await anyio.wait_all_tasks_blocked()

        async def follower() -> None:
            got.append(await flight.run("k", work))

        tg.start_soon(follower)
        await anyio.wait_all_tasks_blocked()
        leader_scope.cancel()
        tg.cancel_scope.deadline = anyio.current_time() + 5
        release.set()
    assert got == ["done"]


def _record(seed: str) -> tuple[ManifestRecord, ParsedManifest]:
    data = image_manifest(seed.encode(), [f"layer-{seed}".encode()])
    parsed = parse_manifest(data, "application/vnd.oci.image.manifest.v1+json")
    return ManifestRecord(sha256(data), parsed.media_type, len(data), data), parsed


async def test_pending_manifests_expire_and_stay_within_their_bytes() -> None:
    now = [0.0]
    first, parsed1 = _record("one")
    second, parsed2 = _record("two")
    third, parsed3 = _record("three")
    bound = first.size + second.size + 8
    pending = PendingManifests(ttl_seconds=60, max_bytes=bound, clock=lambda: now[0])
    pending.add("app", first, parsed1)
    assert pending.get("app", first.digest) is not None and not pending.get("other", first.digest)
    assert pending.blob_size("app", sha256(b"layer-one")) == len(b"layer-one")
    now[0] = 30.0
    pending.add("app", second, parsed2)
    now[0] = 40.0
    pending.add("app", third, parsed3)  # over the bytes: oldest goes
    assert pending.get("app", first.digest) is None and pending.get("app", second.digest)
    now[0] = 95.0  # past the second's 60 s, within the third's
    assert pending.get("app", second.digest) is None and pending.get("app", third.digest)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 's.db'}")
    await init_schema(engine)
    yield Database(engine)
    await engine.dispose()


async def test_upstreams_are_the_named_endpoints_else_the_regions(db: Database) -> None:
    async with db.write() as c:
        for i, name in ((1, "east"), (2, "west"), (3, "north")):
            url = f"http://{name}.example"
            await c.execute(insert(E).values(id=i, name=name, type="seawall", url=url))
        await c.execute(insert(G).values(name="z-west", registry_id=2))
        await c.execute(insert(G).values(name="a-north", registry_id=3))
    assert list(await named_endpoints(db, ["west", "gone", "east"])()) == [2, 1]
    assert list(await region_endpoints(db)()) == [3, 2]  # by region name


async def test_the_probe_tells_an_open_port_from_a_closed_one() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener:
        assert await connects(f"http://127.0.0.1:{port}/")
    assert not await connects(f"http://127.0.0.1:{port}/", seconds=1)
    assert await connects("file:///somewhere")  # nothing to connect to


@pytest.fixture
async def content(database_url: str) -> AsyncIterator[ContentStore]:
    """A ContentStore on a fresh database of each kind (PostgreSQL: the session cluster)."""
    engine = create_engine(database_url)
    await init_schema(engine)
    await engine.dispose()
    path, dsn = sqlite_path(database_url), postgres_dsn(database_url)
    sql = SqliteBackend(path) if path is not None else PostgresBackend(str(dsn))
    yield ContentStore(sql)
    await sql.aclose()


async def _events(content: ContentStore) -> list[tuple[str, str | None]]:
    return [(r[0], r[1]) for r in await content.sql.all("SELECT action, tag FROM event")]


async def test_a_fetched_manifest_is_stored_whole_and_unannounced(content: ContentStore) -> None:
    record, parsed = _record("fetched")
    assert not await content.put_fetched_manifest("app", record.digest, record.data, parsed)
    assert await content.get_manifest("app", record.digest) is None  # its blobs are not here
    for blob in (b"fetched", b"layer-fetched"):
        await content.link_blob("app", sha256(blob), len(blob))
    assert await content.put_fetched_manifest("app", record.digest, record.data, parsed)
    assert await content.put_fetched_manifest("app", record.digest, record.data, parsed)  # again
    stored = await content.get_manifest("app", record.digest)
    assert stored is not None and stored.data == record.data
    assert await content.list_tags("app", None, None) == []  # no tag
    assert await _events(content) == []  # no outbox event


async def test_what_was_deleted_here_lately_is_known(content: ContentStore) -> None:
    record, parsed = _record("deleted")
    for blob in (b"deleted", b"layer-deleted"):
        await content.link_blob("app", sha256(blob), len(blob))
    await content.put_manifest("app", record.digest, record.data, parsed, "v1", "admin")
    await content.put_manifest("app", record.digest, record.data, parsed, "v2", "admin")
    assert not await content.removed_recently("app", "v1", 600)
    assert await content.delete_tag("app", "v1", "admin")
    assert await content.removed_recently("app", "v1", 600)
    assert not await content.removed_recently("app", "v2", 600)
    assert not await content.removed_recently("other", "v1", 600)
    assert not await content.removed_recently("app", record.digest, 600)
    assert await content.delete_manifest("app", record.digest, "admin")
    assert await content.removed_recently("app", record.digest, 600)
    assert await content.removed_recently("app", "v2", 600)  # its tags went with it
    assert await content.delete_repository("other", "admin") is False
