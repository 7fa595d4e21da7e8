"""The OCI Distribution error codes, as one registered table, and the one exception type.

Handlers raise :class:`RegistryError`; exactly one place (``registry.http.errors``) turns it into
the spec's JSON body::

    {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry", "detail": ...}]}

Error tree::

    RegistryError                 an OCI error code with its HTTP status (4xx/5xx)
      .code: ErrorCode            one row of ERRORS below
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ERRORS", "ErrorCode", "RegistryError"]


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    message: str
    status: int


def _table(*rows: tuple[str, str, int]) -> dict[str, ErrorCode]:
    return {code: ErrorCode(code, message, status) for code, message, status in rows}


ERRORS: dict[str, ErrorCode] = _table(
    # OCI Distribution Spec v1.1, "Error Codes"
    ("BLOB_UNKNOWN", "blob unknown to registry", 404),
    ("BLOB_UPLOAD_INVALID", "blob upload invalid", 400),
    ("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry", 404),
    ("DIGEST_INVALID", "provided digest did not match uploaded content", 400),
    ("MANIFEST_BLOB_UNKNOWN", "manifest references a manifest or blob unknown to registry", 400),
    ("MANIFEST_INVALID", "manifest invalid", 400),
    ("MANIFEST_UNKNOWN", "manifest unknown to registry", 404),
    ("NAME_INVALID", "invalid repository name", 400),
    ("NAME_UNKNOWN", "repository name not known to registry", 404),
    ("SIZE_INVALID", "provided length did not match content length", 400),
    ("UNAUTHORIZED", "authentication required", 401),
    ("DENIED", "requested access to the resource is denied", 403),
    ("UNSUPPORTED", "the operation is unsupported", 405),
    ("TOOMANYREQUESTS", "too many requests", 429),
    # Docker Registry v2 extras that clients understand
    ("TAG_INVALID", "manifest tag did not match URI", 400),
    ("PAGINATION_NUMBER_INVALID", "invalid number of results requested", 400),
    ("RANGE_INVALID", "invalid content range", 416),
    ("UNAVAILABLE", "service unavailable", 503),
    ("UNKNOWN", "unknown error", 500),
)


class RegistryError(Exception):
    """An error the registry API answers with: a row of :data:`ERRORS` plus detail.

    ``status`` overrides the table's status where the spec allows several (e.g. 404 vs 400 for a
    malformed digest in a URL). ``headers`` are added to the response (e.g. ``Range`` on 416).
    """

    def __init__(
        self,
        code: str,
        detail: Any = None,
        *,
        message: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = ERRORS[code]
        self.message = message or self.code.message
        self.detail = detail
        self.status = status or self.code.status
        self.headers = headers or {}
        super().__init__(f"{code}: {self.message}" + (f" ({detail})" if detail else ""))

    def body(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return {"errors": [entry]}
