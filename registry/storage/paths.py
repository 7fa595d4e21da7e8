"""Where things live in a storage driver. The whole layout, drawn where it is computed::

    /blobs/<algorithm>/<first two hex>/<hex>/data    verified content, published by an atomic move
    /uploads/<upload id>/data                        an upload in progress (appended to, resumable)

Repository links, manifests and tags are metadata (the database), not files: a blob is reachable
in a repository only once its link row exists, and that row is written after the move above.
"""

from __future__ import annotations

from registry.oci.digest import Digest

__all__ = ["BLOBS", "UPLOADS", "blob_data", "upload_data", "upload_dir"]

BLOBS = "/blobs"
UPLOADS = "/uploads"


def blob_data(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.encoded[:2]}/{digest.encoded}/data"


def upload_dir(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}"


def upload_data(upload_id: str) -> str:
    return f"{UPLOADS}/{upload_id}/data"
