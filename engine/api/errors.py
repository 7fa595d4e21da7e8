"""The management API's errors, as one table, and the one place exceptions become responses.

Handlers raise :class:`ApiError` (or let a known foreign exception through); :func:`to_response`
writes Harbor's error body::

    {"errors": [{"code": "NOT_FOUND", "message": "registry 7 does not exist"}]}

Error tree::

    ApiError                  a code of ERRORS (HTTP status) and a message saying what to do
    BodyTooLarge              -> 413 (request body over the API's limit)
    ClientDisconnected        -> 400 (body cut short), 408 (body stalled); connection closed
    LoginThrottled            -> 429 TOO_MANY_REQUESTS with Retry-After
    sqlalchemy IntegrityError -> 409 CONFLICT (a concurrent write won a unique name)
    SecretError               -> 412 PRECONDITION (a stored secret cannot be decrypted)
    anything else             -> 500, logged with its traceback
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from engine.state.secrets import SecretError
from registry.auth.logins import LoginThrottled
from registry.http.asgi import BodyTooLarge, ClientDisconnected, Response, json_response

__all__ = ["ERRORS", "ApiError", "bad_request", "not_found", "to_response"]

log = logging.getLogger("seawall.api")

# Harbor's codes (src/lib/errors/const.go) and their statuses.
ERRORS: dict[str, int] = {
    "BAD_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "REQUEST_TIMEOUT": 408,
    "CONFLICT": 409,
    "PRECONDITION": 412,
    "PAYLOAD_TOO_LARGE": 413,
    "UNPROCESSABLE_ENTITY": 422,
    "TOO_MANY_REQUESTS": 429,
    "INTERNAL_SERVER_ERROR": 500,
}


class ApiError(Exception):
    """An answer other than success: ``code`` is a key of :data:`ERRORS`."""

    def __init__(self, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        if code not in ERRORS:
            raise ValueError(f"unknown API error code {code!r}")
        super().__init__(message)
        self.code, self.message = code, message
        self.status = ERRORS[code]
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError("BAD_REQUEST", message)


def not_found(message: str) -> ApiError:
    return ApiError("NOT_FOUND", message)


def to_response(exc: BaseException, where: str) -> Response:
    """The response for ``exc``, raised while serving ``where`` (method and path, for the log)."""
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, BodyTooLarge):
        error = ApiError(
            "PAYLOAD_TOO_LARGE", f"the request body is larger than {exc.limit_bytes} bytes"
        )
    elif isinstance(exc, ClientDisconnected):
        error = (
            ApiError("REQUEST_TIMEOUT", "the request body stopped arriving; send it again")
            if exc.stalled
            else ApiError("BAD_REQUEST", "the request body ended before it was whole")
        )
        error.headers["Connection"] = "close"
    elif isinstance(exc, LoginThrottled):
        error = ApiError(
            "TOO_MANY_REQUESTS", str(exc), {"Retry-After": str(exc.retry_after_seconds)}
        )
    elif isinstance(exc, IntegrityError):
        log.info("integrity error on %s: %s", where, exc.orig)
        error = ApiError(
            "CONFLICT", "the change conflicts with existing data (a name already in use?)"
        )
    elif isinstance(exc, SecretError):
        error = ApiError("PRECONDITION", str(exc))
    else:
        log.error("unhandled error on %s", where, exc_info=exc)
        error = ApiError("INTERNAL_SERVER_ERROR", "internal error; the server log has details")
    body = {"errors": [{"code": error.code, "message": error.message}]}
    return json_response(body, status=error.status, headers=error.headers)
