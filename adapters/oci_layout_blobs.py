"""Blob bytes in and out of an image layout, memory flat with blob size.

:class:`BlobWriter` (blocking, worker-thread side) writes a blob to a temporary file in the
layout, hashing as it goes, and renames it to ``blobs/<alg>/<hex>`` only once its size and
digest were checked and its bytes fsynced: nothing partial ever appears under a digest.
:class:`LayoutBlobReader` streams an open blob file in chunks. :class:`BlobTransfers` (event-loop
side) drives both: uploads from a caller's stream (reopened where it stopped after a transient
failure) and mounts (a hard link, else a verified copy).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio

from adapters.oci.errors import DigestMismatch, NotFound, RequestRejected, Transient
from adapters.oci.uploads import OpenStream
from adapters.oci_layout_fs import FILE_MODE, open_dir, temp_name
from adapters.oci_layout_index import BLOBS_DIR
from adapters.oci_layout_io import LayoutRunner
from registry.oci.digest import Digest

if TYPE_CHECKING:
    from adapters.oci_layout_store import LayoutStore

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "BlobTransfers",
    "BlobWriter",
    "LayoutBlobReader",
    "check_digest",
]

DEFAULT_CHUNK_BYTES = 1 << 20


def check_digest(digest: Digest, hasher: hashlib._Hash, what: str) -> None:
    """:raises DigestMismatch: ``hasher``'s bytes do not hash to ``digest``."""
    got = f"{digest.algorithm}:{hasher.hexdigest()}"
    if got != str(digest):
        raise DigestMismatch(
            f"{what} hashes to {got}, not {digest}: the file is damaged or was changed; "
            "copy it again from its source",
            code="DIGEST_INVALID",
        )


class BlobWriter:
    """A blob being written into the layout directory ``layout_fd`` (duplicated: the writer
    outlives the caller's fd). :meth:`abort` (safe after :meth:`commit`) removes what is left.
    Blocking: call from a worker thread."""

    def __init__(self, layout_fd: int, where: str, digest: Digest) -> None:
        self.digest = digest
        self._where = where
        self._dir = os.dup(layout_fd)
        self._name = temp_name("blob")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        try:
            self._fd = os.open(self._name, flags, FILE_MODE, dir_fd=self._dir)
        except BaseException:
            os.close(self._dir)
            raise
        self._hasher = hashlib.new(digest.algorithm)
        self.size_bytes = 0

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._hasher.update(data)
        self.size_bytes += len(data)

    def commit(self, expected_size_bytes: int) -> None:
        """:raises RequestRejected: the size differs. :raises DigestMismatch: the hash does."""
        what = f"blob {self.digest} for {self._where}"
        if self.size_bytes != expected_size_bytes:
            raise RequestRejected(
                f"{what}: got {self.size_bytes} bytes, expected {expected_size_bytes}",
                code="SIZE_INVALID",
            )
        check_digest(self.digest, self._hasher, what)
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = -1
        dst = open_dir(self._dir, [BLOBS_DIR, self.digest.algorithm], create=True)
        try:
            os.rename(self._name, self.digest.encoded, src_dir_fd=self._dir, dst_dir_fd=dst)
            os.fsync(dst)
        finally:
            os.close(dst)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._dir >= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._name, dir_fd=self._dir)
            os.close(self._dir)
            self._dir = -1


