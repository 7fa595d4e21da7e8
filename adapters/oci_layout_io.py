"""The seam between the layout store's blocking file I/O and the engine's event loop.

:class:`LayoutRunner` runs each blocking call in a worker thread (bounded in number) and turns
every :class:`OSError` and layout format error into :mod:`adapters.oci.errors`, once, with a
message that says what failed, where, and what to do; anything else a call raises (a bug, a
``MemoryError``) becomes a :class:`ProtocolError` too: nothing but an ``OciError`` leaves the
adapter. Reads (:meth:`LayoutRunner.read`) are abandoned when the caller is cancelled (a stuck
network file system cannot hold a run); writes always finish (never half-way).
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
from adapters.oci_layout_fs import FileTooLarge, NotRegularFile
from adapters.oci_layout_index import LayoutFormatError

__all__ = ["LayoutRunner", "translate"]

T = TypeVar("T")


def translate(error: OSError | LayoutFormatError, what: str) -> OciError:
    """The one mapping from a file-system failure to the client's error tree."""
    if isinstance(error, LayoutFormatError):
        return ProtocolError(f"{what}: {error}")
    path = f" ({error.filename})" if error.filename else ""
    reason = f"{what}: {error.strerror or error}{path}"
    if isinstance(error, NotRegularFile):
        return ProtocolError(
            f"{what}: {error.filename} {error.strerror}: an image layout holds only directories "
            "and regular files; remove it, or replace it with the file itself"
        )
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

    async def run(
        self, what: str, fn: Callable[..., T], *args: object, abandon_on_cancel: bool = False
    ) -> T:
        """``fn(*args)`` in a worker thread, to the end even if the caller is cancelled
        meanwhile (a write is never left half-done). :raises OciError: only (``what`` names
        it, and the path it works on)."""
        self.counters.operations += 1
        try:
            return await anyio.to_thread.run_sync(
                fn, *args, limiter=self._limiter, abandon_on_cancel=abandon_on_cancel
            )
        except OciError:
            raise
        except (OSError, LayoutFormatError) as e:
            raise translate(e, what) from e
        except Exception as e:  # nothing foreign leaves the adapter: the engine catches OciError
            raise ProtocolError(f"{what}: unexpected {type(e).__name__}: {str(e)[:300]}") from e

    async def read(self, what: str, fn: Callable[..., T], *args: object) -> T:
        """:meth:`run` for a call that only reads: when the caller is cancelled, it returns
        at once and the thread is left to end on its own (its result is dropped; ``fn`` must
        release what it holds, or hand it over safely)."""
        return await self.run(what, fn, *args, abandon_on_cancel=True)

    def stats(self) -> ClientStats:
        c = self.counters
        return ClientStats(
            requests=c.operations,
            resumes=c.resumes,
            bytes_sent=c.bytes_written,
            bytes_received=c.bytes_read,
        )
