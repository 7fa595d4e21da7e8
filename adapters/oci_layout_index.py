"""The files of an OCI image layout as values: ``index.json``, ``oci-layout``, manifest summaries.

No I/O here (see :mod:`adapters.oci_layout_store`). An image layout (OCI image-spec
``image-layout.md``) is a directory::

    oci-layout          {"imageLayoutVersion": "1.0.0"}
    index.json          an image index: one descriptor per root manifest
    blobs/<alg>/<hex>   every blob, manifests and indexes included

A descriptor in ``index.json`` with the annotation ``org.opencontainers.image.ref.name`` is a
tag (skopeo, umoci and oras write the bare tag there); one without it is an untagged root (a
referrer, a manifest pushed by digest). :class:`LayoutIndex` reads such a file without losing
anything it does not understand: fields, annotations and descriptors it cannot parse are written
back unchanged.

Every JSON document of a layout (``index.json``, ``oci-layout``, a manifest blob) is read with
:func:`load_json`: at most :data:`MAX_JSON_DEPTH` levels deep, and a document that is not JSON
or nests deeper (``[[[[…``) is a :class:`LayoutFormatError` naming the file, never a
``RecursionError``. Sizes are bounded by the reader (:mod:`adapters.oci_layout_store`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from registry.oci import mediatypes as mt
from registry.oci.digest import Digest
from registry.oci.reference import is_valid_tag

__all__ = [
    "BLOBS_DIR",
    "INDEX_FILE",
    "LAYOUT_FILE",
    "LAYOUT_FILE_BYTES",
    "MAX_JSON_DEPTH",
    "REF_NAME",
    "RESERVED_NAMES",
    "IndexEntry",
    "JsonTooDeep",
    "LayoutFormatError",
    "LayoutIndex",
    "ManifestSummary",
    "after_put",
    "check_layout_file",
    "descriptor",
    "empty_index_bytes",
    "load_json",
    "summarize",
]

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = "oci-layout"
INDEX_FILE = "index.json"
BLOBS_DIR = "blobs"
#: names a layout uses for itself: no repository path component may be one of them
RESERVED_NAMES = frozenset({BLOBS_DIR, INDEX_FILE, LAYOUT_FILE})
LAYOUT_FILE_BYTES = b'{"imageLayoutVersion":"1.0.0"}'
#: nesting levels a layout's JSON may have (an image index with platforms and annotations has
#: 4; the bound keeps parsing and everything that walks the result off Python's recursion limit)
MAX_JSON_DEPTH = 64


class LayoutFormatError(ValueError):
    """A layout file is not what the image-layout spec says it must be; the message says which
    file and why."""


class JsonTooDeep(LayoutFormatError):
    """A JSON document nests arrays or objects more than :data:`MAX_JSON_DEPTH` levels deep."""


def load_json(data: bytes, where: str) -> Any:
    """``data`` parsed. :raises LayoutFormatError: not JSON (UTF-8), or nested more than
    :data:`MAX_JSON_DEPTH` levels deep (the message names ``where``)."""
    try:
        deep = _nests_deeper(data, MAX_JSON_DEPTH)
        doc = None if deep else json.loads(data)
    except RecursionError:
        deep = True
    except (ValueError, UnicodeDecodeError) as e:
        raise LayoutFormatError(f"{where} is not valid JSON ({str(e)[:200]})") from None
    if deep:
        raise JsonTooDeep(
            f"{where} nests JSON more than {MAX_JSON_DEPTH} levels deep: it is not an OCI "
            "document (damaged, or not written by an OCI tool)"
        )
    return doc


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_LEAF_PAIRS = re.compile(rb"\[\]|\{\}")


def _nests_deeper(data: bytes, limit: int) -> bool:
    """Whether the JSON text ``data`` nests arrays or objects more than ``limit`` levels
    deep, found before it is parsed, at C speed: with the strings and everything but the
    brackets removed, each pass takes away the innermost pairs (one level everywhere)."""
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    for _ in range(limit):
        if not brackets:
            return False
        inner = _LEAF_PAIRS.sub(b"", brackets)
        if len(inner) == len(brackets):
            return False  # unbalanced: not JSON, which the parser says (or finds too deep)
        brackets = inner
    return bool(brackets)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One readable descriptor of ``index.json``. ``media_type`` is ``""`` and ``size`` -1 when
    the descriptor lacks them (others' layouts may); ``tag`` is the ref name when it is a valid
    OCI tag, ``ref_name`` whatever the annotation holds."""

    digest: str
    media_type: str
    size: int
    ref_name: str | None
    artifact_type: str | None = None

    @property
    def tag(self) -> str | None:
        name = self.ref_name
        return name if name is not None and is_valid_tag(name) else None

    @property
    def complete(self) -> bool:
        """Whether the descriptor alone answers a ``HEAD`` (media type and size given)."""
        return bool(self.media_type) and self.size >= 0


