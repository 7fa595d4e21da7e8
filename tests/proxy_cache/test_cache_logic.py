"""The proxy cache's decisions with an injected clock (no server, no sleeping): within the TTL
the upstream is asked nothing, after it one HEAD; a moved tag is fetched by digest; a tag gone
upstream is forgotten; a rate-limited or failing upstream leaves the cached digest served
(stale-if-error); pulls by digest never revalidate. Real parts below the cache: the
read-through, a ContentStore on SQLite, a BlobStore on the filesystem; the upstream is an
in-memory registry (what it holds, what it was asked, whether it answers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from registry.http.proxy_cache import ProxyCache, ProxyNamespace
from registry.http.upstream import FetchedManifest, UpstreamBlob, UpstreamError
from registry.meta.content import ContentStore
from registry.meta.db import create_engine, init_schema
from registry.meta.proxy_tags import ProxyTagStore
from registry.meta.sql import PostgresBackend, SqliteBackend, postgres_dsn, sqlite_path
from registry.oci.digest import Digest
from registry.oci.errors import RegistryError
from registry.storage.blobs import BlobStore
from registry.storage.checked import CheckedDriver
from registry.storage.drivers.filesystem import FilesystemDriver
from tests.support.client import OCI_MANIFEST, image_manifest, sha256

pytestmark = pytest.mark.anyio
TTL = 60.0
NS = ProxyNamespace("hub", "upstream", "docker-registry", TTL)
REPO = "hub/team/app"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class _Blob:
    data: bytes

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    async def chunks(self) -> AsyncIterator[bytes]:
        yield self.data


@dataclass
class Origin:
    """An in-memory upstream registry: ``tags`` and ``blobs`` it holds, ``asked`` what it was
    asked (method, reference), ``down`` the error it answers everything with."""

    tags: dict[str, bytes] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    asked: list[tuple[str, str]] = field(default_factory=list)
    down: UpstreamError | None = None

    def push(self, tag: str, seed: str) -> str:
        config, layer = f"config {seed}".encode(), f"layer {seed}".encode()
        self.blobs |= {sha256(config): config, sha256(layer): layer}
        self.tags[tag] = image_manifest(config, [layer])
        return sha256(self.tags[tag])

    def _manifest(self, ref: str) -> bytes | None:
        if ":" in ref:
            return next((m for m in self.tags.values() if sha256(m) == ref), None)
        return self.tags.get(ref)

    def _ask(self, method: str, ref: str) -> None:
        self.asked.append((method, ref))
        if self.down is not None:
            raise self.down

    async def fetch_manifest(self, repo: str, reference: str) -> FetchedManifest | None:
        self._ask("GET", reference)
        data = self._manifest(reference)
        return None if data is None else FetchedManifest(data, OCI_MANIFEST, sha256(data))

    async def head_manifest(self, repo: str, tag: str) -> str | None:
        self._ask("HEAD", tag)
        data = self._manifest(tag)
        return None if data is None else sha256(data)

    @asynccontextmanager
    async def open_blob(self, repo: str, digest: str) -> AsyncIterator[UpstreamBlob | None]:
        self._ask("GET", digest)
        data = self.blobs.get(digest)
        yield None if data is None else _Blob(data)


class Namespaces:
    async def get(self, name: str) -> ProxyNamespace | None:
        return NS if name == NS.name else None

    async def for_host(self, host: str) -> ProxyNamespace | None:
        return NS if host == "upstream.example" else None


@dataclass
class World:
    cache: ProxyCache
    origin: Origin
    now: list[float]

    async def pull(self, reference: str) -> str | None:
        """A client's pull: the manifest, then its blobs; the manifest's digest."""
        record = await self.cache.manifest(NS, REPO, reference)
        if record is None:
            return None
        for digest in [d for d in self.origin.blobs if d.encode() in record.data]:
            assert await self.cache.blob(REPO, Digest.parse(digest)) is not None
        return record.digest


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    engine = create_engine(url)
    await init_schema(engine)
    await engine.dispose()
    sql = SqliteBackend(str(tmp_path / "c.db"))
    content = ContentStore(sql)
    blobs = BlobStore(CheckedDriver(FilesystemDriver(tmp_path / "store")), fence=content.fence)
    origin, now = Origin(), [1_000_000.0]
    cache = ProxyCache(
        Namespaces(), origin, content, blobs, ProxyTagStore(sql), clock=lambda: now[0]
    )
    yield World(cache, origin, now)
    await sql.aclose()


async def test_within_the_ttl_nothing_is_asked_after_it_one_head(world: World) -> None:
    digest = world.origin.push("v1", "one")
    assert await world.pull("v1") == digest
    assert [m for m, _ in world.origin.asked] == ["GET", "GET", "GET"]  # manifest, 2 blobs
    world.origin.asked.clear()
    world.now[0] += TTL - 1
    assert await world.pull("v1") == digest
    assert await world.pull(digest) == digest
    assert world.origin.asked == []
    world.now[0] += 2  # past the TTL: one HEAD, same digest, the time is refreshed
    assert await world.pull("v1") == digest
    assert world.origin.asked == [("HEAD", "v1")]
    world.now[0] += TTL - 1
    assert await world.pull("v1") == digest
    assert world.origin.asked == [("HEAD", "v1")]
    assert world.cache.stats().unchanged == 1


async def test_a_moved_tag_is_fetched_by_digest(world: World) -> None:
    first = world.origin.push("v1", "one")
    assert await world.pull("v1") == first
    moved = world.origin.push("v1", "two")
    world.origin.asked.clear()
    world.now[0] += TTL + 1
    assert await world.pull("v1") == moved
    assert world.origin.asked[:2] == [("HEAD", "v1"), ("GET", moved)]
    assert world.cache.stats().moved == 1


async def test_stale_if_error_when_rate_limited_or_down(world: World) -> None:
    digest = world.origin.push("v1", "one")
    assert await world.pull("v1") == digest
    world.now[0] += TTL + 1
    world.origin.down = UpstreamError("429 Too Many Requests")
    assert await world.pull("v1") == digest  # served from the cache
    assert await world.pull(digest) == digest
    assert world.cache.stats().stale_served == 1
    with pytest.raises(RegistryError) as e:  # nothing cached: nothing to serve
        await world.pull("v2")
    assert e.value.code.code == "UNAVAILABLE"
    world.origin.down = None  # back: the next pull revalidates (still stale)
    world.origin.asked.clear()
    assert await world.pull("v1") == digest
    assert world.origin.asked == [("HEAD", "v1")]


async def test_a_tag_gone_upstream_is_forgotten(world: World) -> None:
    digest = world.origin.push("v1", "one")
    assert await world.pull("v1") == digest
    del world.origin.tags["v1"]
    world.now[0] += TTL + 1
    assert await world.pull("v1") is None
    assert await world.cache.tags.get(REPO, "v1") is None
    assert await world.pull(digest) == digest  # the content stays (by digest)


async def test_a_deleted_repository_is_fetched_again(world: World) -> None:
    """A delete in a proxy namespace evicts: the next pull fetches again (region read-through
    would keep a deletion from coming back; a cache's content is the upstream's)."""
    digest = world.origin.push("v1", "one")
    assert await world.pull("v1") == digest
    assert await world.cache.content.delete_repository(REPO, "admin")
    world.origin.asked.clear()
    assert await world.pull("v1") == digest
    assert ("GET", digest) in world.origin.asked


async def test_pulls_by_digest_never_revalidate(world: World) -> None:
    digest = world.origin.push("v1", "one")
    assert await world.pull(digest) == digest
    world.origin.asked.clear()
    world.now[0] += 365 * 86400
    assert await world.pull(digest) == digest
    assert world.origin.asked == []
    assert await world.cache.mirror_path(f"/v2/team/app/manifests/{digest}", "upstream.example")


@pytest.fixture
async def tag_store(database_url: str) -> AsyncIterator[ProxyTagStore]:
    """A ProxyTagStore on a fresh database of each kind (PostgreSQL: the session cluster)."""
    engine = create_engine(database_url)
    await init_schema(engine)
    await engine.dispose()
    path, dsn = sqlite_path(database_url), postgres_dsn(database_url)
    sql = SqliteBackend(path) if path is not None else PostgresBackend(str(dsn))
    yield ProxyTagStore(sql)
    await sql.aclose()


async def test_cached_tags_are_kept_moved_listed_and_dropped(tag_store: ProxyTagStore) -> None:
    assert await tag_store.get("hub/a", "v1") is None
    assert await tag_store.list_tags("hub/a", None, None) is None  # nothing cached: unknown
    await tag_store.put("hub/a", "v1", "sha256:" + "1" * 64, 100.0)
    await tag_store.put("hub/a", "v1", "sha256:" + "2" * 64, 200.5)  # moved
    await tag_store.put("hub/a", "V2", "sha256:" + "3" * 64, 300.0)
    await tag_store.put("hub/b", "v1", "sha256:" + "4" * 64, 300.0)
    got = await tag_store.get("hub/a", "v1")
    assert got is not None and got.digest == "sha256:" + "2" * 64 and got.validated_at == 200.5
    assert await tag_store.list_tags("hub/a", None, None) == ["V2", "v1"]  # byte order
    assert await tag_store.list_tags("hub/a", 1, None) == ["V2"]
    assert await tag_store.list_tags("hub/a", 1, "V2") == ["v1"]
    assert await tag_store.list_tags("hub/a", None, "v1") == []
    await tag_store.drop("hub/a", "v1")
    assert await tag_store.get("hub/a", "v1") is None
    assert await tag_store.get("hub/b", "v1") is not None
