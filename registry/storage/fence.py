"""What :class:`registry.storage.blobs.BlobStore` asks of garbage collection's fence before it
makes a blob's bytes present (publish, store) or relies on them being present (a mount).

The fence itself lives with the metadata (:class:`registry.meta.fence.BlobFence`); this is the
narrow seam storage declares, so that storage never imports the database. The whole protocol,
and why it is safe, is in :mod:`registry.storage.gc`.
"""

from __future__ import annotations

from typing import Protocol

from registry.storage.base import StorageError

__all__ = ["BlobBusy", "PublishFence"]


class BlobBusy(StorageError):
    """The blob is being garbage-collected right now and stayed so for longer than a
    publication waits (seconds); the request should be sent again. Answered ``503``."""


class PublishFence(Protocol):
    async def hold(self, digest: str) -> None:
        """Hold ``digest`` for a publication by the calling task: from now until the task links
        it, garbage collection will not claim it. Waits while a collection is deleting it.

        :raises BlobBusy: when a collection kept it claimed for longer than the wait.
        """

    async def release(self, digest: str) -> None:
        """Give up the calling task's hold on ``digest`` (the publication failed)."""
