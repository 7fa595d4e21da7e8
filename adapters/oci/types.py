"""Immutable values the OCI client hands out. Sizes are in bytes, as in OCI descriptors."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from registry.oci import mediatypes as mt
from registry.oci.manifest import Descriptor

__all__ = [
    "MANIFEST_ACCEPT",
    "OCI_ARTIFACT_MANIFEST",
    "UNKNOWN_SIZE",
    "ClientStats",
    "Descriptor",
    "Manifest",
    "ManifestRef",
    "PingResult",
]

OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"  # OCI 1.1 rc, withdrawn

#: What ``get_manifest``/``head_manifest`` accept: images, indexes (OCI and Docker), artifacts.
MANIFEST_ACCEPT: tuple[str, ...] = (
    mt.OCI_MANIFEST,
    mt.OCI_INDEX,
    mt.DOCKER_MANIFEST,
    mt.DOCKER_MANIFEST_LIST,
    OCI_ARTIFACT_MANIFEST,
)


@dataclass(frozen=True, slots=True)
class ManifestRef:
    """What a ``HEAD`` on a manifest tells: enough to decide whether to copy it.

    ``size`` is :data:`UNKNOWN_SIZE` (-1) where it comes from a provider's listing that does
    not say (Google's ``tags/list`` map, ACR's ``_tags``); planning uses only the digest and
    the media type."""

    digest: str
    media_type: str
    size: int


#: ``ManifestRef.size`` of a manifest listed without its size.
UNKNOWN_SIZE = -1


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest's exact bytes (never re-serialised: the digest depends on them)."""

    data: bytes
    media_type: str
    digest: str

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def ref(self) -> ManifestRef:
        return ManifestRef(self.digest, self.media_type, len(self.data))

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class PingResult:
    """The answer to ``GET /v2/`` after the auth flow: which auth the registry asked for."""

    status: int
    api_version: str | None
    auth_scheme: str | None  # "bearer", "basic" or None (no challenge seen)
    realm: str | None = None
    service: str | None = None


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters since the client was created (a snapshot; the client keeps counting)."""

    requests: int = 0  # HTTP exchanges sent, token requests included
    retries: int = 0  # exchanges repeated after a transient failure or a 429
    rate_limited: int = 0  # 429 answers received
    rate_limit_wait_seconds: float = 0.0  # time spent waiting because of 429s
    resumes: int = 0  # blob streams and uploads continued from an offset after a failure
    bytes_sent: int = 0  # request body bytes handed to the connection
    bytes_received: int = 0  # response body bytes read
