"""Blob uploads (end-4a/4b POST, end-5 PATCH, end-6 PUT, end-11 mount, end-13 status, cancel):
monolithic, POST+PUT, chunked, streamed, resumable across a restart, and every error path."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.protocol.helpers import (
    EMPTY_DIGEST,
    assert_error,
    blob_data,
    push_blob,
    sha256,
    with_params,
)
from tests.support.client import client
from tests.support.server import SeawallProcess

OCTET = {"Content-Type": "application/octet-stream"}


def start(c: httpx.Client, repo: str) -> httpx.Response:
    """POST an upload session (Content-Length: 0, as the spec asks for a chunked upload)."""
    r = c.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status_code == 202, (r.status_code, r.text)
    return r


def patch(c: httpx.Client, location: str, chunk: bytes, offset: int) -> httpx.Response:
    return c.patch(
        location,
        content=chunk,
        headers={**OCTET, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
    )


def assert_pullable(c: httpx.Client, repo: str, r: httpx.Response, data: bytes) -> None:
    """``r`` is the 201 of a finished upload of ``data``: Location pulls the bytes back."""
    digest = sha256(data)
    assert r.status_code == 201, (r.status_code, r.text)
    assert r.headers["Docker-Content-Digest"] == digest
    location = r.headers["Location"]
    assert location, "201 without Location"
    got = c.get(location)
    assert got.status_code == 200, (location, got.status_code)
    assert got.content == data
    got = c.get(f"/v2/{repo}/blobs/{digest}")
    assert got.status_code == 200 and got.content == data


def assert_invisible(c: httpx.Client, repo: str, *digests: str) -> None:
    for digest in digests:
        assert_error(c.head(f"/v2/{repo}/blobs/{digest}"), 404)
        assert_error(c.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")


# --------------------------------------------------------------------------- monolithic


SMALL = 1 << 20  # bodies up to this size are held in memory; larger or unsized ones stream


@pytest.mark.parametrize("size", [1000, SMALL, SMALL + 1, 3 * SMALL + 17])
def test_monolithic_single_post(admin: httpx.Client, repo: str, size: int) -> None:
    data = blob_data(size)
    r = admin.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data, headers=OCTET
    )
    assert_pullable(admin, repo, r, data)
    assert r.headers["Location"].endswith(f"/v2/{repo}/blobs/{sha256(data)}")


@pytest.mark.seawall_only
def test_a_refused_upload_keeps_the_connection(anon: httpx.Client, repo: str) -> None:
    """A body the answer did not need (an upload refused for want of a token) is read to its
    end before the answer, so the connection stays open for the client's next request (its
    retry with a token): answered before the body was read, the connection had to close, and
    a client reusing it meanwhile lost that request ("server disconnected", 1 in ~40)."""
    data = blob_data(SMALL + 1)
    for _ in range(8):
        r = anon.post(
            f"/v2/{repo}/blobs/uploads/",
            params={"digest": sha256(data)},
            content=data,
            headers=OCTET,
        )
        assert r.status_code == 401, r.text
        assert r.headers.get("connection", "").lower() != "close", r.headers


def _pieces(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    """A body httpx sends with chunked transfer encoding (no Content-Length); a list, not a
    generator, so that it can be sent again after an auth challenge."""
    return [data[start : start + size] for start in range(0, len(data), size)]


def test_monolithic_single_post_without_length(admin: httpx.Client, repo: str) -> None:
    """A body sent with chunked transfer encoding (no Content-Length) streams to storage."""
    data = blob_data(200_000)
    r = admin.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": sha256(data)},
        content=_pieces(data),
        headers=OCTET,
    )
    assert "content-length" not in r.request.headers
    assert_pullable(admin, repo, r, data)


def test_post_response_headers(admin: httpx.Client, repo: str) -> None:
    r = start(admin, repo)
    location = r.headers["Location"]
    uuid = r.headers.get("Docker-Upload-UUID")
    assert uuid, "202 without Docker-Upload-UUID"
    assert uuid in location, (uuid, location)  # the location holds the session id
    assert f"/v2/{repo}/blobs/uploads/" in location
    if "Range" in r.headers:  # Docker's "0-0" for an empty session
        assert r.headers["Range"] == "0-0"
    if "OCI-Chunk-Min-Length" in r.headers:
        assert int(r.headers["OCI-Chunk-Min-Length"]) > 0


def test_two_sessions_are_distinct(admin: httpx.Client, repo: str) -> None:
    a, b = start(admin, repo), start(admin, repo)
    assert a.headers["Location"] != b.headers["Location"]


def test_post_then_put(admin: httpx.Client, repo: str) -> None:
    data = blob_data(1000)
    loc = start(admin, repo).headers["Location"]
    r = admin.put(with_params(loc, digest=sha256(data)), content=data, headers=OCTET)
    assert_pullable(admin, repo, r, data)


# --------------------------------------------------------------------------- chunked


def test_chunked_upload(admin: httpx.Client, repo: str) -> None:
    data = blob_data(3000)
    loc = start(admin, repo).headers["Location"]
    for offset in (0, 1000, 2000):
        r = patch(admin, loc, data[offset : offset + 1000], offset)
        assert r.status_code == 202, (r.status_code, r.text)
        assert r.headers["Range"] == f"0-{offset + 999}"
        loc = r.headers["Location"]
        assert loc
    r = admin.put(with_params(loc, digest=sha256(data)), headers={"Content-Length": "0"})
    assert_pullable(admin, repo, r, data)


def test_chunked_upload_last_chunk_in_put(admin: httpx.Client, repo: str) -> None:
    data = blob_data(2000)
    loc = start(admin, repo).headers["Location"]
    r = patch(admin, loc, data[:1500], 0)
    assert r.status_code == 202
    r = admin.put(
        with_params(r.headers["Location"], digest=sha256(data)),
        content=data[1500:],
        headers={**OCTET, "Content-Range": "1500-1999"},
    )
    assert_pullable(admin, repo, r, data)


def test_upload_status(admin: httpx.Client, repo: str) -> None:
    data = blob_data(700)
    loc = start(admin, repo).headers["Location"]
    r = patch(admin, loc, data, 0)
    assert r.status_code == 202
    r = admin.get(r.headers["Location"])
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.content == b""
    assert r.headers["Range"] == "0-699"
    assert r.headers["Location"]
    # status does not disturb the session
    r = admin.put(with_params(r.headers["Location"], digest=sha256(data)))
    assert_pullable(admin, repo, r, data)


# (name, chunk start, chunk length) sent after a first chunk 0-999 of a 3000-byte blob
OUT_OF_ORDER = [
    ("skip-ahead", 2000, 1000),
    ("repeat-first", 0, 1000),
    ("overlap", 500, 1000),
    ("gap-of-one", 1001, 999),
]


@pytest.mark.parametrize(
    ("case", "offset", "length"), OUT_OF_ORDER, ids=[c[0] for c in OUT_OF_ORDER]
)
def test_out_of_order_chunk(
    admin: httpx.Client, repo: str, case: str, offset: int, length: int
) -> None:
    data = blob_data(3000)
    loc = start(admin, repo).headers["Location"]
    r = patch(admin, loc, data[:1000], 0)
    assert r.status_code == 202
    loc = r.headers["Location"]
    r = patch(admin, loc, data[offset : offset + length], offset)
    assert r.status_code == 416, (r.status_code, r.text)
    if "Range" in r.headers:
        assert r.headers["Range"] == "0-999"
    # recover as the spec says: GET the status, continue at its offset
    r = admin.get(loc)
    assert r.status_code == 204
    assert r.headers["Range"] == "0-999"
    r = patch(admin, r.headers["Location"], data[1000:], 1000)
    assert r.status_code == 202, (r.status_code, r.text)
    r = admin.put(with_params(r.headers["Location"], digest=sha256(data)))
    assert_pullable(admin, repo, r, data)


def test_first_chunk_must_start_at_zero(admin: httpx.Client, repo: str) -> None:
    data = blob_data(100)
    loc = start(admin, repo).headers["Location"]
    r = patch(admin, loc, data, 10)
    assert r.status_code == 416, (r.status_code, r.text)


def test_out_of_order_final_chunk_in_put(admin: httpx.Client, repo: str) -> None:
    data = blob_data(2000)
    loc = start(admin, repo).headers["Location"]
    loc = patch(admin, loc, data[:1000], 0).headers["Location"]
    r = admin.put(
        with_params(loc, digest=sha256(data)),
        content=data[1500:],
        headers={**OCTET, "Content-Range": "1500-1999"},
    )
    assert r.status_code == 416, (r.status_code, r.text)
    assert_invisible(admin, repo, sha256(data))


def test_content_range_disagrees_with_length(admin: httpx.Client, repo: str) -> None:
    data = blob_data(100)
    loc = start(admin, repo).headers["Location"]
    r = admin.patch(loc, content=data, headers={**OCTET, "Content-Range": "0-199"})
    assert r.status_code in (400, 416), (r.status_code, r.text)
    r = admin.get(loc)  # nothing of it was taken
    assert r.status_code == 204
    assert r.headers["Range"] in ("0-0", "0--1")


# --------------------------------------------------------------------------- streamed


def test_streamed_patch(basic: httpx.Client, repo: str) -> None:
    """Docker's streamed upload: PATCH bodies without Content-Range or Content-Length (chunked
    transfer encoding), then PUT ?digest= with no body."""
    parts = [blob_data(10_000) for _ in range(5)]
    data = b"".join(parts)

    def gen(chunks: list[bytes]) -> Iterator[bytes]:
        yield from chunks

    loc = start(basic, repo).headers["Location"]
    r = basic.patch(loc, content=gen(parts[:3]), headers=OCTET)
    assert r.status_code == 202, (r.status_code, r.text)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.headers["Range"] == f"0-{30_000 - 1}"
    r = basic.patch(r.headers["Location"], content=gen(parts[3:]), headers=OCTET)
    assert r.status_code == 202, (r.status_code, r.text)
    assert r.headers["Range"] == f"0-{len(data) - 1}"
    r = basic.put(with_params(r.headers["Location"], digest=sha256(data)))
    assert_pullable(basic, repo, r, data)


# --------------------------------------------------------------------------- cancel / unknown


def test_cancel_upload(admin: httpx.Client, repo: str) -> None:
    data = blob_data(100)
    loc = start(admin, repo).headers["Location"]
    loc = patch(admin, loc, data, 0).headers["Location"]
    r = admin.delete(loc)
    assert r.status_code == 204, (r.status_code, r.text)
    assert_error(admin.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch(admin, loc, data, 100), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(admin.put(with_params(loc, digest=sha256(data))), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(admin.delete(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_invisible(admin, repo, sha256(data))


def test_finished_session_is_gone(admin: httpx.Client, repo: str) -> None:
    data = blob_data(100)
    loc = start(admin, repo).headers["Location"]
    r = admin.put(with_params(loc, digest=sha256(data)), content=data, headers=OCTET)
    assert r.status_code == 201
    assert_error(admin.get(loc), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(patch(admin, loc, data, 0), 404, "BLOB_UPLOAD_UNKNOWN")


UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_unknown_upload_id(admin: httpx.Client, repo: str, method: str) -> None:
    push_blob(admin, repo, blob_data(10))  # the repository exists
    data = blob_data(10)
    url = with_params(f"/v2/{repo}/blobs/uploads/{UNKNOWN_ID}", digest=sha256(data))
    r = admin.request(method, url, content=data if method in ("PATCH", "PUT") else None)
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
def test_upload_id_of_another_repository(
    admin: httpx.Client, repo: str, repo2: str, method: str
) -> None:
    """A session belongs to the repository it was opened in."""
    data = blob_data(10)
    push_blob(admin, repo2, blob_data(10))
    loc = start(admin, repo).headers["Location"]
    upload_id = loc.rstrip("/").split("/")[-1].split("?")[0]
    url = with_params(f"/v2/{repo2}/blobs/uploads/{upload_id}", digest=sha256(data))
    r = admin.request(method, url, content=data if method in ("PATCH", "PUT") else None)
    assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN")
    assert admin.get(loc).status_code == 204  # still alive in its own repository
    assert_invisible(admin, repo2, sha256(data))


# --------------------------------------------------------------------------- digests


def _finish_monolithic(c: httpx.Client, repo: str, data: bytes, digest: str) -> httpx.Response:
    return c.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=OCTET
    )


def _finish_post_put(c: httpx.Client, repo: str, data: bytes, digest: str) -> httpx.Response:
    loc = start(c, repo).headers["Location"]
    return c.put(with_params(loc, digest=digest), content=data, headers=OCTET)


def _finish_chunked(c: httpx.Client, repo: str, data: bytes, digest: str) -> httpx.Response:
    loc = start(c, repo).headers["Location"]
    loc = patch(c, loc, data, 0).headers["Location"]
    return c.put(with_params(loc, digest=digest))


def _finish_monolithic_large(
    c: httpx.Client, repo: str, data: bytes, digest: str
) -> httpx.Response:
    return _finish_monolithic(c, repo, data + blob_data(SMALL), digest)


def _finish_monolithic_unsized(
    c: httpx.Client, repo: str, data: bytes, digest: str
) -> httpx.Response:
    return c.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=_pieces(data, 100)
    )


FINISHERS = {
    "single-post": _finish_monolithic,
    "single-post-large": _finish_monolithic_large,
    "single-post-unsized": _finish_monolithic_unsized,
    "post-put": _finish_post_put,
    "chunked": _finish_chunked,
}


@pytest.mark.parametrize("flow", FINISHERS)
def test_digest_mismatch(admin: httpx.Client, repo: str, flow: str) -> None:
    data, other = blob_data(500), blob_data(500)
    r = FINISHERS[flow](admin, repo, data, sha256(other))
    assert_error(r, 400, "DIGEST_INVALID")
    assert_invisible(admin, repo, sha256(data), sha256(other))


BAD_DIGESTS = [
    "sha256:totallywrong",
    "sha256:" + "a" * 63,
    "sha256:" + "g" * 64,
    "sha256:" + "A" * 64,
    "notadigest",
    "sha256:",
    ":" + "a" * 64,
]


@pytest.mark.parametrize("bad", BAD_DIGESTS)
@pytest.mark.parametrize("flow", ["single-post", "post-put"])
def test_invalid_digest_parameter(admin: httpx.Client, repo: str, flow: str, bad: str) -> None:
    data = blob_data(100)
    r = FINISHERS[flow](admin, repo, data, bad)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_invisible(admin, repo, sha256(data))


def test_put_without_digest(admin: httpx.Client, repo: str) -> None:
    data = blob_data(100)
    loc = start(admin, repo).headers["Location"]
    r = admin.put(loc, content=data, headers=OCTET)
    assert_error(r, 400, "DIGEST_INVALID", "BLOB_UPLOAD_INVALID")
    assert_invisible(admin, repo, sha256(data))


def test_zero_length_blob_post_put(admin: httpx.Client, repo: str) -> None:
    loc = start(admin, repo).headers["Location"]
    r = admin.put(with_params(loc, digest=EMPTY_DIGEST), headers={**OCTET, "Content-Length": "0"})
    assert_pullable(admin, repo, r, b"")
    r = admin.head(f"/v2/{repo}/blobs/{EMPTY_DIGEST}")
    assert r.status_code == 200
    assert r.headers["Content-Length"] == "0"


def test_zero_length_blob_single_post(admin: httpx.Client, repo: str) -> None:
    r = _finish_monolithic(admin, repo, b"", EMPTY_DIGEST)
    assert_pullable(admin, repo, r, b"")


# --------------------------------------------------------------------------- mounts


def test_mount_from_repository(admin: httpx.Client, repo: str, repo2: str) -> None:
    data = blob_data(400)
    digest = push_blob(admin, repo2, data)
    r = admin.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": repo2})
    assert r.status_code == 201, (r.status_code, r.text)
    assert r.headers["Location"].endswith(f"/v2/{repo}/blobs/{digest}")
    assert r.headers["Docker-Content-Digest"] == digest
    assert admin.get(r.headers["Location"]).content == data
    # the mount is a link of its own: deleting the source's leaves it
    assert admin.delete(f"/v2/{repo2}/blobs/{digest}").status_code == 202
    assert admin.get(f"/v2/{repo}/blobs/{digest}").content == data


def test_mount_without_from(admin: httpx.Client, repo: str, repo2: str) -> None:
    """The spec lets ``from`` be optional; Seawall mounts any blob the registry knows."""
    data = blob_data(400)
    digest = push_blob(admin, repo2, data)
    r = admin.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest})
    assert r.status_code == 201, (r.status_code, r.text)
    assert admin.get(f"/v2/{repo}/blobs/{digest}").content == data


@pytest.mark.parametrize("source", ["lacks-blob", "unknown-repo"])
def test_mount_fallback_to_upload(admin: httpx.Client, repo: str, repo2: str, source: str) -> None:
    """A mount that cannot be done opens a normal upload session (202), which then works."""
    data = blob_data(400)
    if source == "lacks-blob":
        push_blob(admin, repo2, blob_data(10))
    r = admin.post(f"/v2/{repo}/blobs/uploads/", params={"mount": sha256(data), "from": repo2})
    assert r.status_code == 202, (r.status_code, r.text)
    assert_invisible(admin, repo, sha256(data))
    r = admin.put(
        with_params(r.headers["Location"], digest=sha256(data)), content=data, headers=OCTET
    )
    assert_pullable(admin, repo, r, data)


def test_mount_invalid_digest(admin: httpx.Client, repo: str, repo2: str) -> None:
    push_blob(admin, repo2, blob_data(10))
    r = admin.post(f"/v2/{repo}/blobs/uploads/", params={"mount": "sha256:nope", "from": repo2})
    assert r.status_code in (202, 400), (r.status_code, r.text)
    if r.status_code == 400:
        assert_error(r, 400, "DIGEST_INVALID")


# --------------------------------------------------------------------------- restart


@pytest.mark.seawall_only
def test_upload_resumes_after_restart(fresh_seawall: SeawallProcess) -> None:
    """An upload survives a graceful stop and then a kill -9: after each restart the status
    shows the offset reached, the next chunk goes on from there, and the blob comes out whole."""
    data = blob_data(300_000)
    cuts = [0, 100_000, 200_000, len(data)]
    repo = "proto/resume"
    fresh_seawall.start()
    with client(fresh_seawall.url, "admin", fresh_seawall.admin_password) as c:
        loc = start(c, repo).headers["Location"]
    for i, restart in enumerate((None, fresh_seawall.stop, fresh_seawall.kill)):
        if restart is not None:
            restart()
            fresh_seawall.start()
        with client(fresh_seawall.url, "admin", fresh_seawall.admin_password) as c:
            r = c.get(loc)
            assert r.status_code == 204, (restart, r.status_code, r.text)
            assert r.headers["Range"] == f"0-{max(cuts[i] - 1, 0)}", restart
            r = patch(c, r.headers["Location"], data[cuts[i] : cuts[i + 1]], cuts[i])
            assert r.status_code == 202, (restart, r.status_code, r.text)
            assert r.headers["Range"] == f"0-{cuts[i + 1] - 1}"
            loc = r.headers["Location"]
    with client(fresh_seawall.url, "admin", fresh_seawall.admin_password) as c:
        r = c.put(with_params(loc, digest=sha256(data)))
        assert_pullable(c, repo, r, data)
