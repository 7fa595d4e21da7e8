"""Parsing and validating manifests as pushed, without ever changing their bytes.

:func:`parse_manifest` checks the JSON against its media type and returns what the registry needs
to know: which blobs and child manifests it references (they must exist before it may be stored),
its ``subject`` (referrers API) and its artifact type.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from registry.oci import mediatypes as mt
from registry.oci.digest import Digest, DigestError
from registry.oci.errors import RegistryError
from registry.oci.numbers import INT64_MAX, is_int64_size

__all__ = ["MAX_JSON_DEPTH", "Descriptor", "ParsedManifest", "parse_manifest"]

#: How deeply a manifest's JSON may nest. A real manifest nests five levels (manifest → layers →
#: descriptor → platform → os.features); anything near this limit is an attack on parsers.
MAX_JSON_DEPTH = 32


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES


def _invalid(reason: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", {"reason": reason})


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise _invalid(f"{where} is not a descriptor object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType is missing")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest is missing")
    try:
        Digest.parse(digest)
    except DigestError as e:
        raise _invalid(f"{where}.digest: {e}") from None
    if not is_int64_size(size):
        raise _invalid(f"{where}.size must be an integer from 0 to {INT64_MAX}")
    annotations = _annotations(raw.get("annotations"), f"{where}.annotations")
    artifact_type = raw.get("artifactType")
    platform = raw.get("platform")
    return Descriptor(
        media_type,
        digest,
        size,
        artifact_type if isinstance(artifact_type, str) else None,
        annotations or None,
        platform if isinstance(platform, dict) else None,
    )


def _annotations(raw: Any, where: str) -> dict[str, str]:
    """The OCI rule: annotations are a map of strings to strings (absent: empty)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
        raise _invalid(f"{where} must be an object of string values")
    return raw


def _depth_exceeds(doc: Any, limit: int) -> bool:
    """Whether ``doc`` nests objects and arrays more than ``limit`` levels (iterative: never
    recurses, stops at the first container past the limit)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _load(data: bytes) -> dict[str, Any]:
    """The manifest's JSON object; ``MANIFEST_INVALID`` for malformed or too deeply nested JSON."""
    too_deep = f"nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        doc = json.loads(data)
    except RecursionError:
        raise _invalid(f"not a manifest: its JSON is {too_deep}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _invalid("a manifest must be a JSON object")
    if _depth_exceeds(doc, MAX_JSON_DEPTH):
        raise _invalid(f"not a manifest: its JSON is {too_deep}")
    return doc


def _content_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def parse_manifest(data: bytes, content_type: str | None) -> ParsedManifest:
    """Validate ``data`` as a manifest of ``content_type``; raise ``MANIFEST_INVALID`` if not."""
    doc = _load(data)
    header = _content_type(content_type)
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise _invalid("mediaType must be a string")
    if header and header not in mt.MANIFEST_TYPES and header != "application/json":
        raise _invalid(
            f"unsupported manifest media type {header!r}; expected one of "
            + ", ".join(sorted(mt.MANIFEST_TYPES))
        )
    if header in mt.MANIFEST_TYPES and body_type and body_type != header:
        raise _invalid(
            f"Content-Type {header!r} does not match the manifest's mediaType {body_type!r}"
        )
    media_type = header if header in mt.MANIFEST_TYPES else (body_type or "")
    if not media_type:
        # An OCI manifest may omit mediaType; tell image from index by shape.
        media_type = mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST
    if media_type not in mt.MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")

    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    annotations = _annotations(doc.get("annotations"), "annotations")
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")

    if media_type in mt.INDEX_TYPES:
        manifests = doc.get("manifests")
        if not isinstance(manifests, list):
            raise _invalid("an index needs a manifests array")
        children = tuple(_descriptor(m, f"manifests[{i}]") for i, m in enumerate(manifests))
        return ParsedManifest(media_type, (), children, subject, artifact_type, annotations)

    config = _descriptor(doc.get("config"), "config")
    layers_raw = doc.get("layers")
    if not isinstance(layers_raw, list):
        raise _invalid("an image manifest needs a layers array")
    layers = tuple(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers_raw))
    # Foreign (non-distributable) layers live elsewhere (their ``urls``); they need not exist here.
    stored = tuple(
        layer
        for layer, raw in zip(layers, layers_raw, strict=True)
        if not (
            raw.get("urls")
            and ("foreign" in layer.media_type or "nondistributable" in layer.media_type)
        )
    )
    return ParsedManifest(
        media_type,
        (config, *stored),
        (),
        subject,
        artifact_type or config.media_type,  # the referrers API's rule for image manifests
        annotations,
    )
