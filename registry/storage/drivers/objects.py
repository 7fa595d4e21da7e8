"""What every object-store driver (S3, Azure Blob, GCS) shares: directories as key prefixes,
worker threads for the blocking SDKs, part-sized write buffers.

A backend implements :class:`ObjectStore` — a handful of *blocking* primitives over one bucket or
container — and :class:`ObjectStoreDriver` turns it into the async :class:`StorageDriver`
contract. Every primitive runs in a worker thread (``anyio.to_thread.run_sync``), never on the event
loop. Storage path ``/a/b`` is the key ``<prefix>a/b``.

How the contract's promises are kept on a store that has only whole objects:

* **Directories** exist while some key starts with ``<dir>/``: ``stat`` of a path that is no
  object probes one key below it; ``list`` is one delimited listing; ``delete`` of a directory
  lists and deletes every key below it (the backend's batch call).
* **Writers** hold at most one part (:attr:`ObjectStore.part_bytes`) in memory plus the part in
  flight: memory stays flat with blob size. Each full part goes to the backend's
  :class:`ObjectUpload` (S3 multipart part, Azure staged block, GCS resumable chunk); ``close``
  and ``commit`` both make the content visible at the key (object stores keep what they
  acknowledge), so an ``append=True`` writer on *any* node continues from what storage holds —
  upload state lives in the store, not in a node. Keys holding a ``~`` are a backend's scratch
  objects (never valid paths): hidden from ``list`` and ``walk``, removed with their directory.
* **move** is a server-side copy, then a delete of the source: the destination appears whole.
* **Readers** make one (ranged) request for what they read, with no ``head`` before it, and
  stream it in ≤ 1 MiB chunks, one worker-thread hop per chunk, where the store can
  (:meth:`ObjectStore.open_stream`: S3); elsewhere a ``head``, then one ranged request per
  part-sized span (pinned to the object's version), yielded in ≤ 1 MiB chunks.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import anyio
import anyio.to_thread

from registry.storage.base import (
    DEFAULT_URL_EXPIRY,
    FileInfo,
    FileWriter,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
    check_path,
)

__all__ = [
    "CHUNK_BYTES",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStoreDriver",
    "ObjectUpload",
    "ObjectWriter",
    "clean_prefix",
]

CHUNK_BYTES = 1 << 20  # largest chunk a reader yields
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size_bytes: int
    modified: datetime
    version: str = ""  # ETag or generation: ranged reads of one object stay on one version


def clean_prefix(prefix: str) -> str:
    """``"a/b"``, ``"/a/b/"`` → ``"a/b/"``; ``""`` stays ``""``."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


class ObjectUpload(ABC):
    """One writer's session with the store. Blocking: called from a worker thread only.

    ``size_bytes`` is what the key held when the session opened (``append=True``) or 0.
    """

    size_bytes: int

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send ``data`` (exactly ``part_bytes`` long, except in :meth:`finish`)."""

    @abstractmethod
    def finish(self, tail: bytes) -> None:
        """Send ``tail`` (shorter than a part, may be empty) and make everything visible at the
        key, replacing what was there."""

    @abstractmethod
    def abort(self) -> None:
        """Drop what was sent; the key is left as it was (the writer then deletes it)."""


class ObjectStore(ABC):
    """Blocking primitives over one bucket or container. Keys are full object names.

    Missing objects are ``None`` from :meth:`head` and :class:`PathNotFound` elsewhere; every other
    failure is the SDK's own exception, translated once by :meth:`map_error` (called by the
    wrapper, :class:`registry.storage.checked.CheckedDriver`).
    """

    name: str = "objects"
    part_bytes: int = 8 << 20
    read_span_bytes: int = 8 << 20  # one ranged GET per span

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    def children(self, prefix: str) -> Iterator[ObjectInfo | str]:
        """Objects directly below ``prefix`` (ending in ``/``) and sub-prefixes (as ``str``
        ending in ``/``), one delimited listing."""

    @abstractmethod
    def objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, one flat paged listing."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object, in one request. :raises PathNotFound:"""

    @abstractmethod
    def read(self, key: str, offset: int, length: int, version: str) -> bytes:
        """``length`` (> 0) bytes from ``offset`` (fewer at the end) of the object's ``version``
        (when not empty and the store can pin one).

        :raises PathNotFound: the object is gone
        :raises StorageError: it was replaced (another version) since the first read
        """

    def open_stream(self, key: str, offset: int, length: int | None) -> Iterator[bytes] | None:
        """``length`` bytes (all, if None; never 0) from ``offset`` in one request with no
        ``head`` before it, yielded in chunks of at most :data:`CHUNK_BYTES` (blocking: each
        ``next`` runs in a worker thread); or None where the store reads by :meth:`read` spans.

        :raises PathNotFound: the object does not exist
        :raises InvalidOffset: ``offset`` is past the end (``offset == size`` yields nothing)
        """
        return None

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Create or replace the object atomically."""

    @abstractmethod
    def copy(self, source: ObjectInfo, dest_key: str) -> None:
        """Server-side copy; ``dest_key`` appears whole."""

    @abstractmethod
    def delete(self, keys: Sequence[str]) -> None:
        """Delete the objects; missing ones are no error."""

    @abstractmethod
    def open_upload(self, key: str, append: bool) -> ObjectUpload:
        """A write session; ``append`` continues the object. :raises PathNotFound: (append)"""

    def presign(self, key: str, method: str, expires: timedelta) -> str | None:
        return None

    def map_error(self, error: Exception) -> StorageError | None:
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and connection pools."""


