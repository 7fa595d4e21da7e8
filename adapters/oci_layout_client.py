"""``OciLayoutClient``: the :class:`~adapters.protocol.RegistryClient` of a directory of OCI
image layouts, one per repository (``ROOT/<repository>/``; see :mod:`adapters.oci_layout_store`).

What a registry does, the layout does the same way: tags are ``index.json`` descriptors with
``org.opencontainers.image.ref.name``; a manifest is a blob found by digest; referrers are the
manifests listed in ``index.json`` whose ``subject`` is the digest; a manifest is refused until
the blobs and child manifests it references are in the layout. Every method raises only
:mod:`adapters.oci.errors` and does its file I/O in worker threads; writes to one layout's
``index.json`` are serialised by an in-process lock and an ``flock`` on the layout directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from adapters.oci.errors import DigestMismatch, NotFound, RequestRejected
from adapters.oci.types import ClientStats, Descriptor, Manifest, ManifestRef
from adapters.oci.uploads import OpenStream
from adapters.oci_layout_blobs import BlobTransfers, LayoutBlobReader
from adapters.oci_layout_fs import locked
from adapters.oci_layout_index import (
    JsonTooDeep,
    LayoutFormatError,
    LayoutIndex,
    after_put,
    descriptor,
    load_json,
)
from adapters.oci_layout_io import LayoutRunner
from adapters.oci_layout_refs import check_references, is_referrer, listed_by_an_index, referrer
from adapters.oci_layout_store import Layout, LayoutStore, repository_parts
from adapters.protocol import CatalogListings
from registry.oci.digest import Digest, DigestError
from registry.oci.errors import RegistryError
from registry.oci.manifest import parse_manifest
from registry.oci.reference import is_valid_tag

__all__ = ["OciLayoutClient"]

MiB = 1 << 20
TagRefs = tuple[list[str], dict[str, ManifestRef]]


def _digest(value: str) -> Digest:
    try:
        return Digest.parse(value)
    except DigestError as e:
        raise RequestRejected(f"{value[:200]!r}: {e}", code="DIGEST_INVALID") from None


def _reference(reference: str) -> Digest | str:
    """A parsed digest, or the tag itself. :raises RequestRejected: neither."""
    if ":" in reference:
        return _digest(reference)
    if not is_valid_tag(reference):
        raise RequestRejected(f"{reference[:200]!r} is neither a tag nor a digest")
    return reference


def _tag_refs(index: LayoutIndex) -> TagRefs:
    tags = index.tags()
    refs = {t: ManifestRef(e.digest, e.media_type, e.size) for t, e in tags.items() if e.complete}
    return sorted(tags), refs


class OciLayoutClient:
    """The client of the layouts under ``root`` (an absolute directory path). Nothing is opened
    until a method is called; :meth:`close` only forgets caches."""

    def __init__(
        self,
        root: str,
        *,
        max_in_flight: int = 16,
        max_manifest_bytes: int = 8 * MiB,
        max_index_bytes: int = 8 * MiB,
        resume_attempts: int = 5,
    ) -> None:
        self.root = root
        self.store = LayoutStore(
            root, max_manifest_bytes=max_manifest_bytes, max_index_bytes=max_index_bytes
        )
        self.max_manifest_bytes = max_manifest_bytes
        self.resume_attempts = resume_attempts
        self._io = LayoutRunner(max_in_flight)
        self._blobs = BlobTransfers(self.store, self._io, resume_attempts)
        self._locks: dict[str, anyio.Lock] = {}

    def __repr__(self) -> str:
        return f"OciLayoutClient({self.root!r})"

    async def close(self) -> None:
        """Nothing stays open between calls: only the caches are dropped."""
        self.store.forget()

    def stats(self) -> ClientStats:
        return self._io.stats()

    async def create_repository(self, repo: str) -> None:
        """Make ``ROOT/<repo>/`` an (empty) image layout if it is not one yet; idempotent."""

        def create() -> None:
            with self.store.open(repo, create=True):
                pass

        await self._io.run(f"creating the layout {self.store.where(repo)}", create)

    # -- listings ----------------------------------------------------------------------------

    async def catalog(self, page_size: int = 1000) -> list[str]:
        """Every repository: directories under the root holding an image layout."""
        return await self._io.read(f"listing {self.root}", self.store.catalog, "")

    async def catalog_listings(self, prefix: str = "", page_size: int = 1000) -> CatalogListings:
        """The repositories whose names start with ``prefix``, each with its tags and the
        manifests they name (a layout whose ``index.json`` cannot be read is listed without:
        :meth:`list_tag_refs` then says why)."""

        def listings() -> CatalogListings:
            names = self.store.catalog(prefix)
            found: dict[str, TagRefs] = {}
            for name in names:
                try:
                    with self.store.open(name) as layout:
                        found[name] = _tag_refs(layout.index())
                except Exception:  # an OciError, OSError, bad file: whatever it is
                    continue  # list_tag_refs says why, for this repository alone
            return names, found

        return await self._io.read(f"listing {self.root}", listings)

    async def list_tags(self, repo: str, page_size: int = 1000) -> list[str]:
        return (await self.list_tag_refs(repo))[0]

    async def list_tag_refs(self, repo: str, page_size: int = 1000) -> TagRefs:
        """Tags of ``repo`` (sorted) and the manifest each names, from ``index.json``; ref
        names that are not OCI tags are left out. :raises NotFound: no such layout."""
        return await self._read(repo, "listing tags", lambda layout: _tag_refs(layout.index()))

    async def _read(self, repo: str, what: str, fn: Callable[[Layout], Any]) -> Any:
        """``fn(layout)`` in a worker thread, abandoned if the caller is cancelled: ``fn`` only
        reads, and the layout is closed when it returns."""

        def call() -> Any:
            with self.store.open(repo) as layout:
                return fn(layout)

        return await self._io.read(f"{what} of {self.store.where(repo)}", call)

    # -- manifests ---------------------------------------------------------------------------

    def _resolve(self, layout: Layout, reference: Digest | str) -> ManifestRef | None:
        index = layout.index()
        if isinstance(reference, str):
            entry = index.tags().get(reference)
            if entry is None:
                return None
            digest = _digest(entry.digest)
        else:
            digest, entry = reference, index.find(str(reference))
        size = layout.blob_size(digest)
        if size is None:
            return None
        if entry is not None and entry.complete:
            return ManifestRef(entry.digest, entry.media_type, entry.size)
        summary = layout.summary(digest)
        if summary is None:
            return None
        return ManifestRef(str(digest), (entry and entry.media_type) or summary.media_type, size)

    async def head_manifest(self, repo: str, reference: str) -> ManifestRef | None:
        """The manifest a tag names (by ``index.json``) or a manifest blob of the layout (by
        digest); None if there is none, or no such repository."""
        ref = _reference(reference)
        try:
            return await self._read(
                repo, f"looking up {reference}", lambda layout: self._resolve(layout, ref)
            )
        except NotFound:
            return None

    async def get_manifest(self, repo: str, reference: str) -> Manifest:
        """The manifest's exact bytes (verified against its digest)."""
        ref = _reference(reference)

        def get(layout: Layout) -> Manifest:
            found = self._resolve(layout, ref)
            if found is None:
                raise NotFound(
                    f"manifest {reference} is not in {layout.where}", code="MANIFEST_UNKNOWN"
                )
            data = layout.read_blob(_digest(found.digest), self.max_manifest_bytes)
            try:  # what the engine is given parses within Python's recursion limit
                load_json(data, f"manifest {found.digest} in {layout.where}")
            except JsonTooDeep:
                raise
            except LayoutFormatError:
                pass  # not JSON: the engine says so (as of any registry's)
            return Manifest(data, found.media_type, found.digest)

        return await self._read(repo, f"reading manifest {reference}", get)

    async def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """Store a manifest by tag or digest (the layout is created if missing); returns its
        digest. :raises RequestRejected: not a manifest, or a blob or child it references is
        not in the layout yet (``MANIFEST_BLOB_UNKNOWN``)."""
        ref = _reference(reference)
        algorithm = ref.algorithm if isinstance(ref, Digest) else "sha256"
        digest = Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
        if isinstance(ref, Digest) and ref != digest:
            raise DigestMismatch(f"manifest for {repo}@{ref} hashes to {digest}")
        if len(data) > self.max_manifest_bytes:  # it could not be read back
            raise RequestRejected(
                f"manifest for {repo}:{reference} is {len(data)} bytes, more than the "
                f"{self.max_manifest_bytes} a layout manifest may have",
                code="MANIFEST_INVALID",
            )
        try:
            parsed = parse_manifest(data, media_type)
        except RegistryError as e:
            raise RequestRejected(
                f"manifest for {repo}:{reference}: {e}", code=e.code.code
            ) from None
        doc = json.loads(data)
        entry = descriptor(
            parsed.media_type,
            str(digest),
            len(data),
            tag=ref if isinstance(ref, str) else None,
            artifact_type=doc.get("artifactType")
            if isinstance(doc.get("artifactType"), str)
            else None,
        )

        def put(layout: Layout, index: LayoutIndex) -> LayoutIndex:
            check_references(layout, parsed)
            if layout.blob_size(digest) is None:
                writer = layout.blob_writer(digest)
                try:
                    writer.write(data)
                    writer.commit(len(data))
                finally:
                    writer.abort()
            tag = ref if isinstance(ref, str) else None
            children = {c.digest for c in parsed.children}
            rooted = tag is None and listed_by_an_index(layout, index, str(digest))
            return after_put(
                index,
                entry,
                tag=tag,
                rooted_elsewhere=rooted,
                children=children,
                keep_root=lambda d: is_referrer(layout, d),
            )

        await self._update(repo, f"storing manifest {reference}", put)
        return str(digest)

    async def _update(
        self,
        repo: str,
        what: str,
        change: Callable[[Layout, LayoutIndex], LayoutIndex | None],
        *,
        create: bool = True,
    ) -> None:
        """``change(layout, index)`` under the layout's locks (the in-process one, then the
        directory's ``flock``); the index it returns is written unless it is ``index`` itself
        or None (``change`` wrote what it had to)."""

        def call() -> None:
            with self.store.open(repo, create=create) as layout, locked(layout.fd):
                before = layout.index()
                after = change(layout, before)
                if after is not None and after is not before:
                    layout.write_index(after)

        lock = self._locks.setdefault(repo, anyio.Lock())
        async with lock:
            await self._io.run(f"{what} in {self.store.where(repo)}", call)

    async def delete_tag(self, repo: str, tag: str) -> None:
        """Remove the tag's ``index.json`` entry; the manifest stays readable by digest until
        something collects it (``umoci gc``). :raises NotFound: no such tag."""
        if not is_valid_tag(tag):
            raise RequestRejected(f"delete_tag needs a tag, got {tag[:200]!r}")

        def remove(layout: Layout, index: LayoutIndex) -> LayoutIndex:
            if tag not in index.tags():
                raise NotFound(f"tag {tag} is not in {layout.where}", code="MANIFEST_UNKNOWN")
            return index.replaced(lambda e: e.ref_name == tag)

        await self._update(repo, f"deleting tag {tag}", remove, create=False)

    async def delete_manifest(self, repo: str, digest: str) -> None:
        """Remove every ``index.json`` entry of the manifest (its tags too) and its blob; the
        blobs it references stay. :raises NotFound: the layout has no such manifest."""
        d = _digest(digest)

        def remove(layout: Layout, index: LayoutIndex) -> None:
            if index.find(digest) is None and layout.summary(d) is None:
                raise NotFound(
                    f"manifest {digest} is not in {layout.where}", code="MANIFEST_UNKNOWN"
                )
            after = index.replaced(lambda e: e.digest == digest)
            if after != index:
                layout.write_index(after)  # first: index.json never names a missing blob
            layout.remove_blob(d)

        await self._update(repo, f"deleting manifest {digest}", remove, create=False)

    # -- referrers ---------------------------------------------------------------------------

    async def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor] | None:
        """Manifests listed in ``index.json`` whose ``subject`` is ``digest`` (filtered by
        ``artifact_type``); empty for an unknown repository. Never None: the layout answers
        for referrers itself."""
        _digest(digest)

        def find(layout: Layout) -> list[Descriptor]:
            out: dict[str, Descriptor] = {}
            for e in layout.index().entries():
                found = referrer(layout, e, digest)
                if found is not None and (
                    artifact_type is None or found.artifact_type == artifact_type
                ):
                    out.setdefault(found.digest, found)
            return list(out.values())

        try:
            return await self._read(repo, f"listing referrers of {digest}", find)
        except NotFound:
            return []

    # -- blobs -------------------------------------------------------------------------------

    async def head_blob(self, repo: str, digest: str) -> int | None:
        d = _digest(digest)
        try:
            return await self._read(
                repo, f"looking up blob {digest}", lambda layout: layout.blob_size(d)
            )
        except NotFound:
            return None

    @asynccontextmanager
    async def blob_stream(
        self, repo: str, digest: str, offset: int = 0
    ) -> AsyncIterator[LayoutBlobReader]:
        """Read a blob from ``offset`` in chunks, never whole."""
        d = _digest(digest)
        handoff = threading.Lock()
        opened: list[int] = []  # the fd, once the worker thread has it
        abandoned = False

        def open_blob(layout: Layout) -> tuple[int, int]:
            fd, size = layout.open_blob(d)
            with handoff:
                if abandoned:  # the caller was cancelled meanwhile: nobody will close it
                    os.close(fd)
                else:
                    opened.append(fd)
            return fd, size

        try:
            fd, size = await self._read(repo, f"opening blob {digest}", open_blob)
        except BaseException:
            with handoff:
                abandoned = True
                for fd in opened:
                    os.close(fd)
            raise
        reader = LayoutBlobReader(self._io, fd, d, size, offset)
        try:
            if not 0 <= offset <= size:
                raise RequestRejected(f"offset {offset} is outside blob {digest} ({size} bytes)")
            yield reader
        finally:
            reader.close()

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Make ``from_repo``'s blob ``repo``'s too: a hard link (same file system), else a
        verified copy. False only when ``from_repo`` has no such blob."""
        d = _digest(digest)
        repository_parts(from_repo)
        return await self._blobs.mount(repo, d, from_repo, self.blob_stream)

    async def upload_blob(
        self,
        repo: str,
        digest: str,
        size_bytes: int,
        open_stream: OpenStream,
        *,
        chunk_bytes: int | None = None,
    ) -> None:
        """Write a blob from ``open_stream(offset)``: to a temporary file, hashed as it goes,
        renamed into ``blobs/`` once size and digest match (``chunk_bytes`` changes nothing
        here). A source that fails transiently is reopened where it stopped.

        :raises DigestMismatch: the bytes hash to another digest (nothing is stored).
        :raises RequestRejected: more or fewer than ``size_bytes`` bytes (``SIZE_INVALID``).
        """
        await self._blobs.upload(repo, _digest(digest), size_bytes, open_stream)
