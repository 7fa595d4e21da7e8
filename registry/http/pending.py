"""Manifests read through from an upstream and verified, waiting in memory until what they
reference is here (:class:`PendingManifests`).

A manifest is stored only once every blob and child manifest it references is in the
repository — the invariant a push keeps (``MANIFEST_BLOB_UNKNOWN``), on which replication
relies: its ``HEAD`` finding a manifest means the artifact is whole here. Until then the
verified bytes wait here and are served from here (the client fetches the references next,
each read through in turn, and the last one to arrive lets the manifest be stored). An entry
whose references never all arrive (a client that had some layers already, an index of which
one platform was pulled) expires; the replication from the region that has it brings it whole.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from registry.meta.content import ManifestRecord
from registry.oci.manifest import ParsedManifest

__all__ = ["PendingManifest", "PendingManifests"]


@dataclass(eq=False)
class PendingManifest:
    repo: str
    record: ManifestRecord
    parsed: ParsedManifest
    missing: set[str]  # references not yet in the repository, as last known
    expires_at: float

    def sizes(self) -> dict[str, int]:
        """Digest → size of every blob it references (what its descriptors declare)."""
        return {d.digest: d.size for d in self.parsed.blobs}


@dataclass
class PendingManifests:
    """Bounded by age (``ttl_seconds``) and by the bytes held (``max_bytes``, oldest dropped
    first). Keyed by (repository, digest)."""

    ttl_seconds: float
    max_bytes: int
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[tuple[str, str], PendingManifest] = field(default_factory=OrderedDict)
    _bytes: int = 0

    def get(self, repo: str, digest: str) -> PendingManifest | None:
        self._expire()
        return self._entries.get((repo, digest))

    def add(self, repo: str, record: ManifestRecord, parsed: ParsedManifest) -> PendingManifest:
        key = (repo, record.digest)
        entry = self._entries.get(key)
        if entry is None:
            expires_at = self.clock() + self.ttl_seconds
            entry = self._entries[key] = PendingManifest(repo, record, parsed, set(), expires_at)
            self._bytes += record.size
        self._expire()
        return entry

    def of_repository(self, repo: str) -> list[PendingManifest]:
        """The repository's entries, images before indexes (children are stored first)."""
        self._expire()
        found = [e for (r, _), e in self._entries.items() if r == repo]
        return sorted(found, key=lambda e: e.parsed.is_index)

    def blob_size(self, repo: str, digest: str) -> int | None:
        """The size a pending manifest of ``repo`` declares for blob ``digest``, if any does:
        the upstream vouched (by that manifest) that the blob belongs to the repository."""
        for entry in self.of_repository(repo):
            size = entry.sizes().get(digest)
            if size is not None:
                return size
        return None

    def arrived(self, repo: str, digest: str) -> None:
        """Blob or manifest ``digest`` is in ``repo`` now."""
        for entry in self.of_repository(repo):
            entry.missing.discard(digest)

    def drop(self, entry: PendingManifest) -> None:
        """Forget ``entry`` (it is stored now)."""
        if self._entries.pop((entry.repo, entry.record.digest), None) is not None:
            self._bytes -= entry.record.size

    def _expire(self) -> None:
        now = self.clock()
        while self._entries:
            entry = next(iter(self._entries.values()))
            if entry.expires_at > now and self._bytes <= self.max_bytes:
                return
            self.drop(entry)
