"""The Azure Blob Storage driver (azure-storage-blob): block blobs in one container.

Credentials: ``AZURE_STORAGE_CONNECTION_STRING`` (account key or SAS, or azurite's development
string); else ``AZURE_STORAGE_ACCOUNT_URL`` (or ``AZURE_STORAGE_ACCOUNT``, meaning
``https://<name>.blob.core.windows.net``) with azure-identity's ``DefaultAzureCredential``
(environment service principal, workload or managed identity, Azure CLI). The container is
created on first use if missing and allowed.

Writes: each full part (8 MiB) is a staged block (``Put Block``); ``close``/``commit`` commits
the block list (``Put Block List``), which makes the content visible. Appending — a chunked
upload's next ``PATCH``, on any node — reads the committed block list (one request) and commits
it followed by the new blocks: the existing bytes never move. A blob written whole
(``put_content``) has no block list; appending to one re-stages its bytes once (never done by the
registry, whose uploads always start from a writer). A blob holds at most 50,000 blocks.
``move`` is a server-side ``Copy Blob`` (polled until done), then a delete. Reads are ranged
downloads pinned to the ETag of the first. ``url_for`` is a read-only blob SAS, signed with the
account key, or with a user delegation key under azure-identity.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.storage.blob import (
    BlobBlock,
    BlobPrefix,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    generate_blob_sas,
)

from registry.storage.base import DriverUnavailable, PathNotFound, StorageError
from registry.storage.drivers.objects import (
    ObjectInfo,
    ObjectStore,
    ObjectStoreDriver,
    ObjectUpload,
)

if TYPE_CHECKING:
    from registry.storage.factory import DriverConfig

__all__ = ["AzureBlobDriver", "AzureBlobStore", "make_service"]

NAME = "azure"
MAX_BLOCKS = 50_000
_ID_LENGTH = 32  # every block id of a blob has one length; the SDK's own uploads use 32 too
_COPY_POLL_SECONDS = 0.05
#: one ranged download per span: azure-storage-blob 12.31 holds ~9x a download in memory at its
#: peak (measured: 72 MiB for an 8 MiB range), so spans stay small to keep readers flat
READ_SPAN_BYTES = 2 << 20
_GET_ATTEMPTS = 5


class AzureBlobStore(ObjectStore):
    """One container. ``service`` is a ``BlobServiceClient`` (thread-safe)."""

    name = NAME
    read_span_bytes = READ_SPAN_BYTES

    def __init__(self, service: BlobServiceClient, container: str) -> None:
        self.service = service
        self.container: ContainerClient = service.get_container_client(container)
        self._ready = False
        self._lock = threading.Lock()
        self._delegation: tuple[Any, datetime] | None = None

    def __repr__(self) -> str:
        return f"AzureBlobStore({self.container.container_name!r})"

    def _c(self) -> ContainerClient:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    with contextlib.suppress(ResourceExistsError):
                        self.container.create_container()
                    self._ready = True
        return self.container

    def head(self, key: str) -> ObjectInfo | None:
        try:
            p = self._c().get_blob_client(key).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return ObjectInfo(key, int(p.size), p.last_modified, str(p.etag or ""))

    def children(self, prefix: str) -> Iterator[ObjectInfo | str]:
        for item in self._c().walk_blobs(name_starts_with=prefix, delimiter="/"):
            if isinstance(item, BlobPrefix):
                yield str(item.name)
            else:
                yield ObjectInfo(item.name, int(item.size), item.last_modified)

    def objects(self, prefix: str) -> Iterator[ObjectInfo]:
        for item in self._c().list_blobs(name_starts_with=prefix):
            yield ObjectInfo(item.name, int(item.size), item.last_modified)

    def get(self, key: str) -> bytes:
        """One version, whole: one request up to 32 MiB; a larger blob downloads in ranges
        pinned to its ETag, and a replacement meanwhile (412) starts it again."""
        blob = self._c().get_blob_client(key)
        for attempt in range(_GET_ATTEMPTS):
            try:
                return bytes(blob.download_blob(max_concurrency=1).readall())
            except ResourceNotFoundError as e:
                raise PathNotFound("nothing is stored at this key", driver=NAME) from e
            except ResourceModifiedError:
                if attempt + 1 == _GET_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def read(self, key: str, offset: int, length: int, version: str) -> bytes:
        blob = self._c().get_blob_client(key)
        pin: dict[str, Any] = {}
        if version:  # ranges of one object stay on one version
            pin = {"etag": version, "match_condition": MatchConditions.IfNotModified}
        try:
            stream = blob.download_blob(offset=offset, length=length, max_concurrency=1, **pin)
            return bytes(stream.readall())
        except ResourceNotFoundError as e:
            raise PathNotFound("nothing is stored at this key", driver=NAME) from e
        except ResourceModifiedError as e:
            raise StorageError("the blob was replaced while being read", driver=NAME) from e
        except HttpResponseError as e:
            if e.status_code == 416:  # at or past the end
                return b""
            raise

    def put(self, key: str, data: bytes) -> None:
        self._c().get_blob_client(key).upload_blob(data, overwrite=True, max_concurrency=1)

    def copy(self, source: ObjectInfo, dest_key: str) -> None:
        container = self._c()
        dest = container.get_blob_client(dest_key)
        copy = dest.start_copy_from_url(container.get_blob_client(source.key).url)
        status = copy.get("copy_status")
        while status == "pending":
            time.sleep(_COPY_POLL_SECONDS)
            status = dest.get_blob_properties().copy.status
        if status != "success":
            raise StorageError(f"server-side copy ended {status!r}", driver=NAME, path=dest_key)

    def delete(self, keys: Sequence[str]) -> None:
        container = self._c()
        for key in keys:
            with contextlib.suppress(ResourceNotFoundError):
                container.delete_blob(key)

    def open_upload(self, key: str, append: bool) -> ObjectUpload:
        blob = self._c().get_blob_client(key)
        if not append:
            return AzureUpload(self, blob, 0, [], append=False)
        try:
            size = int(blob.get_blob_properties().size)
            committed, _ = blob.get_block_list("committed")
        except ResourceNotFoundError as e:
            raise PathNotFound("nothing to append to", driver=NAME) from e
        blocks = [BlobBlock(block_id=b.id) for b in committed]
        reusable = sum(int(b.size) for b in committed) == size and all(
            len(b.id) == _ID_LENGTH for b in committed
        )
        upload = AzureUpload(self, blob, size, blocks if reusable else [], append=True)
        if not reusable and size:
            upload.restage(size)
        return upload

    def presign(self, key: str, method: str, expires: timedelta) -> str | None:
        credential = self.service.credential
        expiry = datetime.now(UTC) + expires
        common: dict[str, Any] = {
            "account_name": self.service.account_name,
            "container_name": self.container.container_name,
            "blob_name": key,
            "permission": BlobSasPermissions(read=True),
            "expiry": expiry,
        }
        if getattr(credential, "account_key", None):
            sas = generate_blob_sas(account_key=credential.account_key, **common)
        elif hasattr(credential, "get_token"):
            sas = generate_blob_sas(user_delegation_key=self._delegation_key(expiry), **common)
        else:
            return None  # a SAS connection string: no key to sign another
        return f"{self.container.get_blob_client(key).url}?{sas}"

    def _delegation_key(self, needed_until: datetime) -> Any:
        """A user delegation key valid past ``needed_until`` (cached; Azure allows 7 days)."""
        cached = self._delegation
        if cached is None or cached[1] < needed_until:
            start = datetime.now(UTC) - timedelta(minutes=5)
            expiry = max(needed_until, start + timedelta(days=1))
            key = self.service.get_user_delegation_key(start, expiry)
            self._delegation = cached = (key, expiry)
        return cached[0]

    def map_error(self, error: Exception) -> StorageError | None:
        return map_azure_error(error, self.container.container_name)

    def close(self) -> None:
        self.service.close()


class AzureUpload(ObjectUpload):
    """Staged blocks, committed after the blocks already in the blob."""

    def __init__(
        self, store: AzureBlobStore, blob: Any, size: int, blocks: list[BlobBlock], *, append: bool
    ) -> None:
        self._store, self._blob, self._append = store, blob, append
        self.size_bytes = size
        self._blocks = blocks
        self._dirty = not append

    def restage(self, size: int) -> None:
        """Put a blob's existing bytes into blocks of this upload (a blob with no block list)."""
        part = self._store.part_bytes
        for start in range(0, size, part):
            self._stage(self._store.read(self._blob.blob_name, start, min(part, size - start), ""))

    def _stage(self, data: bytes) -> None:
        if len(self._blocks) >= MAX_BLOCKS:
            raise StorageError(f"a blob holds at most {MAX_BLOCKS} blocks", driver=NAME)
        block_id = uuid.uuid4().hex
        self._blob.stage_block(block_id, data, length=len(data))
        self._blocks.append(BlobBlock(block_id=block_id))
        self._dirty = True

    def write(self, data: bytes) -> None:
        self._stage(data)

    def finish(self, tail: bytes) -> None:
        if tail:
            self._stage(tail)
        if self._dirty:
            self._blob.commit_block_list(self._blocks)

    def abort(self) -> None:
        """Staged blocks that are never committed are discarded by Azure (after a week) or with
        the blob (the writer deletes it)."""