class ObjectStoreDriver(StorageDriver):
    """A :class:`StorageDriver` over an :class:`ObjectStore`; see the module docstring."""

    def __init__(self, store: ObjectStore, prefix: str = "") -> None:
        self.store = store
        self.name = store.name
        self.prefix = clean_prefix(prefix)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.store!r}, prefix={self.prefix!r})"

    def key(self, path: str) -> str:
        return self.prefix + check_path(path)[1:]

    def _path(self, key: str) -> str:
        return "/" + key[len(self.prefix) :].rstrip("/")

    @staticmethod
    async def _run(func: Callable[..., T], *args: object) -> T:
        """``func(*args)`` in a worker thread: SDK calls never run on the event loop."""
        return await anyio.to_thread.run_sync(func, *args)

    # ------------------------------------------------------------------ small files
    async def stat(self, path: str) -> FileInfo:
        return await self._run(self._stat, path)

    def _stat(self, path: str) -> FileInfo:
        key = self.key(path)
        info = self.store.head(key)
        if info is not None:
            return FileInfo(path, info.size_bytes, info.modified, False)
        below = next(iter(self.store.objects(key + "/")), None)
        if below is None:
            raise PathNotFound("nothing is stored at this path", driver=self.name, path=path)
        return FileInfo(path, 0, below.modified, True)

    async def get_content(self, path: str) -> bytes:
        return await self._run(self._get_content, path)

    def _get_content(self, path: str) -> bytes:
        return self.store.get(self.key(path))

    async def put_content(self, path: str, data: bytes) -> None:
        await self._run(self.store.put, self.key(path), bytes(data))

    # ------------------------------------------------------------------ streams
    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        key = self.key(path)
        if offset < 0 or (length is not None and length < 0):
            raise InvalidOffset(f"negative offset {offset} or length {length}", driver=self.name)
        return self._read(path, key, offset, length)

    async def _read(
        self, path: str, key: str, offset: int, length: int | None
    ) -> AsyncIterator[bytes]:
        if length != 0:  # one request, no head first (a pull is one GET)
            chunks = await self._run(self._open_stream, path, key, offset, length)
            if chunks is not None:
                async for chunk in self._drain(chunks):
                    yield chunk
                return
        info = await self._run(self.store.head, key)
        if info is None:
            raise PathNotFound("nothing is stored at this path", driver=self.name, path=path)
        size = info.size_bytes
        if offset > size:
            raise InvalidOffset(
                f"offset {offset} is past the end ({size} bytes)", driver=self.name, path=path
            )
        end = size if length is None else min(size, offset + length)
        position = offset
        while position < end:
            span = min(self.store.read_span_bytes, end - position)
            data = await self._run(self.store.read, key, position, span, info.version)
            if not data:  # replaced by a shorter object meanwhile: stop at what exists
                return
            view = memoryview(data)
            for start in range(0, len(view), CHUNK_BYTES):
                yield bytes(view[start : start + CHUNK_BYTES])
            position += len(data)

    def _open_stream(
        self, path: str, key: str, offset: int, length: int | None
    ) -> Iterator[bytes] | None:
        try:
            return self.store.open_stream(key, offset, length)
        except (PathNotFound, InvalidOffset) as e:  # name the path, as the span reader does
            raise type(e)(e.message, driver=self.name, path=path) from e

    async def _drain(self, chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
        """A store's blocking chunk iterator, one worker-thread hop per chunk; closed (its
        connection released) however the consumer stops."""
        try:
            while (chunk := await self._run(next, chunks, b"")) != b"":
                yield chunk
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(close)

    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        upload = await self._run(self.store.open_upload, self.key(path), append)
        return ObjectWriter(self, path, upload)

    # ------------------------------------------------------------------ tree
    async def move(self, source: str, dest: str) -> None:
        await self._run(self._move, source, dest)

    def _move(self, source: str, dest: str) -> None:
        key, dest_key = self.key(source), self.key(dest)
        info = self.store.head(key)
        if info is None:
            raise PathNotFound("nothing to move", driver=self.name, path=source)
        if key != dest_key:
            self.store.copy(info, dest_key)
            self.store.delete([key])

    async def delete(self, path: str) -> None:
        await self._run(self._delete, path)

    def _delete(self, path: str) -> None:
        key = self.key(path)
        if self.store.head(key) is not None:
            self.store.delete([key])
            return
        batch: builtins.list[str] = []
        found = False
        for info in self.store.objects(key + "/"):
            batch.append(info.key)
            found = True
            if len(batch) >= 1000:
                self.store.delete(batch)
                batch = []
        if batch:
            self.store.delete(batch)
        if not found:
            raise PathNotFound("nothing is stored at this path", driver=self.name, path=path)

    async def list(self, path: str) -> builtins.list[str]:
        return await self._run(self._list, path)

    def _list(self, path: str) -> builtins.list[str]:
        key = self.key(path)
        found: set[str] = set()
        for item in self.store.children(key + "/"):
            child = self._path(item if isinstance(item, str) else item.key)
            if _is_valid(child):
                found.add(child)
        if not found:
            raise PathNotFound("no such directory", driver=self.name, path=path)
        return sorted(found)

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        key = self.key(path)
        info = await self._run(self.store.head, key)
        if info is not None:
            yield FileInfo(path, info.size_bytes, info.modified)
        listing = self.store.objects(key + "/")
        while True:
            page = await self._run(_take, listing, 1000)
            for item in page:
                child = self._path(item.key)
                if _is_valid(child):
                    yield FileInfo(child, item.size_bytes, item.modified)
            if len(page) < 1000:
                return

    # ------------------------------------------------------------------ the rest
    async def url_for(
        self, path: str, method: str = "GET", expires: timedelta = DEFAULT_URL_EXPIRY
    ) -> str | None:
        return await self._run(self.store.presign, self.key(path), method, expires)

    def map_error(self, error: Exception, path: str) -> StorageError | None:
        mapped = self.store.map_error(error)
        if mapped is not None and not mapped.path:
            mapped = type(mapped)(mapped.message, driver=self.name, path=path)
        return mapped

    async def close(self) -> None:
        await self._run(self.store.close)


def _take(items: Iterator[T], count: int) -> builtins.list[T]:
    out: builtins.list[T] = []
    for item in items:
        out.append(item)
        if len(out) >= count:
            break
    return out


def _is_valid(path: str) -> bool:
    try:
        check_path(path)
    except InvalidPath:
        return False
    return True


class ObjectWriter(FileWriter):
    """Buffers one part, hands full parts to the upload in a worker thread.

    After it ends (commit, close, cancel) ``write``/``commit`` raise :class:`StorageError` and
    ``close``/``cancel`` do nothing; after a failed call only ``cancel`` still acts.
    """

    def __init__(self, driver: ObjectStoreDriver, path: str, upload: ObjectUpload) -> None:
        self._driver, self._path, self._upload = driver, path, upload
        self._part = driver.store.part_bytes
        self._buffer = bytearray()
        self.size_bytes = upload.size_bytes
        self._ended: str | None = None

    def __repr__(self) -> str:
        return f"ObjectWriter({self._path!r}, size_bytes={self.size_bytes})"

    def _check_open(self) -> None:
        if self._ended is not None:
            raise StorageError(
                f"writer already {self._ended}; open a new writer",
                driver=self._driver.name,
                path=self._path,
            )

    async def _guarded(self, func: Callable[..., None], *args: object) -> None:
        try:
            await anyio.to_thread.run_sync(func, *args)
        except BaseException:
            self._ended = "failed"
            raise

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        self._check_open()
        view = memoryview(data).cast("B")
        size = view.nbytes
        self._buffer += view
        self.size_bytes += size
        while len(self._buffer) >= self._part:
            part = bytes(self._buffer[: self._part])
            del self._buffer[: self._part]
            await self._guarded(self._upload.write, part)
        return size

    async def commit(self) -> None:
        self._check_open()
        tail, self._buffer = bytes(self._buffer), bytearray()
        await self._guarded(self._upload.finish, tail)
        self._ended = "committed"

    async def close(self) -> None:
        if self._ended is not None:
            return
        with anyio.CancelScope(shield=True):
            tail, self._buffer = bytes(self._buffer), bytearray()
            await self._guarded(self._upload.finish, tail)
        self._ended = "closed"

    async def cancel(self) -> None:
        if self._ended not in (None, "failed"):
            return
        self._ended, self._buffer = "cancelled", bytearray()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._discard)

    def _discard(self) -> None:
        try:
            self._upload.abort()
        finally:
            self._driver.store.delete([self._driver.key(self._path)])
