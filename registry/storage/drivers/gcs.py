"""The Google Cloud Storage driver (google-cloud-storage): objects in one bucket.

Credentials are google-auth's (``GOOGLE_APPLICATION_CREDENTIALS``, workload identity, the metadata
server, ``gcloud`` application-default credentials); the project from ``GOOGLE_CLOUD_PROJECT``.
``STORAGE_EMULATOR_HOST`` is honoured as google-cloud-storage does (anonymous credentials). The
bucket is created on first use if missing and allowed.

Writes: a writer that ends with less than a part (8 MiB) is one upload; a longer one streams
through a resumable upload session, a part at a time. Appending — a chunked upload's next
``PATCH``, on any node — writes the new bytes to a scratch object beside the target
(``<key>~part-<random>``, never a valid storage path) and composes ``[target, scratch]`` into the
target server-side: the existing bytes never move through the node. GCS allows 1,024 components
per composite object, so an upload can be appended to about a thousand times. ``move`` rewrites
the object into place (server-side, resumed by token), then deletes the source. Reads are ranged
downloads pinned to the generation of the first. ``url_for`` is a V4 signed URL where the
credentials can sign (a service-account key), else None.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import google.auth.exceptions
import requests.exceptions
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials, Signing
from google.cloud import storage

from registry.storage.base import DriverUnavailable, PathNotFound, StorageError
from registry.storage.drivers.objects import (
    ObjectInfo,
    ObjectStore,
    ObjectStoreDriver,
    ObjectUpload,
)

if TYPE_CHECKING:
    from registry.storage.factory import DriverConfig

__all__ = ["GcsDriver", "GcsStore", "make_client"]

NAME = "gcs"
_SCRATCH = "~part-"


class GcsStore(ObjectStore):
    """One bucket. ``client`` is a ``google.cloud.storage.Client``."""

    name = NAME

    def __init__(self, client: storage.Client, bucket: str, *, owns_client: bool = True) -> None:
        self.client = client
        self.bucket = client.bucket(bucket)
        self._owns_client = owns_client
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"GcsStore({self.bucket.name!r})"

    def _b(self) -> storage.Bucket:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    try:
                        self.client.get_bucket(self.bucket.name)
                    except gexc.NotFound:
                        with contextlib.suppress(gexc.Conflict):
                            self.client.create_bucket(self.bucket.name)
                    self._ready = True
        return self.bucket

    def head(self, key: str) -> ObjectInfo | None:
        blob = self._b().get_blob(key)
        if blob is None:
            return None
        return ObjectInfo(key, int(blob.size or 0), blob.updated, str(blob.generation or ""))

    def children(self, prefix: str) -> Iterator[ObjectInfo | str]:
        listing = self.client.list_blobs(self._b(), prefix=prefix, delimiter="/")
        for page in listing.pages:
            for blob in page:
                yield ObjectInfo(blob.name, int(blob.size or 0), blob.updated)
            yield from page.prefixes

    def objects(self, prefix: str) -> Iterator[ObjectInfo]:
        for blob in self.client.list_blobs(self._b(), prefix=prefix):
            yield ObjectInfo(blob.name, int(blob.size or 0), blob.updated)

    def get(self, key: str) -> bytes:
        try:
            return bytes(self._b().blob(key).download_as_bytes(checksum=None))
        except gexc.NotFound as e:
            raise PathNotFound("nothing is stored at this key", driver=NAME) from e

    def read(self, key: str, offset: int, length: int, version: str) -> bytes:
        blob = self._b().blob(key, generation=int(version) if version else None)
        try:
            data = blob.download_as_bytes(start=offset, end=offset + length - 1, checksum=None)
        except gexc.NotFound as e:
            raise PathNotFound("nothing is stored at this key (or it was replaced)") from e
        except gexc.RequestRangeNotSatisfiable:
            return b""
        return bytes(data)

    def put(self, key: str, data: bytes) -> None:
        self._b().blob(key).upload_from_string(data, content_type="application/octet-stream")

    def copy(self, source: ObjectInfo, dest_key: str) -> None:
        bucket = self._b()
        src = bucket.blob(source.key)
        dest = bucket.blob(dest_key)
        token, _, _ = dest.rewrite(src)
        while token is not None:
            token, _, _ = dest.rewrite(src, token=token)

    def delete(self, keys: Sequence[str]) -> None:
        bucket = self._b()
        for key in keys:
            with contextlib.suppress(gexc.NotFound):
                bucket.delete_blob(key)

    def open_upload(self, key: str, append: bool) -> ObjectUpload:
        base = self.head(key) if append else None
        if append and base is None:
            raise PathNotFound("nothing to append to", driver=NAME)
        return GcsUpload(self, key, base, append=append)

    def presign(self, key: str, method: str, expires: timedelta) -> str | None:
        credentials = getattr(self.client, "_credentials", None)
        if not isinstance(credentials, Signing):
            return None  # anonymous (the emulator) or a token without a signer
        return str(
            self._b().blob(key).generate_signed_url(version="v4", expiration=expires, method=method)
        )

    def map_error(self, error: Exception) -> StorageError | None:
        return map_gcs_error(error, self.bucket.name)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


class GcsUpload(ObjectUpload):
    """One upload, or a resumable session; appends go to a scratch object, then compose."""

    def __init__(self, store: GcsStore, key: str, base: ObjectInfo | None, *, append: bool) -> None:
        self._store, self._key, self._base, self._append = store, key, base, append
        self.size_bytes = base.size_bytes if base is not None else 0
        bucket = store._b()
        composing = base is not None and base.size_bytes > 0
        self._target = f"{key}{_SCRATCH}{uuid.uuid4().hex[:12]}" if composing else key
        self._blob = bucket.blob(self._target)
        self._session: Any = None

    def write(self, data: bytes) -> None:
        if self._session is None:
            self._session = self._blob.open(
                "wb", chunk_size=self._store.part_bytes, ignore_flush=True
            )
        self._session.write(data)

    def finish(self, tail: bytes) -> None:
        if self._session is not None:
            self._session.write(tail)
            self._session.close()
            self._session = None
        elif self._append and not tail:
            return  # nothing new: what is stored stays
        else:
            self._blob.upload_from_string(tail, content_type="application/octet-stream")
        if self._target != self._key:
            try:
                self._compose()
            finally:
                self._store.delete([self._target])

    def _compose(self) -> None:
        assert self._base is not None
        bucket = self._store._b()
        base = bucket.blob(self._key, generation=int(self._base.version or 0) or None)
        bucket.blob(self._key).compose([base, self._blob])

    def abort(self) -> None:
        self._session = None  # an unfinished resumable session expires on its own
        if self._target != self._key:
            self._store.delete([self._target])


def map_gcs_error(error: Exception, bucket: str) -> StorageError | None:
    if isinstance(error, gexc.NotFound):
        return PathNotFound("nothing is stored at this key", driver=NAME)
    if isinstance(error, gexc.Forbidden | gexc.Unauthorized):
        return StorageError(
            f"access to bucket {bucket!r} refused: check the google-auth credentials "
            f"(GOOGLE_APPLICATION_CREDENTIALS) and the bucket's IAM ({error.message})",
            driver=NAME,
        )
    if isinstance(error, gexc.GoogleAPICallError):
        return StorageError(f"{error.code} {error.message}", driver=NAME)
    if isinstance(error, google.auth.exceptions.GoogleAuthError):
        return StorageError(f"google-auth: {error}", driver=NAME)
    if isinstance(error, requests.exceptions.ConnectionError):
        return StorageError(f"cannot reach Google Cloud Storage: {error}", driver=NAME)
    return None


def make_client(environ: dict[str, str] | None = None) -> storage.Client:
    """A client from google-auth's standard sources (or the emulator's host)."""
    env = os.environ if environ is None else environ
    project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT")
    emulator = env.get("STORAGE_EMULATOR_HOST")
    if emulator:  # as google-cloud-storage does: anonymous, every request to the emulator
        return storage.Client(
            project=project or "seawall",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": emulator},
        )
    try:
        return storage.Client(project=project)
    except google.auth.exceptions.DefaultCredentialsError as e:
        raise DriverUnavailable(
            f"no Google credentials: {e}; set GOOGLE_APPLICATION_CREDENTIALS (or run "
            "`gcloud auth application-default login`), or STORAGE_EMULATOR_HOST",
            driver=NAME,
        ) from e


class GcsDriver(ObjectStoreDriver):
    """``SEAWALL_STORAGE__DRIVER=gcs``."""

    name = NAME

    @classmethod
    def from_config(cls, config: DriverConfig) -> GcsDriver:
        if not config.bucket:
            raise DriverUnavailable(
                "the gcs driver needs a bucket: set SEAWALL_STORAGE__BUCKET", driver=NAME
            )
        return cls(GcsStore(make_client(), config.bucket), config.prefix)
