"""The S3 driver (boto3): AWS S3 and any S3-compatible endpoint (MinIO, Ceph RGW, moto, …).

Configuration is boto3's own: region, credentials and endpoint from its standard chain
(``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ACCESS_KEY_ID``…, profiles, instance roles,
``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``); path- or virtual-host-style addressing from the
shared config file (``[default] s3 = addressing_style = path``), else boto3's ``auto``. The bucket
is created on first use if it is missing and the credentials allow it.

Writes: a writer buffers one part (8 MiB); a writer that ends with less than a part in total
does one ``PutObject``, otherwise a multipart upload (``UploadPart`` per part, ``Complete`` at
close). Appending (a chunked upload's next ``PATCH``, on any node) starts a new multipart upload
whose first part is the existing object — copied server-side with ``UploadPartCopy`` when it is at
least 5 MiB, else read back (under 5 MiB) and sent with the new bytes, as S3 requires every part but
the last to be 5 MiB or more. ``move`` is ``CopyObject`` (a multipart copy above 5 GiB), then a
delete. A read is one ``GetObject`` for everything it reads (ranged unless it is the whole
object; no ``HeadObject`` first), streamed in 1 MiB chunks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from registry.storage.base import DriverUnavailable, InvalidOffset, PathNotFound, StorageError
from registry.storage.drivers.objects import (
    CHUNK_BYTES,
    ObjectInfo,
    ObjectStore,
    ObjectStoreDriver,
    ObjectUpload,
)

if TYPE_CHECKING:
    from registry.storage.factory import DriverConfig

__all__ = ["S3Driver", "S3Store"]

NAME = "s3"
MIN_PART_BYTES = 5 << 20  # S3's least size of a multipart part (but the last)
MAX_COPY_BYTES = 5 << 30  # largest single CopyObject / UploadPartCopy
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Store(ObjectStore):
    """One bucket. ``client`` is a boto3 S3 client (thread-safe, shared by worker threads)."""

    name = NAME

    def __init__(
        self, client: Any, bucket: str, *, part_bytes: int = 8 << 20, owns_client: bool = True
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"part_bytes must be at least {MIN_PART_BYTES} (S3's minimum)")
        self.client, self.bucket, self.part_bytes = client, bucket, part_bytes
        self._owns_client = owns_client
        self._ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Store({self.bucket!r})"

    def _c(self) -> Any:
        """The client, once the bucket is known to exist (created if missing and allowed)."""
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self._ensure_bucket()
                    self._ready = True
        return self.client

    def _ensure_bucket(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except botocore.exceptions.ClientError as e:
            if _code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        region = self.client.meta.region_name
        extra = {}
        if region and region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **extra)
        except botocore.exceptions.ClientError as e:
            if _code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def head(self, key: str) -> ObjectInfo | None:
        try:
            r = self._c().head_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as e:
            if _code(e) in _NOT_FOUND:
                return None
            raise
        return ObjectInfo(key, int(r["ContentLength"]), r["LastModified"], r.get("ETag", ""))

    def _pages(self, prefix: str, delimiter: str) -> Iterator[dict[str, Any]]:
        paginator = self._c().get_paginator("list_objects_v2")
        kwargs = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        yield from paginator.paginate(**kwargs)

    def children(self, prefix: str) -> Iterator[ObjectInfo | str]:
        for page in self._pages(prefix, "/"):
            for item in page.get("Contents", ()):
                yield ObjectInfo(item["Key"], int(item["Size"]), item["LastModified"])
            for common in page.get("CommonPrefixes", ()):
                yield common["Prefix"]

    def objects(self, prefix: str) -> Iterator[ObjectInfo]:
        for page in self._pages(prefix, ""):
            for item in page.get("Contents", ()):
                yield ObjectInfo(item["Key"], int(item["Size"]), item["LastModified"])

    def get(self, key: str) -> bytes:
        try:
            r = self._c().get_object(Bucket=self.bucket, Key=key)
        except botocore.exceptions.ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise PathNotFound("nothing is stored at this key", driver=NAME) from e
            raise
        with r["Body"] as body:
            return bytes(body.read())

    def _ranged(self, key: str, offset: int, length: int, version: str) -> Any:
        """The body of a ranged GET pinned to ``version``, or None past the end."""
        extra = {"IfMatch": version} if version else {}
        try:
            r = self._c().get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={offset}-{offset + length - 1}", **extra
            )
        except botocore.exceptions.ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise PathNotFound("nothing is stored at this key", driver=NAME) from e
            if _code(e) == "InvalidRange":
                return None
            if _code(e) in ("PreconditionFailed", "412"):
                raise StorageError("the object was replaced while being read", driver=NAME) from e
            raise
        return r["Body"]

    def read(self, key: str, offset: int, length: int, version: str) -> bytes:
        body = self._ranged(key, offset, length, version)
        if body is None:
            return b""
        with body:
            return bytes(body.read())

    def open_stream(self, key: str, offset: int, length: int | None) -> Iterator[bytes]:
        """One GET (ranged unless it reads the whole object), no HEAD first: a blob pull costs
        one request. Per-span GETs would cost one each (and an emulator may read the whole
        object for each)."""
        extra = {}
        if offset or length is not None:
            last = "" if length is None else str(offset + length - 1)
            extra["Range"] = f"bytes={offset}-{last}"
        try:
            body = self._c().get_object(Bucket=self.bucket, Key=key, **extra)["Body"]
        except botocore.exceptions.ClientError as e:
            if _code(e) in _NOT_FOUND:
                raise PathNotFound("nothing is stored at this key", driver=NAME) from e
            if _code(e) != "InvalidRange":
                raise
            return self._past_end(key, offset)

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(CHUNK_BYTES)

        return chunks()

    def _past_end(self, key: str, offset: int) -> Iterator[bytes]:
        """After a 416: nothing when ``offset`` is the end (or the object is empty)."""
        info = self.head(key)
        if info is None:
            raise PathNotFound("nothing is stored at this key", driver=NAME)
        if offset > info.size_bytes:
            raise InvalidOffset(f"offset {offset} is past the end ({info.size_bytes} bytes)")
        return iter(())

    def put(self, key: str, data: bytes) -> None:
        self._c().put_object(Bucket=self.bucket, Key=key, Body=data)

    def copy(self, source: ObjectInfo, dest_key: str) -> None:
        src = {"Bucket": self.bucket, "Key": source.key}
        if source.size_bytes <= MAX_COPY_BYTES:
            self._c().copy_object(Bucket=self.bucket, Key=dest_key, CopySource=src)
        else:  # multipart copy, server-side
            config = TransferConfig(multipart_chunksize=1 << 30, max_concurrency=4)
            self._c().copy(src, self.bucket, dest_key, Config=config)

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            r = self._c().delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            errors = [e for e in r.get("Errors", ()) if e.get("Code") not in _NOT_FOUND]
            if errors:
                first = errors[0]
                raise StorageError(
                    f"deleting {len(errors)} object(s) failed: {first.get('Code')}: "
                    f"{first.get('Message')}",
                    driver=NAME,
                    path=first.get("Key", ""),
                )

    def open_upload(self, key: str, append: bool) -> ObjectUpload:
        existing = 0
        if append:
            info = self.head(key)
            if info is None:
                raise PathNotFound("nothing to append to", driver=NAME)
            existing = info.size_bytes
        return S3Upload(self, key, existing, append)

    def presign(self, key: str, method: str, expires: timedelta) -> str | None:
        operation = "get_object" if method == "GET" else "head_object"
        return str(
            self.client.generate_presigned_url(
                operation,
                Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=max(int(expires.total_seconds()), 1),
            )
        )

    def map_error(self, error: Exception) -> StorageError | None:
        return map_s3_error(error, self.bucket)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


class S3Upload(ObjectUpload):
    """A writer's session: PutObject if it stays small, else a multipart upload."""

    def __init__(self, store: S3Store, key: str, existing_bytes: int, append: bool) -> None:
        self._store, self._key, self._append = store, key, append
        self.size_bytes = existing_bytes
        self._begun = False
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._carry = b""  # an existing object under 5 MiB, sent with the first new part

    def _begin(self) -> None:
        """On the first new bytes: take the existing object in (a copied part, or carried)."""
        if self._begun:
            return
        self._begun = True
        if self.size_bytes >= MIN_PART_BYTES:
            self._start()
            self._copy_existing(self.size_bytes)
        elif self.size_bytes:
            self._carry = self._store.read(self._key, 0, self.size_bytes, "")

    def _start(self) -> None:
        client = self._store._c()
        r = client.create_multipart_upload(Bucket=self._store.bucket, Key=self._key)
        self._upload_id = r["UploadId"]

    def _copy_existing(self, size: int) -> None:
        client, bucket = self._store._c(), self._store.bucket
        for start in range(0, size, MAX_COPY_BYTES):
            end = min(start + MAX_COPY_BYTES, size) - 1
            r = client.upload_part_copy(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=len(self._parts) + 1,
                CopySource={"Bucket": bucket, "Key": self._key},
                CopySourceRange=f"bytes={start}-{end}",
            )
            self._parts.append(
                {"PartNumber": len(self._parts) + 1, "ETag": r["CopyPartResult"]["ETag"]}
            )

    def _send(self, data: bytes) -> None:
        if self._upload_id is None:
            self._start()
        number = len(self._parts) + 1
        r = self._store._c().upload_part(
            Bucket=self._store.bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=data,
        )
        self._parts.append({"PartNumber": number, "ETag": r["ETag"]})

    def write(self, data: bytes) -> None:
        self._begin()
        data, self._carry = self._carry + data, b""
        self._send(data)

    def finish(self, tail: bytes) -> None:
        if self._append and not self._begun and not tail:
            return  # nothing new: what is stored stays, no copy
        self._begin()
        tail, self._carry = self._carry + tail, b""
        if self._upload_id is None:
            self._store.put(self._key, tail)
            return
        if tail:
            self._send(tail)
        self._store._c().complete_multipart_upload(
            Bucket=self._store.bucket,
            Key=self._key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": self._parts},
        )
        self._upload_id = None

    def abort(self) -> None:
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._store._c().abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._key, UploadId=upload_id
            )


