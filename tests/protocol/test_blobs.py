"""Blobs (end-2 GET/HEAD, end-10 DELETE): headers, Range requests, 404s, repository isolation."""

from __future__ import annotations

import httpx
import pytest

from tests.protocol.helpers import assert_error, blob_data, push_blob, sha256

SIZE = 2048


def test_get_blob(admin: httpx.Client, repo: str) -> None:
    data = blob_data(SIZE)
    digest = push_blob(admin, repo, data)
    r = admin.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200, r.text
    assert r.content == data
    assert sha256(r.content) == digest
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(SIZE)
    assert r.headers["Content-Type"].split(";")[0] == "application/octet-stream"
    assert r.headers.get("Accept-Ranges") == "bytes"


def test_head_blob(admin: httpx.Client, repo: str) -> None:
    data = blob_data(SIZE)
    digest = push_blob(admin, repo, data)
    r = admin.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(SIZE)
    assert r.headers["Content-Type"].split(";")[0] == "application/octet-stream"
    assert r.headers.get("Accept-Ranges") == "bytes"


# (Range header, first byte, last byte) on a 2048-byte blob
RANGES = [
    ("bytes=0-0", 0, 0),
    ("bytes=500-1499", 500, 1499),
    ("bytes=500-", 500, SIZE - 1),
    ("bytes=-500", SIZE - 500, SIZE - 1),
    ("bytes=2000-5000", 2000, SIZE - 1),
    ("bytes=0-2047", 0, SIZE - 1),
]


@pytest.mark.parametrize(("header", "first", "last"), RANGES, ids=[r[0] for r in RANGES])
def test_get_blob_range(admin: httpx.Client, repo: str, header: str, first: int, last: int) -> None:
    data = blob_data(SIZE)
    digest = push_blob(admin, repo, data)
    r = admin.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 206, (r.status_code, r.headers)
    assert r.content == data[first : last + 1]
    assert r.headers["Content-Length"] == str(last - first + 1)
    assert r.headers["Content-Range"] in (f"bytes {first}-{last}/{SIZE}", f"bytes {first}-{last}/*")


@pytest.mark.parametrize("header", ["bytes=5000-10000", "bytes=2048-", "bytes=2048-2048"])
def test_get_blob_unsatisfiable_range(admin: httpx.Client, repo: str, header: str) -> None:
    data = blob_data(SIZE)
    digest = push_blob(admin, repo, data)
    r = admin.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code == 416, (r.status_code, r.headers)
    # RFC 9110 §15.5.17: a 416 to a byte range request SHOULD send Content-Range: bytes */size
    assert r.headers.get("Content-Range") == f"bytes */{SIZE}"


@pytest.mark.parametrize("header", ["bytes=500-0", "bytes=abc", "items=0-10"])
def test_get_blob_invalid_range(admin: httpx.Client, repo: str, header: str) -> None:
    """An invalid Range header is ignored (whole blob, RFC 9110 §14.2) or refused with 416."""
    data = blob_data(SIZE)
    digest = push_blob(admin, repo, data)
    r = admin.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert r.status_code in (200, 416), (r.status_code, r.text[:200])
    if r.status_code == 200:
        assert r.content == data


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_unknown_blob(admin: httpx.Client, repo: str, method: str) -> None:
    push_blob(admin, repo, blob_data(10))  # the repository exists
    r = admin.request(method, f"/v2/{repo}/blobs/{sha256(blob_data(10))}")
    assert_error(r, 404, "BLOB_UNKNOWN")


def test_unknown_blob_in_unknown_repository(admin: httpx.Client, repo: str) -> None:
    r = admin.get(f"/v2/{repo}/blobs/{sha256(blob_data(10))}")
    assert_error(r, 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")


@pytest.mark.parametrize(
    "digest",
    ["sha256:totallywrong", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "nodigest", "sha256:"],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_invalid_blob_digest(admin: httpx.Client, repo: str, method: str, digest: str) -> None:
    push_blob(admin, repo, blob_data(10))
    r = admin.request(method, f"/v2/{repo}/blobs/{digest}")
    assert_error(r, (400, 404), "DIGEST_INVALID", "BLOB_UNKNOWN")


def test_delete_blob(admin: httpx.Client, repo: str) -> None:
    data = blob_data(100)
    digest = push_blob(admin, repo, data)
    r = admin.delete(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 202, r.text
    assert_error(admin.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert_error(admin.head(f"/v2/{repo}/blobs/{digest}"), 404)
    assert_error(admin.delete(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")


def test_delete_blob_only_in_its_repository(admin: httpx.Client, repo: str, repo2: str) -> None:
    """Deleting a blob from one repository leaves the same bytes in another one."""
    data = blob_data(100)
    digest = push_blob(admin, repo, data)
    push_blob(admin, repo2, data)
    assert admin.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    r = admin.get(f"/v2/{repo2}/blobs/{digest}")
    assert r.status_code == 200
    assert r.content == data


def test_blob_not_visible_in_other_repository(admin: httpx.Client, repo: str, repo2: str) -> None:
    data = blob_data(100)
    digest = push_blob(admin, repo, data)
    push_blob(admin, repo2, blob_data(10))  # repo2 exists, but never got this blob
    for method in ("GET", "HEAD"):
        assert_error(admin.request(method, f"/v2/{repo2}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    r = admin.get(f"/v2/{repo2}/blobs/{digest}", headers={"Range": "bytes=0-9"})
    assert_error(r, 404, "BLOB_UNKNOWN")
    assert_error(admin.delete(f"/v2/{repo2}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert admin.get(f"/v2/{repo}/blobs/{digest}").content == data  # still there
