"""Content-addressed blob storage on top of a :class:`StorageDriver`.

Publication is a recipe, so that nothing partial is ever visible::

    append chunks to /uploads/<id>/data  →  commit (fsync)  →  verify the digest
        →  move atomically to /blobs/…/data  →  (caller) write the repository link row

A small blob sent whole (a monolithic upload whose body the registry holds in memory anyway)
skips the upload folder: verified in memory, then written to /blobs/…/data by the driver's
atomic ``put_content`` — one storage call instead of five, and no folder made and removed.

Upload state across nodes. Everything an upload *is* lives in storage, under its id: the
driver's writer continues what storage holds (``append=True``) on whichever node a ``PATCH``
lands, and the size is the stored file's size. Only the running SHA-256 is in memory, in the
node that saw the bytes; Python cannot save a hash state, so it is never written anywhere. A node
keeps hashing while the stored size is the size its state covers; when another node appended
meanwhile (the sizes differ) it drops the state and stops hashing, and :meth:`BlobStore.publish`
hashes the stored upload once, in one streamed read. So a chunked upload whose chunks land on
different nodes costs at most one extra read of the upload, at its end — never a read per
chunk — and one served by a single node (the common case) costs none. A restart is the same case.

Garbage collection. With a :class:`~registry.storage.fence.PublishFence` (the registry always
has one), every step that makes a blob present or relies on it being present — ``publish``,
``store``, and ``size_of`` before a mount — first *holds* the digest, and the caller's link
(``ContentStore.link_blob``) consumes the hold: a collection never deletes a held blob, and a
hold is never granted while a collection is deleting it (:mod:`registry.storage.gc`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta

import anyio

from registry.oci.digest import Digest, Hasher
from registry.storage import paths
from registry.storage.base import DEFAULT_URL_EXPIRY, PathNotFound, StorageDriver
from registry.storage.fence import PublishFence

__all__ = ["BlobStore", "DigestMismatch", "UploadState"]


class DigestMismatch(Exception):
    def __init__(self, expected: Digest, actual: Digest) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(f"content has digest {actual}, not {expected}")


@dataclass
class UploadState:
    hasher: Hasher
    size_bytes: int


class BlobStore:
    def __init__(self, driver: StorageDriver, fence: PublishFence | None = None) -> None:
        self.driver = driver
        self.fence = fence
        self._states: dict[str, UploadState] = {}
        self._locks: dict[str, anyio.Lock] = {}

    # ------------------------------------------------------------------ reading
    async def size_of(self, digest: Digest) -> int | None:
        """The stored size of a blob the caller is about to link (a mount), else None. Holds
        the blob against garbage collection until the link, when it is there."""
        await self._hold(digest)
        try:
            return (await self.driver.stat(paths.blob_data(digest))).size_bytes
        except PathNotFound:
            await self._release(digest)
            return None
        except BaseException:
            await self._release(digest)
            raise

    async def _hold(self, digest: Digest) -> None:
        if self.fence is not None:
            await self.fence.hold(str(digest))

    async def _release(self, digest: Digest) -> None:
        if self.fence is not None:
            with anyio.CancelScope(shield=True):
                await self.fence.release(str(digest))

    def local_file(self, digest: Digest) -> str | None:
        return self.driver.local_file(paths.blob_data(digest))

    def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        return self.driver.reader(paths.blob_data(digest), offset, length)

    async def content(self, digest: Digest) -> bytes:
        """A small blob's bytes, in one storage call. :raises PathNotFound:"""
        return await self.driver.get_content(paths.blob_data(digest))

    async def store(self, expected: Digest, data: bytes) -> None:
        """Store a whole blob held in memory, if it has digest ``expected``.

        :raises DigestMismatch: (nothing is written) when the content does not match.
        """
        hasher = expected.hasher()
        hasher.update(data)
        actual = hasher.digest()
        if actual != expected:
            raise DigestMismatch(expected, actual)
        await self._hold(expected)
        try:
            await self.driver.put_content(paths.blob_data(expected), data)
        except BaseException:
            await self._release(expected)
            raise

    # ------------------------------------------------------------------ uploads
    def lock(self, upload_id: str) -> anyio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = anyio.Lock()
        return lock

    async def url_for(self, digest: Digest, expires: timedelta = DEFAULT_URL_EXPIRY) -> str | None:
        """A short-lived URL a client can GET the blob from directly, or None (see
        :meth:`StorageDriver.url_for`)."""
        return await self.driver.url_for(paths.blob_data(digest), "GET", expires)

    async def create(self, upload_id: str) -> None:
        w = await self.driver.writer(paths.upload_data(upload_id))
        await w.close()
        self._states[upload_id] = UploadState(Hasher(), 0)

    async def upload_size(self, upload_id: str) -> int:
        """Bytes received so far. :raises PathNotFound: when the upload does not exist."""
        return (await self.driver.stat(paths.upload_data(upload_id))).size_bytes

    def _state(self, upload_id: str, size_bytes: int) -> UploadState | None:
        """This node's running hash of the upload if it covers exactly ``size_bytes`` stored
        bytes; else None (dropped: another node appended, or this node never saw the start)."""
        state = self._states.get(upload_id)
        if state is not None and state.size_bytes == size_bytes:
            return state
        self._states.pop(upload_id, None)
        return None

    async def append(
        self,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        *,
        commit: bool = False,
        check: Callable[[int], None] | None = None,
    ) -> int:
        """Append a request body to the upload and return its new size; ``commit`` makes the
        whole upload durable (fsync), as :meth:`publish` needs. ``check`` sees the size before
        anything is written and may raise to refuse the body (e.g. a chunk out of order).

        Never reads the stored upload (see the module docstring).

        :raises PathNotFound: when the upload does not exist (never started, or finished).
        """
        writer = await self.driver.writer(paths.upload_data(upload_id), append=True)
        try:
            if check is not None:
                check(writer.size_bytes)
            state = self._state(upload_id, writer.size_bytes)
            async for chunk in chunks:
                if chunk:
                    await writer.write(chunk)
                    if state is not None:
                        state.hasher.update(chunk)
            if state is not None:
                state.size_bytes = writer.size_bytes
        except BaseException:
            await writer.close()
            self._states.pop(upload_id, None)  # what reached storage is unknown: rehash later
            raise
        if commit:
            await writer.commit()
        else:
            await writer.close()
        return writer.size_bytes

    async def publish(self, upload_id: str, expected: Digest, size_bytes: int) -> None:
        """Verify the committed upload (of ``size_bytes``, as :meth:`append` returned) against
        ``expected`` and move it into place. Reads the upload once when this node's hash does
        not cover it all (another node took some chunks, a restart) or ``expected`` is not
        SHA-256.

        :raises DigestMismatch: (the upload is discarded) when the content does not match.
        """
        state = self._state(upload_id, size_bytes)
        if state is not None and expected.algorithm == "sha256":
            actual = state.hasher.digest()
        else:
            h = expected.hasher()
            async for chunk in self.driver.reader(paths.upload_data(upload_id), 0, size_bytes):
                h.update(chunk)
            actual = h.digest()
        if actual != expected:
            await self.cancel(upload_id)
            raise DigestMismatch(expected, actual)
        await self._hold(expected)
        try:
            await self.driver.move(paths.upload_data(upload_id), paths.blob_data(expected))
        except BaseException:
            await self._release(expected)
            raise
        self._forget(upload_id)  # the move took the data; the driver dropped the empty folder

    def _forget(self, upload_id: str) -> None:
        self._states.pop(upload_id, None)
        self._locks.pop(upload_id, None)

    async def cancel(self, upload_id: str) -> None:
        self._forget(upload_id)
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.upload_dir(upload_id))
