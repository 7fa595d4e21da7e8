"""The small parsers under the client: challenges, Retry-After, Link, upload Range, errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.oci.auth import parse_challenges
from adapters.oci.errors import (
    Denied,
    DigestMismatch,
    NotFound,
    RateLimited,
    RequestRejected,
    ServerError,
    Unsupported,
    error_from_response,
)
from adapters.oci.limits import parse_retry_after_seconds
from adapters.oci.uploads import received_bytes
from adapters.oci.urls import next_link, normalize_base_url


def test_bearer_challenge_with_several_scopes() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"'
    )
    (challenge,) = parse_challenges([header])
    assert challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://auth.example/token"
    assert challenge.params["error"] == "insufficient_scope"
    assert challenge.scopes == ["repository:a/b:pull,push", "repository:c:pull"]


def test_several_challenges_in_one_header_and_escapes() -> None:
    challenges = parse_challenges(['Basic realm="x \\"y\\"", Bearer realm="r", service=s'])
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[0].params["realm"] == 'x "y"'
    assert challenges[1].params == {"realm": "r", "service": "s"}


def test_retry_after() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after_seconds("120") == 120
    assert parse_retry_after_seconds("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30
    assert parse_retry_after_seconds("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0
    assert parse_retry_after_seconds("soon") is None
    assert parse_retry_after_seconds(None) is None


def test_link_header() -> None:
    url = "https://r.example/v2/_catalog?n=2"
    assert next_link(['</v2/_catalog?last=b&n=2>; rel="next"'], url) == (
        "https://r.example/v2/_catalog?last=b&n=2"
    )
    assert next_link(['<https://o.example/x>; rel="prev", <y?z=1>; rel=next'], url) == (
        "https://r.example/v2/y?z=1"
    )
    assert next_link(['</v2/_catalog?last=b>; rel="prev"'], url) is None


def test_upload_range() -> None:
    assert received_bytes("0-1023") == 1024
    assert received_bytes("bytes=0-9") == 10
    assert received_bytes("0-0") == 0  # ambiguous in distribution: read as nothing held
    assert received_bytes(None) is None
    assert received_bytes("5-9") is None


def test_base_url() -> None:
    assert normalize_base_url("registry.example:5000/") == "https://registry.example:5000"
    assert normalize_base_url("http://127.0.0.1:5000/v2/") == "http://127.0.0.1:5000"


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"m"}]}', NotFound),
        (403, b"", Denied),
        (405, b"", Unsupported),
        (400, b'{"errors":[{"code":"UNSUPPORTED"}]}', Unsupported),
        (400, b'{"errors":[{"code":"DIGEST_INVALID"}]}', DigestMismatch),
        (400, b'{"errors":[{"code":"MANIFEST_INVALID"}]}', RequestRejected),
        (429, b"", RateLimited),
        (503, b"<html>busy</html>", ServerError),
        (501, b"", Unsupported),
    ],
)
def test_error_mapping(status: int, body: bytes, kind: type[Exception]) -> None:
    error = error_from_response(status, {}, body, method="GET", url="http://r/v2/")
    assert type(error) is kind
    assert error.status == status
    assert "GET http://r/v2/" in str(error)


def test_error_message_says_what_to_do() -> None:
    error = error_from_response(
        429, {}, b"", method="GET", url="http://r/v2/a/tags/list", retry_after_seconds=7.0
    )
    assert isinstance(error, RateLimited) and error.retry_after_seconds == 7.0
    assert "requests_per_second" in str(error)
