"""Read-through: a manifest or blob this registry does not hold is fetched from an
:class:`~registry.http.upstream.Upstream`, verified, stored, and served (:class:`ReadThrough`).

Verified. A manifest's bytes must hash to the digest asked for, or — asked by tag — to the
digest the upstream announced; they must parse, and be no larger than a push may be. A blob is
hashed while it streams into an upload file and published by :meth:`BlobStore.publish`, the
path an upload takes: it becomes visible only once its digest matched. Nothing unverified is
ever served under the digest asked for: a blob is served only after it is stored (the cost is
the first byte: see docs/operations.md), a manifest only after its bytes were checked.

Stored as a push would be, by digest, but announced by no outbox event
(:meth:`ContentStore.put_fetched_manifest`): the replica it came from announced it already, and
an event here would replicate it back there and on to every region this one replicates to. A
manifest is stored only once what it references is in the repository
(:mod:`registry.http.pending`): before, its verified bytes are served from memory, and each
blob or child manifest the client fetches next is read through in turn; blobs the storage
already holds (another repository's layers) are linked at once, the upstream having vouched for
them by the manifest, so a new tag of an image whose layers are here costs one manifest fetch.

Tags are not stored: a tag resolved upstream is believed for ``tag_seconds`` (then asked again,
one request per node), and arrives for good with the replication from the region that has it.
That replication finds the manifest and blobs here (``HEAD``: nothing copied) and puts only the
tag — so it is its own (the policy's deletion sync may remove it later), and a tag moved in two
regions at once is decided by the regions' rule, never by a read-through.

Single flight. Concurrent requests for one (repository, reference) or (repository, blob) share
one upstream fetch (:class:`SingleFlight`), which first looks again at what is here (a fetch
that ended a moment ago stored it). Across several nodes, at worst one fetch per node.

Bounded. ``max_concurrent_fetches`` upstream fetches at once (a request waits for a slot at most
``timeout_seconds``); a blob chunk that does not arrive within ``timeout_seconds`` ends the
fetch; a manifest over ``max_manifest_bytes`` is refused.

Never resurrects a deletion: a tag, a manifest or a repository deleted here within
``removed_window_seconds`` (the outbox's record) is not read back from an upstream that has not
seen the deletion yet.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio

from registry.http.pending import PendingManifest, PendingManifests
from registry.http.upstream import (
    FetchedManifest,
    SingleFlight,
    Upstream,
    UpstreamBlob,
    UpstreamCorrupt,
    UpstreamError,
)
from registry.meta.cache import TTLCache
from registry.meta.content import ContentStore, ManifestRecord
from registry.oci.digest import Digest, DigestError, sha256_of
from registry.oci.errors import RegistryError
from registry.oci.manifest import ParsedManifest, parse_manifest
from registry.storage.blobs import BlobStore, DigestMismatch

__all__ = ["ReadThrough", "ReadThroughOptions", "ReadThroughStats"]

log = logging.getLogger("seawall.registry.read_through")


@dataclass(frozen=True, slots=True)
class ReadThroughOptions:
    timeout_seconds: float = 10.0  # a slot's wait; the gap between two blob chunks
    call_max_seconds: float = 60.0  # a manifest fetch or a blob's opening, all upstreams tried
    max_concurrent_fetches: int = 8
    max_manifest_bytes: int = 4 * 1024 * 1024
    pending_seconds: float = 120.0  # a verified manifest waits this long for its references
    pending_max_bytes: int = 64 * 1024 * 1024
    tag_seconds: float = 30.0  # a tag resolved upstream is believed this long
    removed_window_seconds: float = 600.0


@dataclass(frozen=True, slots=True)
class ReadThroughStats:
    """Counters since start: upstream fetches made, requests that joined another's fetch,
    manifests and blobs stored, fetches refused for bad content."""

    manifest_fetches: int
    blob_fetches: int
    joined: int
    manifests_stored: int
    blobs_stored: int
    corrupt: int


def _unavailable(reason: str) -> RegistryError:
    return RegistryError(
        "UNAVAILABLE",
        {"reason": reason},
        message=f"{reason}; the content is not here yet: retry shortly",
    )


class ReadThrough:
    def __init__(
        self,
        upstream: Upstream,
        content: ContentStore,
        blobs: BlobStore,
        options: ReadThroughOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream, self.content, self.blobs = upstream, content, blobs
        self.options = o = options or ReadThroughOptions()
        self.pending = PendingManifests(o.pending_seconds, o.pending_max_bytes, clock)
        self._tags: TTLCache[str] = TTLCache(16384, o.tag_seconds, clock)  # (repo, tag) → digest
        self._manifests: SingleFlight[tuple[str, str], ManifestRecord | None] = SingleFlight()
        self._blobs: SingleFlight[tuple[str, str], int | None] = SingleFlight()
        self._slots = anyio.CapacityLimiter(o.max_concurrent_fetches)
        self._counts = dict.fromkeys(ReadThroughStats.__slots__, 0)

    def stats(self) -> ReadThroughStats:
        joined = self._manifests.joined + self._blobs.joined
        return ReadThroughStats(**(self._counts | {"joined": joined}))

    # ------------------------------------------------------------------ manifests
    async def manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        """The manifest ``reference`` of ``repo`` from the upstream (verified; stored by digest
        once its references are here, else held in memory), or None when no upstream has it.
        A tag is resolved for ``tag_seconds``, never stored.

        :raises RegistryError: ``UNAVAILABLE`` when the upstream failed or served bad bytes.
        """
        known = await self._known(repo, reference)
        if known is not None:
            return known
        key = (repo, reference)
        return await self._manifests.run(key, lambda: self._fetch_manifest(repo, reference))

    async def _known(self, repo: str, reference: str) -> ManifestRecord | None:
        """What an earlier fetch left: a tag it resolved (to a manifest stored or waiting), a
        manifest waiting for its references."""
        if ":" in reference:
            waiting = self.pending.get(repo, reference)
            return None if waiting is None else waiting.record
        digest = self._tags.get((repo, reference))
        if digest is None:
            return None
        if await self.content.removed_recently(
            repo, reference, self.options.removed_window_seconds
        ):
            self._tags.pop((repo, reference))  # deleted here since it was resolved
            return None
        waiting = self.pending.get(repo, digest)
        if waiting is not None:
            return waiting.record
        return await self.content.get_manifest(repo, digest)

    async def _fetch_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        here = await self.content.get_manifest(repo, reference)  # a fetch just ended?
        if here is None:
            here = await self._known(repo, reference)
        if here is not None:
            return here
        async with self._slot():
            self._counts["manifest_fetches"] += 1
            try:
                with anyio.fail_after(self.options.call_max_seconds):
                    fetched = await self.upstream.fetch_manifest(repo, reference)
            except UpstreamCorrupt as e:
                self._counts["corrupt"] += 1
                log.warning("read-through of %s:%s refused: %s", repo, reference, e)
                raise _unavailable("the upstream's manifest did not match its digest") from None
            except (UpstreamError, TimeoutError) as e:
                log.warning("read-through of %s:%s failed: %s", repo, reference, e)
                raise _unavailable("the upstream could not be read") from None
        if fetched is None:
            return None
        record, parsed = self._verified(repo, reference, fetched)
        window = self.options.removed_window_seconds
        if await self.content.removed_recently(repo, reference, window):
            return None  # deleted here; the upstream has not seen the deletion yet
        if ":" not in reference:
            self._tags.put((repo, reference), record.digest)
        stored = await self.content.get_manifest(repo, record.digest)
        if stored is not None:  # a tag of a manifest that is here (replication put it by digest)
            return stored
        entry = self.pending.add(repo, record, parsed)
        entry.missing = set(await self._missing(repo, parsed))
        await self._link_stored_blobs(entry)
        await self._settle(repo)
        return record

    def _verified(
        self, repo: str, reference: str, fetched: FetchedManifest
    ) -> tuple[ManifestRecord, ParsedManifest]:
        data, limit = fetched.data, self.options.max_manifest_bytes
        where = f"{repo}:{reference} from {fetched.source or 'the upstream'}"
        if len(data) > limit:
            log.warning("read-through of %s refused: %d bytes, over %d", where, len(data), limit)
            raise _unavailable(f"the upstream's manifest is larger than {limit} bytes")
        expected = reference if ":" in reference else fetched.digest
        try:
            digest = str(Digest.parse(expected)) if expected else sha256_of(data)
            hasher = Digest.parse(digest).hasher()
        except DigestError:
            raise _unavailable("the upstream announced a malformed digest") from None
        hasher.update(data)
        if str(hasher.digest()) != digest:
            self._counts["corrupt"] += 1
            log.warning("read-through of %s refused: bytes hash to %s", where, hasher.digest())
            raise _unavailable("the upstream's manifest did not match its digest")
        try:
            parsed = parse_manifest(data, fetched.media_type)
        except RegistryError as e:
            log.warning("read-through of %s refused: %s", where, e)
            raise _unavailable("the upstream's manifest is not valid") from None
        return ManifestRecord(digest, parsed.media_type, len(data), data), parsed

    async def _missing(self, repo: str, parsed: ParsedManifest) -> list[str]:
        missing = [
            d.digest for d in parsed.blobs if await self.content.blob_size(repo, d.digest) is None
        ]
        for child in parsed.children:
            if await self.content.get_manifest(repo, child.digest) is None:
                missing.append(child.digest)
        return missing

    async def _link_stored_blobs(self, entry: PendingManifest) -> None:
        """Link the blobs of ``entry`` that this registry's storage holds already (a layer
        another repository has): the upstream vouched for them by the manifest, the bytes are
        content-addressed. As a mount: held against garbage collection until linked."""
        for digest in entry.sizes():
            if digest not in entry.missing or await self.content.known_blob_size(digest) is None:
                continue
            stored = await self.blobs.size_of(Digest.parse(digest))  # held until linked
            if stored is not None:
                await self.content.link_blob(entry.repo, digest, stored)
                self.pending.arrived(entry.repo, digest)

    async def _settle(self, repo: str) -> None:
        """Store every pending manifest of ``repo`` whose references are all here now (images
        first, so an index whose last child that was can follow in the same pass)."""
        progress = True
        while progress:
            progress = False
            for entry in self.pending.of_repository(repo):
                if entry.missing:
                    continue
                record = entry.record
                stored = await self.content.put_fetched_manifest(
                    repo, record.digest, record.data, entry.parsed
                )
                if stored:
                    self._counts["manifests_stored"] += 1
                    self.pending.drop(entry)
                    self.pending.arrived(repo, record.digest)
                    progress = True
                else:  # something went meanwhile (a delete, a collection): look again
                    entry.missing = set(await self._missing(repo, entry.parsed))

    # ------------------------------------------------------------------ blobs
    async def blob(self, repo: str, digest: Digest) -> int | None:
        """Fetch blob ``digest`` of ``repo`` from the upstream into this registry (verified,
        stored, linked) and return its size; None when no upstream has it.

        :raises RegistryError: ``UNAVAILABLE`` when the upstream failed or its bytes did not
            match the digest (nothing is stored then).
        """
        return await self._blobs.run((repo, str(digest)), lambda: self._fetch_blob(repo, digest))

    async def _fetch_blob(self, repo: str, digest: Digest) -> int | None:
        key = str(digest)
        size = await self.content.blob_size(repo, key)  # a fetch just ended?
        if size is not None:
            return size
        declared = self.pending.blob_size(repo, key)
        if declared is not None and await self.content.known_blob_size(key) is not None:
            stored = await self.blobs.size_of(digest)  # held until linked
            if stored is not None:  # vouched for by a manifest, and its bytes are here
                return await self._linked(repo, key, stored)
        async with self._slot(), AsyncExitStack() as stack:
            self._counts["blob_fetches"] += 1
            try:
                with anyio.fail_after(self.options.call_max_seconds):
                    opening = self.upstream.open_blob(repo, key)
                    blob = await stack.enter_async_context(opening)
                if blob is None:
                    return None
                if declared is not None and blob.size_bytes != declared:
                    raise UpstreamCorrupt(f"{blob.size_bytes} bytes, the manifest says {declared}")
                size = await self._store(digest, blob)
            except UpstreamCorrupt as e:
                self._counts["corrupt"] += 1
                log.warning("read-through of blob %s in %s refused: %s", key, repo, e)
                raise _unavailable("the upstream's blob did not match its digest") from None
            except (UpstreamError, TimeoutError) as e:
                log.warning("read-through of blob %s in %s failed: %s", key, repo, e)
                raise _unavailable("the upstream could not be read") from None
        self._counts["blobs_stored"] += 1
        return await self._linked(repo, key, size)

    async def _store(self, digest: Digest, blob: UpstreamBlob) -> int:
        """Stream ``blob`` into an upload and publish it under ``digest`` if it hashes to it.
        Memory stays flat: chunks go to storage as they come."""
        upload_id = f"read-through-{uuid.uuid4().hex}"
        await self.blobs.create(upload_id)
        try:
            chunks = _paced(blob.chunks(), self.options.timeout_seconds)
            size = await self.blobs.append(upload_id, chunks, commit=True)
            if size != blob.size_bytes:
                raise UpstreamError(f"the upstream sent {size} of {blob.size_bytes} bytes")
            await self.blobs.publish(upload_id, digest, size)
        except DigestMismatch as e:  # publish discarded the upload
            raise UpstreamCorrupt(str(e)) from None
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.blobs.cancel(upload_id)
            raise
        return size

    async def _linked(self, repo: str, digest: str, size: int) -> int:
        await self.content.link_blob(repo, digest, size)  # consumes the publication's hold
        self.pending.arrived(repo, digest)
        await self._settle(repo)
        return size

    # ------------------------------------------------------------------ limits
    def _slot(self) -> _Slot:
        return _Slot(self._slots, self.options.timeout_seconds)


class _Slot:
    """One of the ``max_concurrent_fetches`` upstream slots, waited for at most ``seconds``."""

    def __init__(self, limiter: anyio.CapacityLimiter, seconds: float) -> None:
        self.limiter, self.seconds = limiter, seconds

    async def __aenter__(self) -> None:
        try:
            with anyio.fail_after(self.seconds):
                await self.limiter.acquire()
        except TimeoutError:
            raise RegistryError(
                "TOOMANYREQUESTS",
                {"reason": "too many read-through fetches at once"},
                message="this registry is fetching as much from its upstreams as it may; "
                "retry shortly",
                headers={"Retry-After": "1"},
            ) from None

    async def __aexit__(self, *exc: object) -> None:
        self.limiter.release()


async def _paced(chunks: AsyncIterator[bytes], seconds: float) -> AsyncIterator[bytes]:
    """``chunks``, each of which must arrive within ``seconds`` of the one before
    (:class:`TimeoutError` otherwise)."""
    while True:
        with anyio.fail_after(seconds):
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
        yield chunk
