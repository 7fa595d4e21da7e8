"""The storage-driver conformance suite. Every driver passes it; a new driver is one fixture and
a subclass::

    from registry.storage.testing import StorageDriverSuite

    class TestMyDriver(StorageDriverSuite):
        @pytest.fixture
        async def driver(self) -> AsyncIterator[StorageDriver]:
            driver = MyDriver(...)
            yield driver
            await driver.close()

        async def reopened(self, driver: StorageDriver) -> StorageDriver:
            return MyDriver(...)  # a second client of the same storage: proves durability

Each test works under a prefix of its own (``/suite-<hex>``), handing out paths with
``scope.path(...)``. Teardown **fails** when the driver left anything under the prefix that the
test did not name (temporary files, half-written uploads), then deletes the prefix and fails
again if anything survives — as distribution's ``testsuites.go`` does.

Points the contract in :mod:`registry.storage.base` leaves open are pinned down here, once:

* ``reader``: a ``length`` running past the end yields up to the end; ``offset == size`` yields
  nothing; a negative offset or length is :class:`InvalidOffset`; chunks are non-empty and at
  most 1 MiB.
* ``writer(append=True)`` on a missing path raises :class:`PathNotFound` (create with
  ``append=False`` first), so a cancelled upload is never silently recreated.
* After a writer ends (commit, close, cancel) ``write``/``commit`` raise :class:`StorageError`
  and ``close``/``cancel`` do nothing; ``cancel`` on a live writer removes the whole file.
* Directories exist only while they hold something (as in object stores): deleting or moving
  the last file out of one makes it :class:`PathNotFound`. ``stat`` of a directory has
  ``is_dir`` and size 0; ``get_content``, ``reader`` and ``list`` treat a file where a directory
  is expected (or the reverse) as :class:`PathNotFound`. ``list`` sorts by code point.
* Invalid paths raise :class:`InvalidPath` from every method (at the call, or at the first
  iteration of a reader) before any storage is touched; ``local_file`` may return None instead.
* ``walk`` yields every file below a directory once (a file: itself; missing: nothing), with
  its size. ``url_for`` may be None; a URL it gives serves the bytes to a plain HTTP client.
* A writer's content survives to a writer of *another client* of the same storage (another
  node): ``append=True`` there continues exactly where the first one closed.
"""

from __future__ import annotations

import contextlib
import itertools
import random
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel
import httpx
import pytest

from registry.storage.base import (
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
)

__all__ = ["INVALID_PATHS", "MiB", "Scope", "StorageDriverSuite", "payload", "read_all"]

MiB = 1 << 20
KiB = 1 << 10

INVALID_PATHS = [
    *["", "/", "a", "a/b", "//a", "/a//b", "/a/", "/.", "/..", "/a/./b", "/a/../b", "/a/.."],
    *["/a b", "/a\\b", "/a:b", "/a*", "/a\nb", "/a\n", "/a\x00b", "/ä", "/~tmp-x", "\\a"],
]
FLAT_PEAK_BYTES = 24 * MiB  # test_memory_stays_flat: a few parts and spans, not the 40 MiB file
WALKED = ["a", "b/c", "b/d/e", "b-x", "b.y/z", "c"]
VALID_ODD_NAMES = [".hidden", "...", "-", "_", "a.b-c_D9", "x" * 200]


