"""The replication engine's client for the registry it runs in.

Writes and listings go through HTTP like for any other registry (the registry's own checks and
events apply to what the engine writes there). What a push-based run reads of each artifact —
its manifests, its referrers and the bytes of its blobs — is read from the registry's database
and storage instead: over loopback HTTP each of those reads cost the registry's request
handling, the HTTP framing and the client's parsing, all in the one process that also sends the
artifact on. A read finds what a ``GET`` would (a blob only when linked to the repository, a
manifest by tag or digest in it); anything it does not find (a digest the repository holds as a
manifest, an unknown one, a malformed reference) is asked for over HTTP, so errors are the
registry's own.

The adapter reads through :class:`LocalRegistry`, a small protocol declared here: the
registry's :class:`registry.http.context.RegistryContext` satisfies it as it is (its
``content`` a :class:`registry.meta.content.ContentStore`, its ``blobs`` a
:class:`registry.storage.blobs.BlobStore`), and ``seawall.replication`` wires the one into the
other. The registry knows nothing of this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from adapters.base import EndpointConfig
from adapters.oci.blobs import DEFAULT_CHUNK_BYTES, BlobStream
from adapters.oci.client import OciClient
from adapters.oci.errors import NotFound, OciError, Transient
from adapters.oci.origins import TagHead
from adapters.oci.types import Descriptor, Manifest, ManifestRef
from adapters.seawall import SeawallAdapter
from registry.oci.digest import Digest, DigestError
from registry.storage.base import PathNotFound, StorageError

if TYPE_CHECKING:
    from registry.meta.content import ManifestRecord, ReferrerRecord

__all__ = [
    "WHOLE_READ_BYTES",
    "LocalBlobStream",
    "LocalBlobs",
    "LocalContent",
    "LocalRegistry",
    "LocalRegistryClient",
    "ThisRegistryAdapter",
]

#: A blob up to this size is read whole, in one storage call (most blobs are small: configs,
#: signatures, thin layers); larger ones stream in chunks.
WHOLE_READ_BYTES = 1 << 20


class LocalContent(Protocol):
    """What the adapter reads of the registry's metadata (``ContentStore`` satisfies it)."""

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        """The manifest ``reference`` (a tag or a digest) names in ``repo``, or None."""
        ...

    async def referrers(
        self, repo: str, subject: str, artifact_type: str | None
    ) -> list[ReferrerRecord]:
        """The referrers of manifest ``subject`` in ``repo`` (of ``artifact_type`` if given)."""
        ...

    async def blob_size(self, repo: str, digest: str) -> int | None:
        """The size of blob ``digest`` when linked to ``repo`` (what a ``GET`` serves), else
        None."""
        ...


class LocalBlobs(Protocol):
    """What the adapter reads of the registry's blob storage (``BlobStore`` satisfies it)."""

    def read(self, digest: Digest, offset: int = 0) -> AsyncIterator[bytes]:
        """The blob's bytes from ``offset``; opens on the first read.
        :raises registry.storage.base.StorageError: (``PathNotFound``: it is gone)."""
        ...

    async def content(self, digest: Digest) -> bytes:
        """A small blob's bytes in one storage call. :raises PathNotFound:"""
        ...


class LocalRegistry(Protocol):
    """The registry the engine runs in, as the adapter reads it (``RegistryContext``)."""

    @property
    def content(self) -> LocalContent: ...

    @property
    def blobs(self) -> LocalBlobs: ...


class LocalBlobStream:
    """What :class:`adapters.oci.blobs.BlobStream` offers a reader, from local storage."""

    def __init__(self, source: AsyncIterator[bytes], size_bytes: int, offset_bytes: int) -> None:
        self._source = source
        self.size_bytes = size_bytes
        self.offset_bytes = self.position_bytes = offset_bytes

    async def iter_chunks(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._source:
                for start in range(0, len(chunk), chunk_bytes):
                    piece = chunk[start : start + chunk_bytes]
                    self.position_bytes += len(piece)
                    yield piece
        except PathNotFound as e:
            raise OciError(f"reading a blob from this registry's storage: {e}") from e
        except StorageError as e:  # I/O trouble: worth another try later
            raise Transient(f"reading a blob from this registry's storage: {e}") from e
        if self.position_bytes != self.size_bytes:
            raise OciError(
                f"this registry's storage holds {self.position_bytes} of the blob's "
                f"{self.size_bytes} bytes"
            )


class LocalRegistryClient(OciClient):
    """:class:`OciClient` for this registry, reading blob bytes from its storage."""

    def __init__(self, registry: LocalRegistry, base_url: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.registry = registry

    async def get_manifest(self, repo: str, reference: str) -> Manifest:
        record = await self.registry.content.get_manifest(repo, reference)
        if record is None:
            return await super().get_manifest(repo, reference)
        return Manifest(record.data, record.media_type, record.digest)

    async def head_tag(self, repo: str, tag: str) -> TagHead:
        """A tag this registry holds, with its origin, from its database (the copier asks
        this for every tag it sets between Seawalls); a tag it does not hold — and the
        tombstone a deleted one left — over HTTP, the registry's own answer."""
        record = await self.registry.content.get_manifest(repo, tag)
        if record is None:
            return await super().head_tag(repo, tag)
        ref = ManifestRef(record.digest, record.media_type, record.size)
        return TagHead(ref, record.origin)

    async def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        try:
            subject = str(Digest.parse(digest))
        except DigestError:
            return await super().referrers(repo, digest, artifact_type)
        rows = await self.registry.content.referrers(repo, subject, artifact_type)
        return [
            Descriptor(r.media_type, r.digest, r.size, r.artifact_type, r.annotations) for r in rows
        ]

    @asynccontextmanager
    async def blob_stream(  # type: ignore[override]  # reads like a BlobStream
        self, repo: str, digest: str, offset: int = 0
    ) -> AsyncIterator[LocalBlobStream | BlobStream]:
        where = f"blob {digest} in {repo}"
        try:
            parsed = Digest.parse(digest)
        except DigestError as e:
            raise NotFound(f"{where}: {e}", status=404) from None
        size = await self.registry.content.blob_size(repo, str(parsed))
        if size is None:  # not a linked blob: whatever a GET answers (a manifest, a 404)
            async with super().blob_stream(repo, digest, offset) as remote:
                yield remote
            return
        if offset == 0 and size <= WHOLE_READ_BYTES:
            source = self._whole(parsed)
        else:
            source = self.registry.blobs.read(parsed, offset)  # opens on the first read
        try:
            yield LocalBlobStream(source, size, offset)
        finally:
            closer = getattr(source, "aclose", None)
            if closer is not None:
                await closer()

    async def _whole(self, digest: Digest) -> AsyncIterator[bytes]:
        yield await self.registry.blobs.content(digest)


class ThisRegistryAdapter(SeawallAdapter):
    """The ``seawall`` adapter for the registry the engine runs in."""

    def __init__(self, config: EndpointConfig, registry: LocalRegistry) -> None:
        super().__init__(config)
        self._registry = registry

    def client(self) -> OciClient:
        if self._client is None:
            self._client = LocalRegistryClient(
                self._registry, self.registry_url(), **self.client_kwargs()
            )
        return self._client
