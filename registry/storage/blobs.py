"""Content-addressed blob storage on top of a :class:`StorageDriver`.

Publication is a recipe, so that nothing partial is ever visible::

    append chunks to /uploads/<id>/data  →  commit (fsync)  →  verify the digest
        →  move atomically to /blobs/…/data  →  (caller) write the repository link row

A small blob sent whole (a monolithic upload whose body the registry holds in memory anyway)
skips the upload folder: verified in memory, then written to /blobs/…/data by the driver's
atomic ``put_content`` — one storage call instead of five, and no folder made and removed.

An upload survives a restart: its bytes are in storage and the hash is rebuilt from them when
the in-memory hash state is missing or stale (another process, or after a crash).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio

from registry.oci.digest import Digest, Hasher
from registry.storage import paths
from registry.storage.base import PathNotFound, StorageDriver

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
    def __init__(self, driver: StorageDriver) -> None:
        self.driver = driver
        self._states: dict[str, UploadState] = {}
        self._locks: dict[str, anyio.Lock] = {}

    # ------------------------------------------------------------------ reading
    async def size_of(self, digest: Digest) -> int | None:
        try:
            return (await self.driver.stat(paths.blob_data(digest))).size_bytes
        except PathNotFound:
            return None

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
        await self.driver.put_content(paths.blob_data(expected), data)

    # ------------------------------------------------------------------ uploads
    def lock(self, upload_id: str) -> anyio.Lock:
        lock = self._locks.get(upload_id)
        if lock is None:
            lock = self._locks[upload_id] = anyio.Lock()
        return lock

    async def create(self, upload_id: str) -> None:
        w = await self.driver.writer(paths.upload_data(upload_id))
        await w.close()
        self._states[upload_id] = UploadState(Hasher(), 0)

    async def upload_size(self, upload_id: str) -> int:
        """Bytes received so far. :raises PathNotFound: when the upload does not exist."""
        return (await self.driver.stat(paths.upload_data(upload_id))).size_bytes

    async def _state(self, upload_id: str, size_bytes: int) -> UploadState:
        state = self._states.get(upload_id)
        if state is not None and state.size_bytes == size_bytes:
            return state
        hasher = Hasher()  # no or stale state: rebuild it from the stored bytes
        async for chunk in self.driver.reader(paths.upload_data(upload_id), 0, size_bytes):
            hasher.update(chunk)
        state = self._states[upload_id] = UploadState(hasher, size_bytes)
        return state

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

        :raises PathNotFound: when the upload does not exist (never started, or finished).
        """
        writer = await self.driver.writer(paths.upload_data(upload_id), append=True)
        try:
            if check is not None:
                check(writer.size_bytes)
            state = await self._state(upload_id, writer.size_bytes)
            async for chunk in chunks:
                if chunk:
                    await writer.write(chunk)
                    state.hasher.update(chunk)
            state.size_bytes = writer.size_bytes
        except BaseException:
            await writer.close()
            self._states.pop(upload_id, None)  # what reached storage is unknown: rehash later
            raise
        if commit:
            await writer.commit()
        else:
            await writer.close()
        return state.size_bytes

    async def publish(self, upload_id: str, expected: Digest, size_bytes: int) -> None:
        """Verify the committed upload (of ``size_bytes``, as :meth:`append` returned) against
        ``expected`` and move it into place.

        :raises DigestMismatch: (the upload is discarded) when the content does not match.
        """
        state = await self._state(upload_id, size_bytes)
        actual = state.hasher.digest() if expected.algorithm == "sha256" else None
        if actual is None:  # another algorithm: hash the stored bytes with it
            h = expected.hasher()
            async for chunk in self.driver.reader(paths.upload_data(upload_id)):
                h.update(chunk)
            actual = h.digest()
        if actual != expected:
            await self.cancel(upload_id)
            raise DigestMismatch(expected, actual)
        await self.driver.move(paths.upload_data(upload_id), paths.blob_data(expected))
        self._forget(upload_id)  # the move took the data; the driver dropped the empty folder

    def _forget(self, upload_id: str) -> None:
        self._states.pop(upload_id, None)
        self._locks.pop(upload_id, None)

    async def cancel(self, upload_id: str) -> None:
        self._forget(upload_id)
        with contextlib.suppress(PathNotFound):
            await self.driver.delete(paths.upload_dir(upload_id))
