"""The storage-driver contract: a small, filesystem-like, async interface.

Drivers store opaque bytes at slash-separated paths (``/blobs/sha256/ab/abcd…/data``). They know
nothing of OCI; :mod:`registry.storage.blobs` builds content-addressed storage on top of them and
:mod:`registry.storage.paths` draws the layout.

Every driver passes the one conformance suite in :mod:`registry.storage.testing`; a new driver is a
fixture plus a subclass there. Drivers are found by name through :mod:`registry.storage.factory`,
which hands out every driver inside :class:`registry.storage.checked.CheckedDriver`: that one
wrapper checks paths and offsets, translates foreign exceptions (botocore, azure, google, OSError)
into the tree below by asking the driver's :meth:`StorageDriver.map_error`, and records metrics —
once, for every driver. The error tree::

    StorageError                 anything that went wrong in storage (names driver and path)
    ├── PathNotFound             nothing is stored at the path
    ├── InvalidPath              the path is malformed (or, filesystem, leaves the root)
    ├── InvalidOffset            a read or append past the end, or a negative offset/length
    └── DriverUnavailable        the driver cannot be used here (says why and how to fix it)

Invariants every driver keeps:

* ``put_content`` and ``move`` are atomic: a reader sees the old content or the new, never a part.
* A ``FileWriter``'s bytes become durable only at ``commit()``; until then nothing is promised.
* ``reader`` never yields bytes past the size ``stat`` reported for a committed file.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "DEFAULT_URL_EXPIRY",
    "DriverUnavailable",
    "FileInfo",
    "FileWriter",
    "InvalidOffset",
    "InvalidPath",
    "PathNotFound",
    "StorageDriver",
    "StorageError",
    "check_path",
]

_PATH_RE = re.compile(r"^(/[A-Za-z0-9._-]+)+$")


class StorageError(Exception):
    """A storage operation failed; ``driver`` names the backend."""

    def __init__(self, message: str, *, driver: str = "", path: str = "") -> None:
        self.message, self.driver, self.path = message, driver, path
        super().__init__(f"{driver or 'storage'}: {message}" + (f" ({path})" if path else ""))


class PathNotFound(StorageError):
    """Nothing is stored at the path."""


class InvalidPath(StorageError):
    """The path is not an absolute, slash-separated path of safe components."""


class InvalidOffset(StorageError):
    """A read or append asked for an offset beyond the content."""


class DriverUnavailable(StorageError):
    """The driver cannot run here (a missing package, missing settings); says how to fix it."""


DEFAULT_URL_EXPIRY = timedelta(minutes=20)


def check_path(path: str) -> str:
    """Return ``path`` if it is absolute and made of ``[A-Za-z0-9._-]+`` components other than
    ``.`` and ``..``; else raise :class:`InvalidPath`. The whole string must match (no trailing
    newline: ``$`` alone would let ``"/a\\n"`` through)."""
    if not _PATH_RE.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        raise InvalidPath("invalid storage path", path=path)
    return path


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    size_bytes: int
    modified: datetime
    is_dir: bool = False


class FileWriter(ABC):
    """Appends bytes to one path. Not shared between tasks.

    ``size_bytes`` counts everything written so far, including what an earlier writer of the same
    path left (``append=True``).
    """

    size_bytes: int

    @abstractmethod
    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; return the number of bytes written (always all of it)."""

    @abstractmethod
    async def commit(self) -> None:
        """Make everything written durable (flushed and fsynced) at the path. Ends the writer."""

    @abstractmethod
    async def close(self) -> None:
        """Flush and release the writer, leaving the content for a later ``append=True`` writer."""

    @abstractmethod
    async def cancel(self) -> None:
        """Discard the content written at this path. Ends the writer."""


class StorageDriver(ABC):
    """A storage backend. Paths are validated with :func:`check_path` by every method."""

    name: str = "abstract"

    @abstractmethod
    async def stat(self, path: str) -> FileInfo:
        """Describe a file or directory. :raises PathNotFound:"""

    @abstractmethod
    async def get_content(self, path: str) -> bytes:
        """Whole content of a (small) file. :raises PathNotFound:"""

    @abstractmethod
    async def put_content(self, path: str, data: bytes) -> None:
        """Atomically create or replace a file, creating parent directories."""

    @abstractmethod
    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (all, if None) from ``offset``, in chunks of at most ~1 MiB.

        :raises PathNotFound: (on first iteration) when the file does not exist
        :raises InvalidOffset: when ``offset`` is past the end of the file
        """

    @abstractmethod
    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        """A writer for ``path``; ``append=True`` continues what is there (resumable uploads).

        Without ``append`` any existing content is truncated.
        """

    @abstractmethod
    async def move(self, source: str, dest: str) -> None:
        """Atomically move a file, replacing ``dest``. :raises PathNotFound: if no source."""

    @abstractmethod
    async def delete(self, path: str) -> None:
        """Delete a file, or a directory and all below it. :raises PathNotFound:"""

    @abstractmethod
    async def list(self, path: str) -> list[str]:
        """Full paths of the direct children of a directory, sorted. :raises PathNotFound:"""

    def local_file(self, path: str) -> str | None:
        """The OS path of a stored file when this driver is a local filesystem (zero-copy
        responses), else None. Never a path outside the driver's root. An optional fast path:
        callers must work (by :meth:`reader`) when it is None."""
        return None

    async def url_for(
        self, path: str, method: str = "GET", expires: timedelta = DEFAULT_URL_EXPIRY
    ) -> str | None:
        """A URL from which a plain HTTP client can ``method`` (``GET`` or ``HEAD``) the file for
        about ``expires`` without other credentials (S3 presign, Azure SAS, GCS signed URL), or
        None where the driver cannot make one. Never checks that the file exists."""
        return None

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        """Every file below ``path`` (or ``path`` itself when it is a file), each once, in no
        particular order; nothing when ``path`` does not exist. For garbage collection: drivers
        over flat object listings override this with one paged listing."""
        try:
            info = await self.stat(path)
        except PathNotFound:
            return
        if not info.is_dir:
            yield info
            return
        try:
            children = await self.list(path)
        except PathNotFound:
            return
        for child in children:
            async for found in self.walk(child):
                yield found

    def map_error(self, error: Exception, path: str) -> StorageError | None:
        """Translate an exception of this driver's SDK into the storage error tree (None: a
        plain :class:`StorageError` naming the exception). Called once, by the wrapper."""
        return None

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and clients."""