class LayoutBlobReader:
    """An open blob file: ``size_bytes`` (the whole blob), ``offset_bytes`` (where reading
    starts) and its bytes from there. Read from 0, the bytes are checked against the digest
    at the end (a damaged file raises :class:`DigestMismatch` instead of passing on)."""

    def __init__(
        self, runner: LayoutRunner, fd: int, digest: Digest, size_bytes: int, offset_bytes: int
    ) -> None:
        self._runner = runner
        self._fd = fd
        self._digest = digest
        self.size_bytes = size_bytes
        self.offset_bytes = self.position_bytes = offset_bytes

    async def iter_chunks(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> AsyncIterator[bytes]:
        hasher = hashlib.new(self._digest.algorithm) if self.offset_bytes == 0 else None
        what = f"reading blob {self._digest}"
        while self.position_bytes < self.size_bytes:
            want = min(chunk_bytes, self.size_bytes - self.position_bytes)
            # abandoned if cancelled: a pread stuck on a hung mount must not hold the run (the
            # fd may be closed under it then; its result is dropped)
            chunk = await self._runner.read(what, os.pread, self._fd, want, self.position_bytes)
            if not chunk:
                raise DigestMismatch(
                    f"{what}: the file ends at byte {self.position_bytes} of {self.size_bytes}; "
                    "it is damaged: copy it again from its source"
                )
            self.position_bytes += len(chunk)
            self._runner.counters.bytes_read += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
        if hasher is not None:
            check_digest(self._digest, hasher, what)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


StreamOpener = Callable[[str, str, int], AbstractAsyncContextManager[LayoutBlobReader]]


class BlobTransfers:
    """Uploads into and mounts between the layouts of one store."""

    def __init__(self, store: LayoutStore, runner: LayoutRunner, resume_attempts: int) -> None:
        self._store = store
        self._io = runner
        self.resume_attempts = resume_attempts

    async def upload(
        self, repo: str, digest: Digest, size_bytes: int, open_stream: OpenStream
    ) -> None:
        """Write the blob from ``open_stream(offset)`` unless the layout has it already.

        :raises DigestMismatch: the bytes hash to another digest (nothing is stored).
        :raises RequestRejected: more or fewer than ``size_bytes`` bytes (``SIZE_INVALID``).
        """
        where = self._store.where(repo)
        what = f"writing blob {digest} to {where}"

        def begin() -> BlobWriter | None:
            with self._store.open(repo, create=True) as layout:
                return (
                    None if layout.blob_size(digest) == size_bytes else layout.blob_writer(digest)
                )

        writer = await self._io.run(what, begin)
        if writer is None:
            return
        try:
            await self._fill(writer, size_bytes, open_stream, what)
            await self._io.run(f"storing blob {digest} in {where}", writer.commit, size_bytes)
        finally:
            with anyio.CancelScope(shield=True):
                await self._io.run(f"cleaning up after {what}", writer.abort)

    async def _fill(
        self, writer: BlobWriter, size_bytes: int, open_stream: OpenStream, what: str
    ) -> None:
        attempts = 0
        while True:
            stream = open_stream(writer.size_bytes)
            try:
                await self._copy(stream, writer, size_bytes, what)
                return
            except Transient:
                attempts += 1
                if attempts > self.resume_attempts:
                    raise
                self._io.counters.resumes += 1
            finally:
                closer = getattr(stream, "aclose", None)
                if closer is not None:
                    await closer()

    async def _copy(
        self, stream: AsyncIterable[bytes], writer: BlobWriter, size_bytes: int, what: str
    ) -> None:
        async for chunk in stream:
            if writer.size_bytes + len(chunk) > size_bytes:
                raise RequestRejected(
                    f"{what}: the source sent more than the {size_bytes} bytes announced",
                    code="SIZE_INVALID",
                )
            await self._io.run(what, writer.write, chunk)
            self._io.counters.bytes_written += len(chunk)

    async def mount(
        self, repo: str, digest: Digest, from_repo: str, open_reader: StreamOpener
    ) -> bool:
        """Make ``from_repo``'s blob ``repo``'s too: a hard link where the file system allows,
        else a copy through :meth:`upload` (verified). False when ``from_repo`` has none."""

        def link() -> tuple[str, int | None]:
            with self._store.open(repo, create=True) as target:
                try:
                    with self._store.open(from_repo) as source:
                        return target.link_blob_from(source, digest), source.blob_size(digest)
                except NotFound:
                    return "absent", None

        what = f"linking blob {digest} from {from_repo} into {self._store.where(repo)}"
        result, size = await self._io.run(what, link)
        if result != "unlinkable" or size is None:
            return result == "linked"

        async def source(offset: int) -> AsyncIterator[bytes]:
            async with open_reader(from_repo, str(digest), offset) as blob:
                async for chunk in blob.iter_chunks():
                    yield chunk

        await self.upload(repo, digest, size, source)
        return True
