"""Tag origins and tombstones as another Seawall reports them (see :mod:`registry.oci.origin`):
in its tag-list and catalog extensions, and in the headers of a manifest ``HEAD`` by tag.

Registries that are not Seawalls report neither: every value here is then empty, and the
engine plans as it always did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeGuard, runtime_checkable

from adapters.oci.types import ManifestRef
from registry.oci.origin import ORIGIN_HEADER, TOMBSTONE_HEADER, Origin, OriginError, Tombstone

__all__ = [
    "OriginClient",
    "TagHead",
    "TagStates",
    "carries_origins",
    "origins_of",
    "tombstones_of",
]


@dataclass(frozen=True, slots=True)
class TagStates:
    """One repository's tag origins (``{tag: origin}``, for tags whose origin is recorded) and
    tombstones (``{tag: tombstone}``, tags deleted there within its retention)."""

    origins: Mapping[str, Origin] = field(default_factory=dict)
    tombstones: Mapping[str, Tombstone] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TagHead:
    """A ``HEAD`` of one tag: the manifest it names (None: no such tag), the tag's origin, or
    the tombstone it left when deleted."""

    ref: ManifestRef | None
    origin: Origin | None = None
    tombstone: Tombstone | None = None

    @classmethod
    def from_headers(cls, ref: ManifestRef | None, headers: Mapping[str, str]) -> TagHead:
        """Malformed headers are left out (the tag is then planned as on any registry)."""
        origin = tombstone = None
        try:
            if ref is not None and (raw := headers.get(ORIGIN_HEADER)):
                origin = Origin.parse_header(raw)
            if ref is None and (raw := headers.get(TOMBSTONE_HEADER)):
                tombstone = Tombstone.parse_header(raw)
        except OriginError:
            pass
        return cls(ref, origin, tombstone)


def origins_of(manifests: object) -> dict[str, Origin]:
    """``{tag: origin}`` from a Seawall tag list's ``manifests`` (entries without a readable
    ``origin`` are left out)."""
    if not isinstance(manifests, dict):
        return {}
    out: dict[str, Origin] = {}
    for tag, entry in manifests.items():
        if isinstance(entry, dict) and (origin := Origin.from_json(entry.get("origin"))):
            out[str(tag)] = origin
    return out


def tombstones_of(found: object) -> dict[str, Tombstone]:
    """``{tag: tombstone}`` from a Seawall tag list's ``tombstones`` (malformed ones left out)."""
    if not isinstance(found, dict):
        return {}
    out: dict[str, Tombstone] = {}
    for tag, entry in found.items():
        if (tombstone := Tombstone.from_json(entry)) is not None:
            out[str(tag)] = tombstone
    return out


@runtime_checkable
class OriginClient(Protocol):
    """A client whose registry reports tag origins and keeps the ones its writes carry (an
    :class:`~adapters.oci.client.OciClient` of a Seawall)."""

    carries_origins: bool

    async def head_tag(self, repo: str, tag: str) -> TagHead: ...

    async def put_manifest(
        self,
        repo: str,
        reference: str,
        data: bytes,
        media_type: str,
        *,
        origin: Origin | None = None,
    ) -> str: ...

    async def delete_tag(self, repo: str, tag: str, *, origin: Origin | None = None) -> None: ...

    async def delete_manifest(
        self, repo: str, digest: str, *, origin: Origin | None = None
    ) -> None: ...


def carries_origins(client: object) -> TypeGuard[OriginClient]:
    """Whether ``client`` is a Seawall's: its listings say origins, its writes keep them."""
    return isinstance(client, OriginClient) and client.carries_origins is True
