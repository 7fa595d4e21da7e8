"""Test content: random blobs, byte sources for ``upload_blob``, image manifests."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from adapters.oci import OciClient
from registry.oci import mediatypes as mt

MiB = 1024 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Source:
    """An ``open_stream`` over bytes in memory that records every offset it was opened at."""

    data: bytes
    piece_bytes: int = 256 * 1024
    opened_at: list[int] = field(default_factory=list)

    @property
    def digest(self) -> str:
        return sha256(self.data)

    def __call__(self, offset: int) -> AsyncIterator[bytes]:
        self.opened_at.append(offset)
        return self._pieces(offset)

    async def _pieces(self, offset: int) -> AsyncIterator[bytes]:
        for start in range(offset, len(self.data), self.piece_bytes):
            yield self.data[start : start + self.piece_bytes]


def random_source(size_bytes: int, piece_bytes: int = 256 * 1024) -> Source:
    return Source(os.urandom(size_bytes), piece_bytes)


async def push_blob(client: OciClient, repo: str, data: bytes) -> str:
    source = Source(data)
    await client.upload_blob(repo, source.digest, len(data), source)
    return source.digest


async def push_image(
    client: OciClient, repo: str, tag: str, layer: bytes, *, subject: str | None = None
) -> tuple[str, bytes]:
    """Push a config, one layer and an OCI image manifest; ``(digest, manifest bytes)``."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": {"mediaType": mt.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": sha256(layer),
                "size": len(layer),
            }
        ],
    }
    if subject is not None:
        subject_size = await client.head_manifest(repo, subject)
        assert subject_size is not None
        doc["artifactType"] = "application/vnd.example.sbom"
        doc["subject"] = {
            "mediaType": mt.OCI_MANIFEST,
            "digest": subject,
            "size": subject_size.size,
        }
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    data = json.dumps(doc).encode()
    digest = await client.put_manifest(repo, tag, data, mt.OCI_MANIFEST)
    return digest, data
