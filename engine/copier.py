"""Copy one artifact between two registries, cheapest action first, digests preserved.

Per blob: skip when the destination has it (HEAD) → mount from another destination repository
that holds it → stream source → destination (resumed from the last acknowledged offset after a
failure, never held whole in memory). To another Seawall a small blob (at most
:data:`UPLOAD_WITHOUT_HEAD_BYTES`) goes up without the ``HEAD``: its one-request upload costs
what the ``HEAD`` would, and stores nothing new where the blob already is — an event run's blobs
are new there, so this saves a round trip per blob on the fan-out path; between two Seawalls an
image whose blobs are all that small goes up without the ``HEAD`` of its manifest too. Blobs
before manifests, children before indexes, subjects before referrers, tags last: a tag moves
only once everything it names is complete. The same blob wanted by two tasks at once is copied
once (single flight).

A source's manifest is parsed by the rules the registry applies to a push
(:func:`parse_source_manifest`): one that is not a manifest fails its artifact with a
:class:`ProtocolError` saying what is wrong, before anything of it is copied.

Between two Seawalls each tag carries its origin (where and when it was written,
:mod:`registry.oci.origin`): the copier reads it from the source as it sets the tag (a tag that
moved or went at the source since the plan is left to the run its change queued) and sends it
with the tag's ``PUT``; a deletion carries the source's tombstone's (:meth:`Copier.deleting`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import anyio

from adapters.oci.errors import ProtocolError
from adapters.oci.origins import OriginClient, carries_origins
from adapters.oci.types import Descriptor, Manifest, ManifestRef
from adapters.protocol import RegistryClient
from engine.bandwidth import BandwidthLimit
from engine.referrers import fallback_tag, publish_fallback, source_referrers
from registry.oci.errors import RegistryError
from registry.oci.manifest import ParsedManifest, parse_manifest
from registry.oci.origin import Origin

__all__ = ["Copier", "CopyResult", "parse_source_manifest"]

Log = Callable[[str], None]


@dataclass
class CopyResult:
    bytes_copied: int = 0
    blobs_copied: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    manifests_put: int = 0
    referrers: int = 0

    def summary(self) -> str:
        return (
            f"done: {self.blobs_copied} blobs copied, {self.blobs_skipped} present, "
            f"{self.blobs_mounted} mounted, {self.bytes_copied} bytes"
        )


def parse_source_manifest(manifest: Manifest, repo: str) -> ParsedManifest:
    """What ``manifest`` (as fetched from ``repo`` at the source) references, by the rules the
    registry applies to a push (:func:`registry.oci.manifest.parse_manifest`).

    :raises ProtocolError: the manifest is not one (broken JSON, a field missing or of the
        wrong type, an unsupported media type), naming it and what is wrong: the task copying
        it fails with that reason, nothing else does.
    """
    try:
        return parse_manifest(manifest.data, manifest.media_type)
    except RegistryError as e:
        detail = e.detail.get("reason") if isinstance(e.detail, dict) else None
        raise ProtocolError(
            f"source manifest {repo}@{manifest.digest} is invalid: {detail or e.message}"
        ) from None


@dataclass
class _Flight:
    done: anyio.Event = field(default_factory=anyio.Event)
    ok: bool = False
    error: BaseException | None = None


async def _all(calls: Iterable[Callable[[], Coroutine[Any, Any, Any]]]) -> None:
    """Run ``calls`` at once. If one fails the others are cancelled and its error is raised as
    itself, not inside an exception group: callers (the runner) tell errors apart by type."""
    try:
        async with anyio.create_task_group() as tg:
            for call in calls:
                tg.start_soon(call)
    except BaseExceptionGroup as group:
        raise _first_error(group) from None


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error in ``group`` (nested groups searched) that is not a cancellation."""
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            error = _first_error(error)
        if not isinstance(error, (anyio.get_cancelled_exc_class(), BaseExceptionGroup)):
            return error
    return group