def _entry(raw: object) -> IndexEntry | None:
    if not isinstance(raw, dict):
        return None
    digest = raw.get("digest")
    if not isinstance(digest, str) or not Digest.is_valid(digest):
        return None
    media_type = raw.get("mediaType")
    size = raw.get("size")
    annotations = raw.get("annotations")
    ref = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    artifact_type = raw.get("artifactType")
    return IndexEntry(
        digest=digest,
        media_type=media_type if isinstance(media_type, str) else "",
        size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else -1,
        ref_name=ref if isinstance(ref, str) else None,
        artifact_type=artifact_type if isinstance(artifact_type, str) else None,
    )


@dataclass(frozen=True, slots=True)
class LayoutIndex:
    """``index.json`` as read: its descriptors in order (each with its parsed entry, None for
    one that cannot be read) and its other top-level fields. Updates return a new value."""

    items: tuple[tuple[Mapping[str, Any], IndexEntry | None], ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: bytes, where: str) -> LayoutIndex:
        """:raises LayoutFormatError: not JSON, nested too deeply, not an object, or
        ``manifests`` not a list."""
        doc = load_json(data, where)
        if not isinstance(doc, dict):
            raise LayoutFormatError(f"{where} is not a JSON object (an OCI image index)")
        manifests = doc.get("manifests")
        if manifests is None:  # umoci init writes "manifests": null
            manifests = []
        if not isinstance(manifests, list):
            raise LayoutFormatError(f"{where}: 'manifests' is not a list")
        fields = {k: v for k, v in doc.items() if k != "manifests"}
        return cls(tuple((m, _entry(m)) for m in manifests), fields)

    def to_bytes(self) -> bytes:
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX}
        doc.update(self.fields)
        doc["manifests"] = [raw for raw, _ in self.items]
        return json.dumps(doc, separators=(",", ":")).encode()

    def entries(self) -> list[IndexEntry]:
        return [e for _, e in self.items if e is not None]

    def tags(self) -> dict[str, IndexEntry]:
        """Tag → entry for every ref name that is a valid OCI tag (the last one wins, as in
        oras-go); ref names that are not tags (``example.com/app:1.0``) are left out."""
        out: dict[str, IndexEntry] = {}
        for entry in self.entries():
            if entry.tag is not None:
                out[entry.tag] = entry
        return out

    def find(self, digest: str) -> IndexEntry | None:
        """The first entry naming ``digest`` (tagged or not), if any."""
        return next((e for e in self.entries() if e.digest == digest), None)

    def replaced(
        self, drop: Callable[[IndexEntry], bool], add: Sequence[Mapping[str, Any]] = ()
    ) -> LayoutIndex:
        """Without the entries ``drop`` selects (unreadable descriptors are always kept), with
        ``add`` appended."""
        kept = tuple((raw, e) for raw, e in self.items if e is None or not drop(e))
        return LayoutIndex(kept + tuple((raw, _entry(raw)) for raw in add), self.fields)


