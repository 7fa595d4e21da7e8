"""What the engine needs of a registry's data plane: :class:`RegistryClient`.

:class:`~adapters.oci.client.OciClient` is the implementation for every registry reached over
HTTP; an adapter whose registry is not an HTTP registry (an OCI image-layout directory) hands
out its own. The engine types against this protocol only, so it never learns which one it has.
Every method raises only :mod:`adapters.oci.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from adapters.oci.types import ClientStats, Descriptor, Manifest, ManifestRef
from adapters.oci.uploads import OpenStream

__all__ = ["BlobReader", "CatalogListings", "RegistryClient"]

#: ``(repositories, {repository: (tags, {tag: manifest})} or None)``: see catalog_listings.
CatalogListings = tuple[list[str], dict[str, tuple[list[str], dict[str, ManifestRef]]] | None]


class BlobReader(Protocol):
    """An open blob: its size, where reading started, and its bytes from there."""

    size_bytes: int
    offset_bytes: int

    def iter_chunks(self, chunk_bytes: int = ...) -> AsyncIterator[bytes]: ...


class RegistryClient(Protocol):
    """The data-plane operations replication uses (see :class:`OciClient` for each contract)."""

    async def close(self) -> None: ...

    def stats(self) -> ClientStats: ...

    async def catalog(self, page_size: int = ...) -> list[str]: ...

    async def catalog_listings(
        self, prefix: str = ..., page_size: int = ...
    ) -> CatalogListings: ...

    async def list_tags(self, repo: str, page_size: int = ...) -> list[str]: ...

    async def list_tag_refs(
        self, repo: str, page_size: int = ...
    ) -> tuple[list[str], dict[str, ManifestRef]]: ...

    async def head_manifest(self, repo: str, reference: str) -> ManifestRef | None: ...

    async def get_manifest(self, repo: str, reference: str) -> Manifest: ...

    async def put_manifest(
        self, repo: str, reference: str, data: bytes, media_type: str
    ) -> str: ...

    async def delete_manifest(self, repo: str, digest: str) -> None: ...

    async def delete_tag(self, repo: str, tag: str) -> None: ...

    async def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None: ...

    async def head_blob(self, repo: str, digest: str) -> int | None: ...

    def blob_stream(
        self, repo: str, digest: str, offset: int = 0
    ) -> AbstractAsyncContextManager[BlobReader]: ...

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool: ...

    async def upload_blob(
        self,
        repo: str,
        digest: str,
        size_bytes: int,
        open_stream: OpenStream,
        *,
        chunk_bytes: int | None = None,
    ) -> None: ...