def payload(size_bytes: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (every byte value, so nothing is text-only)."""
    return random.Random(seed).randbytes(size_bytes)


async def read_all(stream: AsyncIterator[bytes], *, max_chunk_bytes: int = MiB) -> bytes:
    """Concatenate a reader's chunks, checking each is non-empty and within the bound."""
    chunks = [chunk async for chunk in stream]
    assert all(0 < len(c) <= max_chunk_bytes for c in chunks), [len(c) for c in chunks]
    return b"".join(chunks)


async def _walk(driver: StorageDriver, path: str) -> list[str]:
    """Every file under ``path`` (or ``path`` itself when it is a file)."""
    try:
        info = await driver.stat(path)
    except PathNotFound:
        return []
    if not info.is_dir:
        return [path]
    return [f for child in await driver.list(path) for f in await _walk(driver, child)]


@dataclass
class Scope:
    """One test's corner of the storage: paths handed out here are the only ones it may leave."""

    prefix: str
    named: set[str] = field(default_factory=set)

    def path(self, *parts: str) -> str:
        """``prefix/part/...``; parts may contain slashes. The path is remembered as expected."""
        path = "/".join([self.prefix, *parts])
        self.named.add(path)
        return path


class StorageDriverSuite:
    """Conformance tests; subclasses supply the ``driver`` fixture (and may ``reopened``)."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.fixture
    def driver(self) -> StorageDriver:
        raise NotImplementedError("subclass StorageDriverSuite and supply a `driver` fixture")

    async def reopened(self, driver: StorageDriver) -> StorageDriver:
        """A second driver over the same storage; override so durability is really tested."""
        return driver

    @pytest.fixture
    async def scope(self, driver: StorageDriver) -> AsyncIterator[Scope]:
        scope = Scope(f"/suite-{uuid.uuid4().hex[:12]}")
        yield scope
        litter = sorted(set(await _walk(driver, scope.prefix)) - scope.named)
        with contextlib.suppress(PathNotFound):
            await driver.delete(scope.prefix)
        assert not litter, f"{driver.name} driver left behind paths no test wrote: {litter}"
        survivors = await _walk(driver, scope.prefix)
        assert not survivors, f"{driver.name} driver: delete left behind {survivors}"
        with pytest.raises(PathNotFound):
            await driver.stat(scope.prefix)

    # ------------------------------------------------------------------ put/get/stat
    @pytest.mark.parametrize("size", [0, 1, 4097, 3 * MiB + 1])
    async def test_put_get_round_trip(self, driver: StorageDriver, scope: Scope, size: int) -> None:
        path, data = scope.path("dir", "file"), payload(size, seed=size)
        await driver.put_content(path, data)
        assert await driver.get_content(path) == data
        assert await read_all(driver.reader(path)) == data
        assert (await driver.stat(path)).size_bytes == size

    async def test_put_overwrites(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("file")
        await driver.put_content(path, payload(100_000, seed=1))
        await driver.put_content(path, b"short")
        assert await driver.get_content(path) == b"short"
        assert (await driver.stat(path)).size_bytes == 5

    async def test_put_creates_parents(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("a", "b", "c", "d")
        await driver.put_content(path, b"deep")
        assert await driver.list(f"{scope.prefix}/a/b") == [f"{scope.prefix}/a/b/c"]
        assert (await driver.stat(f"{scope.prefix}/a")).is_dir

    async def test_put_is_atomic(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("atomic")
        versions = [b"A" * MiB, b"B" * (2 * MiB + 3)]
        await driver.put_content(path, versions[0])
        done, reads = anyio.Event(), 0

        async def rewrite() -> None:
            for i in range(1, 21):
                await driver.put_content(path, versions[i % 2])
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(rewrite)
            while not done.is_set():
                seen = await driver.get_content(path)  # never missing, never a mixture
                assert seen in versions, f"torn read of {len(seen)} bytes"
                reads += 1
        assert reads > 0

    async def test_missing(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("missing")
        with pytest.raises(PathNotFound):
            await driver.stat(path)
        with pytest.raises(PathNotFound):
            await driver.get_content(path)
        await driver.put_content(scope.path("dir", "file"), b"x")
        with pytest.raises(PathNotFound):
            await driver.get_content(f"{scope.prefix}/dir")  # a directory is not a file
        with pytest.raises(PathNotFound):
            await driver.stat(f"{scope.prefix}/dir/file/below")  # nor is a file a directory

    async def test_stat(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("dir", "file")
        await driver.put_content(path, b"12345")
        info = await driver.stat(path)
        assert (info.path, info.size_bytes, info.is_dir) == (path, 5, False)
        assert info.modified.tzinfo is not None
        assert abs(datetime.now(UTC) - info.modified) < timedelta(minutes=5)
        directory = await driver.stat(f"{scope.prefix}/dir")
        assert (directory.path, directory.size_bytes, directory.is_dir) == (
            f"{scope.prefix}/dir",
            0,
            True,
        )

    @pytest.mark.parametrize("name", VALID_ODD_NAMES)
    async def test_valid_odd_names(self, driver: StorageDriver, scope: Scope, name: str) -> None:
        path = scope.path(name)
        await driver.put_content(path, name.encode())
        assert await driver.get_content(path) == name.encode()
        assert await driver.list(scope.prefix) == [path]

    # ------------------------------------------------------------------ reader
    @pytest.mark.parametrize(
        ("offset", "length"),
        [
            *[(0, None), (1, None), (MiB, None), (2 * MiB + 122, None), (2 * MiB + 123, None)],
            *[(5, 0), (10, 100), (MiB - 1, 2), (2 * MiB + 118, 100), (0, 3 * MiB)],
        ],
    )
    async def test_reader_ranges(
        self, driver: StorageDriver, scope: Scope, offset: int, length: int | None
    ) -> None:
        path, data = scope.path("file"), payload(2 * MiB + 123, seed=7)
        await driver.put_content(path, data)
        end = None if length is None else offset + length
        assert await read_all(driver.reader(path, offset, length)) == data[offset:end]

    async def test_reader_errors(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("file")
        await driver.put_content(path, b"0123456789")
        with pytest.raises(InvalidOffset):
            await read_all(driver.reader(path, 11))
        for offset, length in [(-1, None), (0, -1)]:
            with pytest.raises(InvalidOffset):
                await read_all(driver.reader(path, offset, length))
        with pytest.raises(PathNotFound):
            await read_all(driver.reader(scope.path("missing")))
        with pytest.raises(PathNotFound):
            await read_all(driver.reader(scope.prefix))  # a directory
        await driver.put_content(empty := scope.path("empty"), b"")
        assert await read_all(driver.reader(empty)) == b""

    async def test_reader_can_stop_early(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("file")
        await driver.put_content(path, payload(3 * MiB))
        stream = driver.reader(path)
        assert len(await anext(stream)) > 0
        aclose: Callable[[], Awaitable[None]] | None = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
        await driver.delete(path)  # nothing still holds the file

    # ------------------------------------------------------------------ writer
    @pytest.mark.parametrize("size", [0, 1, 64 * KiB, MiB, 3 * MiB + 5])
    async def test_writer_round_trip(self, driver: StorageDriver, scope: Scope, size: int) -> None:
        path, data = scope.path("up", "data"), payload(size, seed=size)
        writer = await driver.writer(path)
        assert writer.size_bytes == 0
        for start in range(0, size, 64 * KiB):
            chunk = data[start : start + 64 * KiB]
            assert await writer.write(chunk) == len(chunk)
            assert writer.size_bytes == start + len(chunk)
        await writer.commit()
        assert await driver.get_content(path) == data
        assert (await driver.stat(path)).size_bytes == size

    async def test_writer_buffer_types(self, driver: StorageDriver, scope: Scope) -> None:
        path, data = scope.path("data"), payload(3 * MiB, seed=3)
        writer = await driver.writer(path)
        await writer.write(data[:MiB])
        await writer.write(bytearray(data[MiB : 2 * MiB - 1]))
        assert await writer.write(memoryview(data)[2 * MiB - 1 :]) == MiB + 1
        await writer.commit()
        assert await read_all(driver.reader(path)) == data

    async def test_writer_truncates_without_append(
        self, driver: StorageDriver, scope: Scope
    ) -> None:
        path = scope.path("data")
        await driver.put_content(path, payload(2 * MiB))
        writer = await driver.writer(path)
        assert writer.size_bytes == 0
        await writer.write(b"new")
        await writer.commit()
        assert await driver.get_content(path) == b"new"

    @pytest.mark.parametrize(
        "parts",
        [
            *[[0, 5, 0, 7], [64 * KiB + 3, MiB + 17, 1], [3 * MiB + 1, MiB - 1, 2 * MiB]],
            [6 * MiB + 3, 5 * MiB + 1, 0, 7],  # past object stores' 5 MiB part minimum
        ],
    )
    async def test_writer_resume_after_close(
        self, driver: StorageDriver, scope: Scope, parts: list[int]
    ) -> None:
        path, data = scope.path("up", "data"), payload(sum(parts), seed=len(parts))
        written = 0
        for i, part in enumerate(parts):
            writer = await driver.writer(path, append=i > 0)
            assert writer.size_bytes == written
            for start in range(written, written + part, 100 * KiB):
                await writer.write(data[start : min(start + 100 * KiB, written + part)])
            written += part
            assert writer.size_bytes == written
            await writer.close()
            assert (await driver.stat(path)).size_bytes == written  # closed = visible
        assert await read_all(driver.reader(path)) == data

    async def test_writer_resumes_on_another_client(
        self, driver: StorageDriver, scope: Scope
    ) -> None:
        """A chunked upload whose chunks land on different nodes: each node opens its own
        writer with ``append=True`` and continues from what storage holds."""
        path, data = scope.path("up", "data"), payload(3 * MiB + 11, seed=5)
        nodes = [driver, await self.reopened(driver)]
        cuts = [0, 100, MiB + 3, 2 * MiB, len(data)]
        for i, (start, end) in enumerate(itertools.pairwise(cuts)):
            writer = await nodes[i % 2].writer(path, append=i > 0)
            assert writer.size_bytes == start
            await writer.write(data[start:end])
            await (writer.commit() if end == len(data) else writer.close())
        assert await read_all(nodes[1].reader(path)) == data
        assert await nodes[0].get_content(path) == data

    async def test_memory_stays_flat(self, driver: StorageDriver, scope: Scope) -> None:
        """A blob far larger than any buffer goes up and comes down with bounded memory (Python
        allocations traced: the driver's buffers and its SDK's)."""
        path, size, piece = scope.path("big", "data"), 40 * MiB, payload(64 * KiB, seed=17)
        tracemalloc.start()
        try:
            writer = await driver.writer(path)
            for _ in range(size // len(piece)):
                await writer.write(piece)
            await writer.commit()
            total = 0
            async for chunk in driver.reader(path):
                total += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total == size
        assert peak < FLAT_PEAK_BYTES, f"{peak / MiB:.1f} MiB held for a {size // MiB} MiB file"

    async def test_writer_append_needs_existing(self, driver: StorageDriver, scope: Scope) -> None:
        with pytest.raises(PathNotFound):
            await driver.writer(scope.path("missing"), append=True)
        writer = await driver.writer(path := scope.path("empty"))
        await writer.close()  # an empty writer still creates the file
        assert (await driver.stat(path)).size_bytes == 0
        appender = await driver.writer(path, append=True)
        await appender.write(b"now")
        await appender.commit()
        assert await driver.get_content(path) == b"now"

    async def test_commit_is_durable(self, driver: StorageDriver, scope: Scope) -> None:
        path, data = scope.path("data"), payload(2 * MiB + 9, seed=9)
        writer = await driver.writer(path)
        await writer.write(data)
        await writer.commit()
        other = await self.reopened(driver)
        assert await other.get_content(path) == data
        assert (await other.stat(path)).size_bytes == len(data)

    async def test_cancel_removes(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("up", "data")
        writer = await driver.writer(path)
        await writer.write(payload(2 * MiB))
        await writer.cancel()
        with pytest.raises(PathNotFound):
            await driver.stat(path)
        await driver.put_content(path, b"earlier")
        appender = await driver.writer(path, append=True)
        await appender.write(b"more")
        await appender.cancel()
        with pytest.raises(PathNotFound):
            await driver.stat(path)

    async def test_writer_after_end(self, driver: StorageDriver, scope: Scope) -> None:
        path = scope.path("data")
        for end in ("commit", "close", "cancel"):
            writer = await driver.writer(path)
            await writer.write(b"kept")
            await getattr(writer, end)()
            with pytest.raises(StorageError):
                await writer.write(b"more")
            with pytest.raises(StorageError):
                await writer.commit()
            await writer.close()
            await writer.cancel()  # does nothing now: the content stays
            if end != "cancel":
                assert await driver.get_content(path) == b"kept"

    async def test_concurrent_writers(self, driver: StorageDriver, scope: Scope) -> None:
        paths = [scope.path(f"w{i}", "data") for i in range(8)]
        contents = [payload(1 * MiB + 37 * i, seed=i) for i in range(len(paths))]

        async def upload(path: str, data: bytes) -> None:
            writer = await driver.writer(path)
            for start in range(0, len(data), 37 * KiB):
                await writer.write(data[start : start + 37 * KiB])
                await anyio.lowlevel.checkpoint()
            await writer.commit()

        async with anyio.create_task_group() as tg:
            for path, data in zip(paths, contents, strict=True):
                tg.start_soon(upload, path, data)
        for path, data in zip(paths, contents, strict=True):
            assert await driver.get_content(path) == data

    # ------------------------------------------------------------------ move/delete/list
    async def test_move(self, driver: StorageDriver, scope: Scope) -> None:
        source, dest = scope.path("src", "data"), scope.path("x", "y", "dest")
        data = payload(3 * MiB + 1, seed=11)
        await driver.put_content(source, data)
        await driver.move(source, dest)
        assert await read_all(driver.reader(dest)) == data
        with pytest.raises(PathNotFound):
            await driver.stat(source)
        with pytest.raises(PathNotFound):
            await driver.stat(f"{scope.prefix}/src")  # emptied directories disappear

    async def test_move_overwrites(self, driver: StorageDriver, scope: Scope) -> None:
        source, dest = scope.path("source"), scope.path("dest")
        await driver.put_content(source, b"new")
        await driver.put_content(dest, payload(MiB))
        await driver.move(source, dest)
        assert await driver.get_content(dest) == b"new"
        assert await driver.list(scope.prefix) == [dest]

    async def test_move_missing_source(self, driver: StorageDriver, scope: Scope) -> None:
        dest = scope.path("dest")
        await driver.put_content(dest, b"untouched")
        with pytest.raises(PathNotFound):
            await driver.move(scope.path("missing"), dest)
        with pytest.raises(PathNotFound):
            await driver.move(scope.path("missing"), scope.path("elsewhere", "dest"))
        assert await driver.get_content(dest) == b"untouched"
        assert await driver.list(scope.prefix) == [dest]

    async def test_delete_file(self, driver: StorageDriver, scope: Scope) -> None:
        keep, gone = scope.path("dir", "keep"), scope.path("dir", "gone")
        await driver.put_content(keep, b"k")
        await driver.put_content(gone, b"g")
        await driver.delete(gone)
        with pytest.raises(PathNotFound):
            await driver.stat(gone)
        assert await driver.list(f"{scope.prefix}/dir") == [keep]
        with pytest.raises(PathNotFound):
            await driver.delete(gone)
        await driver.delete(keep)
        with pytest.raises(PathNotFound):
            await driver.stat(f"{scope.prefix}/dir")  # emptied directories disappear

    async def test_delete_tree(self, driver: StorageDriver, scope: Scope) -> None:
        tree = [scope.path("t", "b", n) for n in ("c", "d/e", "d/f/g")]
        siblings = [scope.path("t", n) for n in ("a", "bc", "b.x", "b-")]  # share a prefix
        for path in tree + siblings:
            await driver.put_content(path, path.encode())
        await driver.delete(f"{scope.prefix}/t/b")
        for path in [*tree, f"{scope.prefix}/t/b/d"]:
            with pytest.raises(PathNotFound):
                await driver.stat(path)
        for path in siblings:
            assert await driver.get_content(path) == path.encode()
        assert await driver.list(f"{scope.prefix}/t") == sorted(siblings)

    async def test_delete_missing(self, driver: StorageDriver, scope: Scope) -> None:
        with pytest.raises(PathNotFound):
            await driver.delete(scope.path("missing"))
        with pytest.raises(PathNotFound):
            await driver.delete(scope.path("missing", "below"))

    async def test_list(self, driver: StorageDriver, scope: Scope) -> None:
        names = ["b", "a", "C", "a.b", "a-b", "_z", "0", "dir/x", "dir/y/z"]
        for name in names:
            await driver.put_content(scope.path("l", name), b"")
        base = f"{scope.prefix}/l"
        expected = sorted(f"{base}/{n}" for n in ["b", "a", "C", "a.b", "a-b", "_z", "0", "dir"])
        assert await driver.list(base) == expected
        assert await driver.list(f"{base}/dir") == [f"{base}/dir/x", f"{base}/dir/y"]
        with pytest.raises(PathNotFound):
            await driver.list(scope.path("missing"))
        with pytest.raises(PathNotFound):
            await driver.list(f"{base}/a")  # a file has no children

    async def test_walk(self, driver: StorageDriver, scope: Scope) -> None:
        files = {scope.path("w", n): payload(i * 100, seed=i) for i, n in enumerate(WALKED)}
        for path, data in files.items():
            await driver.put_content(path, data)
        found = [info async for info in driver.walk(f"{scope.prefix}/w")]
        assert sorted(i.path for i in found) == sorted(files)
        for info in found:
            assert (info.size_bytes, info.is_dir) == (len(files[info.path]), False)
            assert info.modified.tzinfo is not None
        one = scope.path("w", "b", "c")
        assert [i.path async for i in driver.walk(one)] == [one]
        assert [i async for i in driver.walk(scope.path("missing"))] == []

    async def test_url_for(self, driver: StorageDriver, scope: Scope) -> None:
        path, data = scope.path("blob", "data"), payload(MiB + 5, seed=13)
        await driver.put_content(path, data)
        url = await driver.url_for(path, "GET", timedelta(minutes=5))
        if url is None:
            return  # this driver cannot make URLs: callers serve the bytes themselves
        async with httpx.AsyncClient(timeout=30) as http:
            got = await http.get(url)
            assert got.status_code == 200, got.text[:500]
            assert got.content == data
            head = await http.head(await driver.url_for(path, "HEAD") or url)
            assert head.status_code == 200
            assert int(head.headers["content-length"]) == len(data)

    # ------------------------------------------------------------------ paths
    async def test_local_file(self, driver: StorageDriver, scope: Scope) -> None:
        path, data = scope.path("data"), payload(5000)
        await driver.put_content(path, data)
        local = driver.local_file(path)
        if local is not None:
            assert await anyio.Path(local).read_bytes() == data
        assert driver.local_file(scope.path("missing")) is None

    @pytest.mark.parametrize("bad", INVALID_PATHS)
    async def test_invalid_paths_rejected(
        self, driver: StorageDriver, scope: Scope, bad: str
    ) -> None:
        good = scope.path("good")
        await driver.put_content(good, b"good")

        async def drain() -> None:
            await read_all(driver.reader(bad))

        async def write() -> None:
            await (await driver.writer(bad)).cancel()

        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "stat": lambda: driver.stat(bad),
            "get_content": lambda: driver.get_content(bad),
            "put_content": lambda: driver.put_content(bad, b"x"),
            "reader": drain,
            "writer": write,
            "move(source)": lambda: driver.move(bad, good),
            "move(dest)": lambda: driver.move(good, bad),
            "delete": lambda: driver.delete(bad),
            "list": lambda: driver.list(bad),
        }
        for name, call in calls.items():
            with pytest.raises(InvalidPath):
                await call()
                pytest.fail(f"{name}({bad!r}) was accepted")
        with contextlib.suppress(InvalidPath):  # raising is fine, so is None
            assert driver.local_file(bad) is None
        assert await driver.get_content(good) == b"good"
        assert await driver.list(scope.prefix) == [good]
