"""Reading registry answers: JSON bodies, media types, digests, descriptors."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from adapters.oci.errors import ProtocolError
from registry.oci import mediatypes as mt
from registry.oci.manifest import Descriptor

__all__ = ["descriptor", "digest_of", "json_object", "media_type_of", "sniff_media_type"]


def json_object(body: bytes, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ProtocolError("expected a JSON object", url=url)
    return doc


def media_type_of(content_type: str | None) -> str | None:
    if not content_type:
        return None
    value = content_type.split(";")[0].strip().lower()
    return None if value in ("", "application/json", "text/plain") else value


def sniff_media_type(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        if isinstance(doc.get("mediaType"), str):
            return str(doc["mediaType"])
        if "manifests" in doc:
            return mt.OCI_INDEX
    return mt.OCI_MANIFEST


def digest_of(data: bytes, like: str | None) -> str:
    algorithm = like.split(":")[0] if like and like.startswith("sha512:") else "sha256"
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def descriptor(doc: Any) -> Descriptor:
    if not isinstance(doc, dict):
        raise ProtocolError("referrers index entry is not an object")
    size = doc.get("size", 0)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ProtocolError(f"referrers index entry has no valid size: {str(size)[:100]!r}")
    return Descriptor(
        media_type=str(doc.get("mediaType", "")),
        digest=str(doc.get("digest", "")),
        size=size,
        artifact_type=doc.get("artifactType"),
        annotations=doc.get("annotations"),
        platform=doc.get("platform"),
    )
