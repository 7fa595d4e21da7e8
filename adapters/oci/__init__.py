"""The OCI Distribution client (``OciClient``) and its error tree and value types.

Modules: ``client`` (the API), ``uploads``/``blobs`` (resumable blob transfer), ``session``
(limits, auth flow, retries), ``auth`` (Basic, bearer, Docker token flow), ``transport`` (the
aiohttp seam, exception mapping), ``limits``, ``errors`` (the error tree), ``types``, ``urls``,
``content`` (reading answers). A client belongs to the event loop that first uses it.
"""

from adapters.oci.blobs import BlobStream
from adapters.oci.client import OciClient
from adapters.oci.errors import (
    ConnectionFailed,
    Denied,
    DigestMismatch,
    NotFound,
    OciError,
    ProtocolError,
    RateLimited,
    RequestRejected,
    ServerError,
    TimedOut,
    TlsError,
    Transient,
    Unauthorized,
    Unsupported,
)
from adapters.oci.types import ClientStats, Descriptor, Manifest, ManifestRef, PingResult
from adapters.oci.uploads import OpenStream

__all__ = [
    "BlobStream",
    "ClientStats",
    "ConnectionFailed",
    "Denied",
    "Descriptor",
    "DigestMismatch",
    "Manifest",
    "ManifestRef",
    "NotFound",
    "OciClient",
    "OciError",
    "OpenStream",
    "PingResult",
    "ProtocolError",
    "RateLimited",
    "RequestRejected",
    "ServerError",
    "TimedOut",
    "TlsError",
    "Transient",
    "Unauthorized",
    "Unsupported",
]