def map_azure_error(error: Exception, container: str) -> StorageError | None:
    if isinstance(error, ResourceNotFoundError):
        code = getattr(error, "error_code", "") or ""
        if "Container" in str(code):
            return StorageError(f"container {container!r} does not exist", driver=NAME)
        return PathNotFound("nothing is stored at this key", driver=NAME)
    if isinstance(error, ClientAuthenticationError):
        return StorageError(
            f"authentication failed for container {container!r}: check "
            "AZURE_STORAGE_CONNECTION_STRING (or the azure-identity credential)",
            driver=NAME,
        )
    if isinstance(error, ServiceRequestError):
        return StorageError(f"cannot reach Azure Blob Storage: {error}", driver=NAME)
    if isinstance(error, HttpResponseError):
        code = getattr(error, "error_code", None)
        return StorageError(f"{error.status_code} {code}: {error.reason}", driver=NAME)
    return None


def make_service(environ: dict[str, str] | None = None) -> BlobServiceClient:
    """A service client from the standard sources (see the module docstring)."""
    env = os.environ if environ is None else environ
    sizes: dict[str, Any] = {
        "max_single_get_size": 32 << 20,  # get_content in one request (its files are small)
        "max_chunk_get_size": READ_SPAN_BYTES,
        "connection_data_block_size": 256 << 10,
    }
    conn = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if conn:
        return BlobServiceClient.from_connection_string(conn, **sizes)
    url = env.get("AZURE_STORAGE_ACCOUNT_URL")
    if not url and env.get("AZURE_STORAGE_ACCOUNT"):
        url = f"https://{env['AZURE_STORAGE_ACCOUNT']}.blob.core.windows.net"
    if not url:
        raise DriverUnavailable(
            "no Azure credentials: set AZURE_STORAGE_CONNECTION_STRING, or "
            "AZURE_STORAGE_ACCOUNT_URL (or AZURE_STORAGE_ACCOUNT) with an azure-identity "
            "credential",
            driver=NAME,
        )
    try:
        from azure.identity import DefaultAzureCredential
    except ModuleNotFoundError as e:
        raise DriverUnavailable(
            "an account URL needs azure-identity: pip install azure-identity", driver=NAME
        ) from e
    return BlobServiceClient(url, credential=DefaultAzureCredential(), **sizes)


class AzureBlobDriver(ObjectStoreDriver):
    """``SEAWALL_STORAGE__DRIVER=azure``."""

    name = NAME

    @classmethod
    def from_config(cls, config: DriverConfig) -> AzureBlobDriver:
        if not config.container:
            raise DriverUnavailable(
                "the azure driver needs a container: set SEAWALL_STORAGE__CONTAINER", driver=NAME
            )
        return cls(AzureBlobStore(make_service(), config.container), config.prefix)