def after_put(
    index: LayoutIndex,
    entry: Mapping[str, Any],
    *,
    tag: str | None,
    rooted_elsewhere: bool,
    children: Collection[str] = (),
    keep_root: Callable[[str], bool] = lambda digest: False,
) -> LayoutIndex:
    """``index`` after the manifest ``entry`` (a descriptor) was stored, by ``tag`` or by
    digest. ``index.json`` lists the layout's roots, so that tools that collect garbage from it
    (``umoci gc``) keep everything and readers find every referrer:

    - a tag is one entry (``ref.name``); putting it replaces whatever it named before;
    - a manifest put by digest gets an untagged entry unless an entry names it already or
      ``rooted_elsewhere`` (an index in the layout lists it);
    - an untagged entry of the manifest itself (now tagged) or of one of ``children`` (now
      reachable through this index) goes, unless ``keep_root(digest)`` (a referrer: found
      through index.json entries only).

    Returns ``index`` itself when nothing changes (no rewrite needed).
    """
    digest = entry["digest"]

    def drop(e: IndexEntry) -> bool:
        if tag is not None and e.ref_name == tag:
            return True
        if e.ref_name is not None:
            return False
        if tag is not None and e.digest == digest:
            return True
        return e.digest in children and e.digest != digest and not keep_root(e.digest)

    dropped = [e for e in index.entries() if drop(e)]
    if tag is None:
        if rooted_elsewhere or index.find(digest) is not None:
            return index.replaced(drop) if dropped else index
        return index.replaced(drop, [entry])
    same = _entry(entry)
    if len(dropped) == 1 and dropped[0] == same:
        return index  # the tag names this manifest already, nothing to prune
    return index.replaced(drop, [entry])


def descriptor(
    media_type: str,
    digest: str,
    size: int,
    *,
    tag: str | None = None,
    artifact_type: str | None = None,
) -> dict[str, Any]:
    """An ``index.json`` descriptor (tagged when ``tag`` is given)."""
    out: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if artifact_type:
        out["artifactType"] = artifact_type
    if tag is not None:
        out["annotations"] = {REF_NAME: tag}
    return out


def empty_index_bytes() -> bytes:
    return LayoutIndex().to_bytes()


def check_layout_file(data: bytes, where: str) -> None:
    """:raises LayoutFormatError: ``oci-layout`` is not ``{"imageLayoutVersion": "1.x.y"}``."""
    try:
        doc = load_json(data, where)
    except LayoutFormatError as e:
        raise LayoutFormatError(f"{e}: not an OCI image layout") from None
    version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
    if not isinstance(version, str):
        raise LayoutFormatError(f"{where} has no imageLayoutVersion: not an OCI image layout")
    if not version.startswith("1."):
        raise LayoutFormatError(
            f"{where}: image layout version {version[:40]!r} is not supported (1.x is)"
        )


@dataclass(frozen=True, slots=True)
class ManifestSummary:
    """What the layout needs to know of a stored manifest: its media type, what it refers to
    (``subject``), its artifact type (the referrers API's rule: ``artifactType``, else the
    config's media type), its annotations and its child manifests (an index's)."""

    media_type: str
    subject: str | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] | None = None
    children: tuple[str, ...] = ()

    @property
    def cost_bytes(self) -> int:
        """Roughly what keeping it costs (the summary cache is bounded by this)."""
        notes = sum(len(k) + len(v) for k, v in (self.annotations or {}).items())
        return 200 + notes + 100 * len(self.children)


def _digest_in(value: object) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("digest"), str):
        digest = value["digest"]
        return digest if Digest.is_valid(digest) else None
    return None


def summarize(data: bytes) -> ManifestSummary | None:
    """The summary of ``data`` if it is a manifest or an index (schema version 2, a known
    media type or the shape of one), else None (a config, a layer, anything else: also what
    is not JSON or nests too deeply). Annotations are kept only as strings (what the spec
    allows, and all the engine is given)."""
    try:
        doc = load_json(data, "a blob")
    except LayoutFormatError:
        return None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        return None
    declared = doc.get("mediaType")
    is_index = isinstance(doc.get("manifests"), list)
    is_image = isinstance(doc.get("config"), dict) and isinstance(doc.get("layers"), list)
    if isinstance(declared, str) and declared:
        media_type = declared
    elif is_index or is_image:
        media_type = mt.OCI_INDEX if is_index else mt.OCI_MANIFEST
    else:
        return None
    config_type = doc["config"].get("mediaType") if is_image else None
    artifact_type = doc.get("artifactType")
    if not isinstance(artifact_type, str):
        artifact_type = config_type if isinstance(config_type, str) else None
    annotations = doc.get("annotations")
    if isinstance(annotations, dict):
        annotations = {k: v for k, v in annotations.items() if isinstance(v, str)}
    children = [_digest_in(m) for m in doc["manifests"]] if is_index else []
    return ManifestSummary(
        media_type=media_type,
        subject=_digest_in(doc.get("subject")),
        artifact_type=artifact_type,
        annotations=annotations if isinstance(annotations, dict) else None,
        children=tuple(c for c in children if c is not None),
    )
