"""The errors the OCI client raises: nothing from aiohttp or asyncio ever leaves the client.

Error tree::

    OciError                    anything that went wrong talking to a registry
    ├── NotFound                404: MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN, ...
    ├── Unauthorized            401 left after the auth flow ran: credentials missing or wrong
    ├── Denied                  403: the credentials are valid but lack the permission
    ├── Unsupported             405, or code UNSUPPORTED: the registry does not offer this
    ├── DigestMismatch          bytes do not hash to the digest they were named by
    ├── TlsError                certificate or handshake failure (retrying will not help)
    ├── ProtocolError           the answer breaks the spec (no Location, bad Range, ...)
    ├── RequestRejected         any other 4xx (MANIFEST_INVALID, SIZE_INVALID, ...)
    └── Transient               may succeed if tried again later
        ├── RateLimited         429, with ``retry_after_seconds`` when the registry said
        ├── ServerError         5xx
        ├── ConnectionFailed    refused, reset, closed early, DNS
        └── TimedOut            no connection or no bytes within the configured timeout

Every error carries ``status``, ``code`` (the OCI error code when the body had one),
``message``, ``method`` and ``url``. Responses become errors in :func:`error_from_response`
only; aiohttp's exceptions become errors in ``transport.map_exceptions`` only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

__all__ = [
    "ConnectionFailed",
    "Denied",
    "DigestMismatch",
    "NotFound",
    "OciError",
    "ProtocolError",
    "RateLimited",
    "RequestRejected",
    "ServerError",
    "TimedOut",
    "TlsError",
    "Transient",
    "Unauthorized",
    "Unsupported",
    "error_from_response",
]


class OciError(Exception):
    """A registry operation failed. ``hint`` says what to do next."""

    hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        method: str | None = None,
        url: str | None = None,
        detail: Any = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        self.message = message
        self.retry_after_seconds = retry_after_seconds  # from Retry-After (429, 503), if sent
        self.status = status
        self.code = code
        self.method = method
        self.url = url
        self.detail = detail
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.method} {self.url}: " if self.method and self.url else ""
        what = " ".join(str(p) for p in (self.status, self.code) if p)
        text = f"{where}{what + ': ' if what else ''}{self.message}"
        if self.detail:
            text += f" ({self.detail})"
        return f"{text}; {self.hint}" if self.hint else text


class NotFound(OciError):
    hint = "check the repository name, tag or digest"


class Unauthorized(OciError):
    hint = "check the username, password or token configured for this registry"


class Denied(OciError):
    hint = "the account needs permission for this repository and action"


class Unsupported(OciError):
    hint = "this registry does not offer the operation; use a fallback"


class DigestMismatch(OciError):
    hint = "the content was corrupted in transit or the registry rewrote it; retry or investigate"


class TlsError(OciError):
    hint = "set ca_file to the registry's CA bundle, or insecure=True for a test registry"


class ProtocolError(OciError):
    hint = "the registry answered outside the OCI Distribution spec"


class RequestRejected(OciError):
    hint = "the registry refused the request as invalid"


class Transient(OciError):
    """Worth retrying later; the client already retried ``retries`` times."""


class RateLimited(Transient):
    hint = "the registry is throttling: lower requests_per_second or max_in_flight, or wait"


class ServerError(Transient):
    hint = "the registry failed; retry later"


class ConnectionFailed(Transient):
    hint = "check that the registry is reachable from here"


class TimedOut(Transient):
    hint = "the registry is slow or unreachable; raise the timeouts or retry later"


_BY_STATUS: dict[int, type[OciError]] = {
    401: Unauthorized,
    403: Denied,
    404: NotFound,
    405: Unsupported,
    429: RateLimited,
}
_BY_CODE: dict[str, type[OciError]] = {
    "UNSUPPORTED": Unsupported,
    "DIGEST_INVALID": DigestMismatch,
    "DENIED": Denied,
    "UNAUTHORIZED": Unauthorized,
    "TOOMANYREQUESTS": RateLimited,
}


def parse_error_body(body: bytes) -> tuple[str | None, str | None, Any]:
    """``(code, message, detail)`` of the first entry of an OCI error body, if it is one."""
    try:
        doc = json.loads(body)
        first = doc["errors"][0]
        code = str(first.get("code")) if first.get("code") else None
        message = str(first["message"]) if first.get("message") else None
        return code, message, first.get("detail")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, None, None


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    url: str,
    retry_after_seconds: float | None = None,
) -> OciError:
    """The one mapping from an unexpected HTTP answer to our tree."""
    code, message, detail = parse_error_body(body)
    if message is None:
        text = body[:200].decode("utf-8", "replace").strip()
        message = text or f"unexpected HTTP status {status}"
    kind: type[OciError]
    if status == 429:
        kind = RateLimited
    elif code in _BY_CODE and (status >= 400 and status not in (404, 500)):
        kind = _BY_CODE[code]
    elif status in _BY_STATUS:
        kind = _BY_STATUS[status]
    elif status == 501:
        kind = Unsupported  # "Not Implemented" will not change on a retry
    elif status >= 500:
        kind = ServerError
    elif 400 <= status < 500:
        kind = RequestRejected
    else:
        kind = ProtocolError
    return kind(
        message,
        status=status,
        code=code,
        method=method,
        url=url,
        detail=detail,
        retry_after_seconds=retry_after_seconds,
    )
