"""How the manifests of one image layout relate: the blobs and children a manifest needs
before it may be stored, which manifests are referrers (a ``subject``), and which are reachable
through an index listed in ``index.json``. Blocking (reads blobs): worker-thread side.
"""

from __future__ import annotations

from adapters.oci.errors import RequestRejected
from adapters.oci.types import Descriptor
from adapters.oci_layout_index import IndexEntry, LayoutIndex
from adapters.oci_layout_store import Layout
from registry.oci import mediatypes as mt
from registry.oci.digest import Digest
from registry.oci.manifest import ParsedManifest

__all__ = ["check_references", "is_referrer", "listed_by_an_index", "referrer"]


def check_references(layout: Layout, parsed: ParsedManifest) -> None:
    """:raises RequestRejected: (``MANIFEST_BLOB_UNKNOWN``) a blob or child manifest the
    manifest references is not in the layout (foreign layers with ``urls`` need not be)."""
    for desc in (*parsed.blobs, *parsed.children):
        if layout.blob_size(Digest.parse(desc.digest)) is None:
            kind = "child manifest" if desc in parsed.children else "blob"
            raise RequestRejected(
                f"the manifest references {kind} {desc.digest}, which is not in {layout.where}: "
                "push it first",
                code="MANIFEST_BLOB_UNKNOWN",
            )


def is_referrer(layout: Layout, digest: str) -> bool:
    """Whether the layout's manifest ``digest`` has a ``subject``."""
    summary = layout.summary(Digest.parse(digest))
    return summary is not None and summary.subject is not None


def referrer(layout: Layout, entry: IndexEntry, subject: str) -> Descriptor | None:
    """The referrers-API descriptor of ``entry`` if its manifest refers to ``subject``: its
    artifact type (``artifactType``, else the config's media type) and annotations."""
    digest = Digest.parse(entry.digest)
    summary = layout.summary(digest)
    if summary is None or summary.subject != subject:
        return None
    size = entry.size if entry.size >= 0 else layout.blob_size(digest) or 0
    annotations = dict(summary.annotations) if summary.annotations else None
    return Descriptor(
        entry.media_type or summary.media_type,
        entry.digest,
        size,
        summary.artifact_type,
        annotations,
    )


def listed_by_an_index(layout: Layout, index: LayoutIndex, digest: str) -> bool:
    """Whether an index that ``index.json`` lists has ``digest`` among its children."""
    for e in index.entries():
        if e.media_type and e.media_type not in mt.INDEX_TYPES:
            continue
        summary = layout.summary(Digest.parse(e.digest))
        if summary is not None and digest in summary.children:
            return True
    return False
