"""Where things live in a storage driver. The whole layout, drawn where it is computed::

    /blobs/<algorithm>/<first two hex>/<hex>/data    verified content, published by an atomic move
    /uploads/<upload id>/data                        an upload in progress (appended to, resumable)

Repository links, manifests and tags are metadata (the database), not files: a blob is reachable
in a repository only once its link row exists, and that row is written after the move above.

On an object store (S3, Azure Blob, GCS) each path is a key under ``SEAWALL_STORAGE__PREFIX``;
directories are key prefixes. ``/uploads/<id>/data`` is then the whole state of an upload, shared
by every node on the bucket: its size is the object's size, and a node that gets the next
``PATCH`` appends where the object ends — S3 by a new multipart upload whose first part is the
object (copied server-side), Azure by committing the blob's block list plus new blocks, GCS by
composing the object with a scratch object ``/uploads/<id>/data~part-<random>`` (``~`` makes it no
valid path: never listed, removed with the upload's folder). The upload id is signed with the key
the nodes share, so any node accepts it. Only the running SHA-256 stays in the node that hashed
the bytes: a node that missed a chunk drops its hash, and the node that publishes reads the
upload once (:mod:`registry.storage.blobs`) — one extra read per upload at most, never per chunk.
Publishing is a server-side copy to ``/blobs/…/data``, then a delete of the upload.
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
