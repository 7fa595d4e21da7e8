"""The seam between the layout store's blocking file I/O and the engine's event loop.

:class:`LayoutRunner` runs each blocking call in a worker thread (bounded in number) and turns
every :class:`OSError` and layout format error into :mod:`adapters.oci.errors`, once, with a
message that says what failed, where, and what to do.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread

from adapters.oci.errors import (
    Denied,
    NotFound,
    OciError,
    ProtocolError,
    RequestRejected,
    Transient,
)
from adapters.oci.types import ClientStats
from adapters.oci_layout_fs import FileTooLarge
from adapters.oci_layout_index import LayoutFormatError

__all__ = ["LayoutRunner", "translate"]

T = TypeVar("T")


def translate(error: OSError | LayoutFormatError, what: str) -> OciError:
    """The one mapping from a file-system failure to the client's error tree."""
    if isinstance(error, LayoutFormatError):
        return ProtocolError(f"{what}: {error}")
    path = f" ({error.filename})" if error.filename else ""
    reason = f"{what}: {error.strerror or error}{path}"
    code = error.errno
    if isinstance(error, FileTooLarge) or code == errno.EFBIG:
        return RequestRejected(f"{reason}: too large for a manifest", code="MANIFEST_INVALID")
    if code == errno.ENOENT:
        return NotFound(reason)
    if code == errno.EROFS:
        return Denied(f"{reason}: the file system is read-only; use this endpoint as a source")
    if code in (errno.EACCES, errno.EPERM):
        return Denied(
            f"{reason}: give the user Seawall runs as read (source) or write (destination) "
            "access to the layout root"
        )
    if code == errno.ELOOP:
        return RequestRejected(
            f"{what}: {error.filename or 'a path'} is a symbolic link, and Seawall never "
            "follows one below the layout root: replace it with the directory or file itself"
        )
    if code in (errno.ENOTDIR, errno.EISDIR):
        return RequestRejected(f"{reason}: expected a directory of layouts, blobs and files")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return Transient(f"{reason}: no space left for the layout; free some, then retry")
    return Transient(f"{reason}: I/O error; retry, and check the disk if it persists")


@dataclass
class _Counters:
    operations: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    resumes: int = 0


class LayoutRunner:
    """Runs blocking layout calls off the event loop, at most ``max_in_flight`` at once."""

    def __init__(self, max_in_flight: int) -> None:
        self._limiter = anyio.CapacityLimiter(max_in_flight)
        self.counters = _Counters()

    async def run(self, what: str, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a worker thread. :raises OciError: only (``what`` names it)."""
        self.counters.operations += 1
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except (OSError, LayoutFormatError) as e:
            raise translate(e, what) from e

    def stats(self) -> ClientStats:
        c = self.counters
        return ClientStats(
            requests=c.operations,
            resumes=c.resumes,
            bytes_sent=c.bytes_written,
            bytes_received=c.bytes_read,
        )