#: Blobs up to this size go to a Seawall without a ``HEAD`` first (see the module's docstring).
UPLOAD_WITHOUT_HEAD_BYTES = 64 * 1024


def _small_image(parsed: ParsedManifest | None) -> bool:
    """An image manifest whose blobs all go up without a ``HEAD``: sending it costs about what
    asking whether the destination has it would, so it is sent without asking."""
    return (
        parsed is not None
        and not parsed.is_index
        and all(0 <= b.size <= UPLOAD_WITHOUT_HEAD_BYTES for b in parsed.blobs)
    )


class Copier:
    """Copies artifacts from ``src`` to ``dst``; one instance per run, shared by its tasks so
    that identical in-flight work is done once."""

    def __init__(
        self,
        src: RegistryClient,
        dst: RegistryClient,
        *,
        blob_concurrency: int = 8,
        chunk_bytes: int | None = None,
        bandwidth: BandwidthLimit | None = None,
        follow_referrers: bool = True,
        mount: bool = True,
        referrers_api: bool = False,
    ) -> None:
        """``mount``: the destination mounts blobs across repositories (its capability);
        False: never tried. ``chunk_bytes``: upload in chunks of this size (only where the
        destination takes chunked uploads). ``referrers_api``: the destination answers the
        referrers API (its capability), so no tag-schema index is kept there."""
        self.src, self.dst = src, dst
        self.mount = mount
        # the destination lists referrers by itself (its declared capability): no tag-schema
        # index to keep, and no request to find out
        self.referrers_api = referrers_api
        self.chunk_bytes = chunk_bytes
        self.bandwidth = bandwidth
        self.follow_referrers = follow_referrers
        self._blob_slots = anyio.Semaphore(blob_concurrency)
        self._flights: dict[tuple[str, str], _Flight] = {}
        self._at_destination: dict[str, str] = {}  # digest -> a dst repository that has it
        #: both sides are Seawalls: tags carry their origins
        self.carries_origins = carries_origins(src) and carries_origins(dst)

    async def copy(
        self, src_repo: str, dst_repo: str, digest: str, tags: tuple[str, ...], log: Log
    ) -> CopyResult:
        """Copy the artifact ``digest`` (with children and referrers), then set ``tags``.

        With no referrers to carry, the artifact's own manifest goes up by its first tag (one
        ``PUT`` stores the manifest and moves the tag, after its blobs and children); with
        referrers it goes up by digest, the referrers follow it, and the tags come last.
        """
        result = CopyResult()
        origins: dict[str, Origin | None] = {}
        if tags and self.carries_origins:
            tags, origins = await self._tag_origins(src_repo, digest, tags, log)
            if not tags:
                return result
        found = await source_referrers(self.src, src_repo, digest) if self.follow_referrers else []
        by_tag = tags[0] if tags and not found else None
        manifest = await self._manifest_tree(
            src_repo,
            dst_repo,
            digest,
            result,
            log,
            set(),
            reference=by_tag,
            origin=origins.get(by_tag or ""),
        )
        if manifest is not None and by_tag is not None:
            log(f"tagged {dst_repo}:{by_tag} -> {digest}")
            tags = tags[1:]
        if found:
            await self._referrers(src_repo, dst_repo, digest, result, log, {digest}, found)
        if tags and manifest is None:  # already there: its bytes are needed only to tag it
            manifest = await self.src.get_manifest(src_repo, digest)
        for tag in tags:
            assert manifest is not None
            await self._put(dst_repo, tag, manifest, origins.get(tag))
            result.manifests_put += 1
            log(f"tagged {dst_repo}:{tag} -> {digest}")
        return result

    async def _tag_origins(
        self, src_repo: str, digest: str, tags: tuple[str, ...], log: Log
    ) -> tuple[tuple[str, ...], dict[str, Origin | None]]:
        """The tags that still name ``digest`` at the source, and each one's origin there; a
        tag that moved or went since the plan is left out (the change queued a run of its
        own, which carries it: set here it would claim an origin it does not have)."""
        src = self.src
        assert carries_origins(src)
        heads = {}

        async def one(tag: str) -> None:
            heads[tag] = await src.head_tag(src_repo, tag)

        await _all(partial(one, tag) for tag in tags)
        kept = tuple(t for t in tags if (ref := heads[t].ref) is not None and ref.digest == digest)
        for tag in tags:
            if tag not in kept:
                log(f"{src_repo}:{tag} no longer names {digest} at the source: not set")
        return kept, {t: heads[t].origin for t in kept}

    async def _put(
        self, dst_repo: str, reference: str, manifest: Manifest, origin: Origin | None
    ) -> None:
        if origin is not None and carries_origins(self.dst):
            await self.dst.put_manifest(
                dst_repo, reference, manifest.data, manifest.media_type, origin=origin
            )
        else:
            await self.dst.put_manifest(dst_repo, reference, manifest.data, manifest.media_type)

    async def deleting(self, dst: RegistryClient, src_repo: str, tag: str) -> RegistryClient:
        """``dst`` for deleting ``tag`` where the plan said the source deleted it (from
        ``src_repo``): between two Seawalls, a client whose delete carries the source's
        tombstone's origin, and which finds the tag gone at the destination (so leaves it
        alone) when the source holds it again. ``dst`` itself elsewhere."""
        if not (self.carries_origins and src_repo and carries_origins(dst)):
            return dst
        src = self.src
        assert carries_origins(src)
        head = await src.head_tag(src_repo, tag)
        if head.ref is None and head.tombstone is None:
            return dst  # no record of the deletion (past the retention): as elsewhere
        origin = head.tombstone.origin if head.tombstone else None
        return cast(RegistryClient, _OriginDeletes(dst, tag, origin))

    async def _manifest_tree(
        self,
        src_repo: str,
        dst_repo: str,
        digest: str,
        result: CopyResult,
        log: Log,
        seen: set[str],
        reference: str | None = None,
        origin: Origin | None = None,
    ) -> Manifest | None:
        """Copy ``digest`` and what it references, putting it last, by ``reference`` (a tag,
        with its ``origin``) when given, else by digest; its bytes, or None when there was
        nothing to copy (already copied in this tree, or present at the destination: no GET
        then)."""
        if digest in seen:
            return None
        seen.add(digest)
        manifest, parsed = None, None
        # between two Seawalls the source's manifest, needed to copy it, costs what the HEAD
        # would: read it first, and a small image goes up without the HEAD (elsewhere, e.g.
        # pulling from Docker Hub, the HEAD here comes first: a manifest present is not fetched)
        if self.carries_origins:
            manifest = await self.src.get_manifest(src_repo, digest)
            parsed = parse_source_manifest(manifest, src_repo)
        if not _small_image(parsed) and await self.dst.head_manifest(dst_repo, digest) is not None:
            log(f"manifest {digest} already at destination")
            return None
        if manifest is None or parsed is None:
            manifest = await self.src.get_manifest(src_repo, digest)
            parsed = parse_source_manifest(manifest, src_repo)
        if parsed.is_index:
            await _all(
                partial(self._manifest_tree, src_repo, dst_repo, child.digest, result, log, seen)
                for child in parsed.children
            )
        else:  # config and layers; not foreign layers (they live elsewhere: their ``urls``)
            await _all(
                partial(self._blob, src_repo, dst_repo, desc, result, log) for desc in parsed.blobs
            )
        await self._put(dst_repo, reference or digest, manifest, origin if reference else None)
        result.manifests_put += 1
        log(f"put manifest {digest} ({manifest.media_type}, {manifest.size} bytes)")
        return manifest

    async def _referrers(
        self,
        src_repo: str,
        dst_repo: str,
        subject: str,
        result: CopyResult,
        log: Log,
        seen: set[str],
        found: list[Descriptor] | None = None,
    ) -> None:
        """Copy the referrers of ``subject`` (``found``, when already listed), and theirs."""
        if found is None:
            found = await source_referrers(self.src, src_repo, subject)
        copied: list[Descriptor] = []
        for desc in found:
            ref = desc.digest
            if ref in seen:
                continue
            seen.add(ref)
            await self._manifest_tree(src_repo, dst_repo, ref, result, log, set())
            result.referrers += 1
            copied.append(desc)
            log(f"referrer {ref} ({desc.artifact_type or desc.media_type}) of {subject} copied")
            await self._referrers(src_repo, dst_repo, ref, result, log, seen)
        if not self.referrers_api and await publish_fallback(self.dst, dst_repo, subject, copied):
            log(f"referrers of {subject} listed in tag {fallback_tag(subject)} (no referrers API)")

    async def _blob(
        self, src_repo: str, dst_repo: str, desc: Descriptor, result: CopyResult, log: Log
    ) -> None:
        digest, size = desc.digest, desc.size
        key = (dst_repo, digest)
        while (flight := self._flights.get(key)) is not None:  # someone is copying it: wait
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.ok:
                return
            # its copier was cancelled (its own task failed or stopped): copy it here
        flight = self._flights[key] = _Flight()
        try:
            async with self._blob_slots:
                await self._blob_cheapest(src_repo, dst_repo, digest, size, result, log)
            self._at_destination.setdefault(digest, dst_repo)
            flight.ok = True
        except BaseException as e:
            if not isinstance(e, anyio.get_cancelled_exc_class()):
                flight.error = e  # a cancellation is this task's, not the blob's
            self._flights.pop(key, None)
            raise
        finally:
            flight.done.set()

    async def _blob_cheapest(
        self, src_repo: str, dst_repo: str, digest: str, size: int, result: CopyResult, log: Log
    ) -> None:
        small = 0 <= size <= UPLOAD_WITHOUT_HEAD_BYTES and carries_origins(self.dst)
        if not small and await self.dst.head_blob(dst_repo, digest) is not None:
            result.blobs_skipped += 1
            return
        other = self._at_destination.get(digest) if self.mount else None
        if other and other != dst_repo and await self.dst.mount_blob(dst_repo, digest, other):
            result.blobs_mounted += 1
            log(f"mounted {digest} from {other}")
            return

        def open_stream(offset: int) -> AsyncIterator[bytes]:
            return self._stream(src_repo, digest, offset, result)

        await self.dst.upload_blob(
            dst_repo, digest, size, open_stream, chunk_bytes=self.chunk_bytes
        )
        result.blobs_copied += 1
        log(f"copied blob {digest} ({size} bytes)")

    async def _stream(
        self, src_repo: str, digest: str, offset: int, result: CopyResult
    ) -> AsyncIterator[bytes]:
        async with self.src.blob_stream(src_repo, digest, offset) as stream:
            async for chunk in stream.iter_chunks(1 << 20):
                if self.bandwidth is not None:
                    await self.bandwidth.consume(len(chunk))
                result.bytes_copied += len(chunk)
                yield chunk


class _OriginDeletes:
    """A destination client for one deletion: ``tag``'s deletes carry ``origin``; with no
    origin (the source holds the tag again) the tag reads as gone, so nothing is deleted."""

    def __init__(self, dst: OriginClient, tag: str, origin: Origin | None) -> None:
        self._dst, self._tag, self._origin = dst, tag, origin

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dst, name)

    async def head_manifest(self, repo: str, reference: str) -> ManifestRef | None:
        if reference == self._tag and self._origin is None:
            return None
        return await self._dst.head_manifest(repo, reference)  # type: ignore[attr-defined]

    async def delete_tag(self, repo: str, tag: str) -> None:
        await self._dst.delete_tag(repo, tag, origin=self._origin)

    async def delete_manifest(self, repo: str, digest: str) -> None:
        await self._dst.delete_manifest(repo, digest, origin=self._origin)