def _code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def map_s3_error(error: Exception, bucket: str) -> StorageError | None:
    """botocore's exceptions → the storage tree, with what to check."""
    if isinstance(error, botocore.exceptions.ClientError):
        code, message = _code(error), error.response.get("Error", {}).get("Message", "")
        if code in _NOT_FOUND:
            return PathNotFound("nothing is stored at this key", driver=NAME)
        if code == "NoSuchBucket":
            return StorageError(f"bucket {bucket!r} does not exist", driver=NAME)
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
            return StorageError(
                f"{code} on bucket {bucket!r}: check the AWS credentials and the bucket policy",
                driver=NAME,
            )
        return StorageError(f"{code}: {message or error}", driver=NAME)
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return StorageError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile "
            "or an instance role",
            driver=NAME,
        )
    if isinstance(error, botocore.exceptions.EndpointConnectionError | ConnectionError):
        return StorageError(
            f"cannot reach the S3 endpoint: {error}; check AWS_ENDPOINT_URL_S3", driver=NAME
        )
    if isinstance(error, botocore.exceptions.BotoCoreError):
        return StorageError(f"{type(error).__name__}: {error}", driver=NAME)
    return None


class S3Driver(ObjectStoreDriver):
    """``SEAWALL_STORAGE__DRIVER=s3``."""

    name = NAME

    @classmethod
    def from_config(cls, config: DriverConfig) -> S3Driver:
        if not config.bucket:
            raise DriverUnavailable(
                "the s3 driver needs a bucket: set SEAWALL_STORAGE__BUCKET", driver=NAME
            )
        return cls(S3Store(make_client(), config.bucket), config.prefix)


def make_client(**kwargs: Any) -> Any:
    """An S3 client from boto3's standard configuration (``kwargs`` override it)."""
    config = Config(retries={"mode": "standard"}, max_pool_connections=32)
    return boto3.session.Session().client("s3", config=config, **kwargs)
