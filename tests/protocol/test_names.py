"""Repository names: the spec's grammar. Invalid names (sent byte for byte, so dot segments and
percent-encodings reach the server as a client would send them) are refused with 400
NAME_INVALID or 404 and create nothing; valid nested names, including ones whose components look
like API path segments, work through every endpoint."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.protocol.helpers import (
    OCI_MANIFEST,
    Target,
    all_pages,
    assert_error,
    blob_data,
    image,
    push_image,
    raw_request,
    sha256,
    with_params,
)

# Each builds an invalid name around a token t (lowercase hex) so that anything created from it
# can be found in the catalog afterwards.
INVALID_NAMES = {
    "uppercase": lambda t: f"UPPER{t}/case",
    "dot-dot-segment": lambda t: f"{t}/../{t}b",
    "empty-component": lambda t: f"{t}//b",
    "leading-dash": lambda t: f"-{t}",
    "trailing-dash": lambda t: f"{t}/b-",
    "leading-underscore": lambda t: f"{t}/_b",
    "dot-dash": lambda t: f"{t}.-b",
    "double-dot": lambda t: f"{t}..b",
    "only-dot-dot": lambda t: "..",
    "trailing-dot-dot": lambda t: f"{t}/..",
    "encoded-traversal": lambda t: f"{t}%2F..%2F{t}b",
    "encoded-slash": lambda t: f"{t}%2Fb",
    "non-ascii": lambda t: f"{t}/caf%C3%A9",
    "space": lambda t: f"{t}/a%20b",
    "too-long-256": lambda t: t + "a" * (256 - len(t)),
    "too-long-nested": lambda t: f"{t}/" + "/".join(["a" * 50] * 6),
}

DATA = b"name-test-blob"
MANIFEST = image(DATA, [DATA])


def _ops(name: str) -> dict[str, tuple[str, str, bytes, dict[str, str]]]:
    return {
        "tags-list": ("GET", f"/v2/{name}/tags/list", b"", {}),
        "get-manifest": ("GET", f"/v2/{name}/manifests/latest", b"", {}),
        "push-blob": (
            "POST",
            f"/v2/{name}/blobs/uploads/?digest={sha256(DATA)}",
            DATA,
            {"Content-Type": "application/octet-stream"},
        ),
        "start-upload": ("POST", f"/v2/{name}/blobs/uploads/", b"", {}),
        "put-manifest": (
            "PUT",
            f"/v2/{name}/manifests/latest",
            MANIFEST,
            {"Content-Type": OCI_MANIFEST},
        ),
        "referrers": ("GET", f"/v2/{name}/referrers/{sha256(DATA)}", b"", {}),
    }


OPS = list(_ops("x"))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("case", list(INVALID_NAMES))
def test_invalid_name(target: Target, basic: httpx.Client, case: str, op: str) -> None:
    token = uuid.uuid4().hex[:12]
    name = INVALID_NAMES[case](token)
    method, path, body, headers = _ops(name)[op]
    r = raw_request(target.url, method, path, {**target.basic_header(), **headers}, body)
    assert r.status in (400, 404), f"{method} {path}: {r.status} {r.body[:300]!r}"
    assert r.headers.get("content-type", "").split(";")[0] == "application/json", r
    codes = r.codes()
    if r.status == 400:
        assert "NAME_INVALID" in codes, codes
    created = [r for r in all_pages(basic, "/v2/_catalog", "repositories") if token in r]
    assert not created, f"{method} {path} created {created}"


VALID_NAMES = [
    "a/b/c/d",
    "x/manifests/y",
    "x/blobs/uploads",
    "x/blobs/y",
    "x/tags/list",
    "x/referrers/y",
    "a.b/c_d/e__f/g-h/i---j",
    "0/1/2",
]


@pytest.mark.parametrize("suffix", VALID_NAMES)
def test_valid_nested_name(admin: httpx.Client, suffix: str) -> None:
    name = f"proto/nested-{uuid.uuid4().hex[:8]}/{suffix}"
    _exercise(admin, name)


def test_name_of_255_characters(admin: httpx.Client) -> None:
    prefix = f"proto/long-{uuid.uuid4().hex[:8]}/"
    name = prefix + "a" * (255 - len(prefix))
    assert len(name) == 255
    _exercise(admin, name)


def _exercise(c: httpx.Client, name: str) -> None:
    """Chunked upload, manifest by tag, every read endpoint, then deletes."""
    data = blob_data(100)
    r = c.post(f"/v2/{name}/blobs/uploads/")
    assert r.status_code == 202, (r.status_code, r.text)
    r = c.patch(r.headers["Location"], content=data, headers={"Content-Range": "0-99"})
    assert r.status_code == 202, (r.status_code, r.text)
    assert c.get(r.headers["Location"]).status_code == 204
    r = c.put(with_params(r.headers["Location"], digest=sha256(data)))
    assert r.status_code == 201, (r.status_code, r.text)
    assert c.get(f"/v2/{name}/blobs/{sha256(data)}").content == data
    digest, body = push_image(c, name, "v1")
    assert c.get(f"/v2/{name}/manifests/v1").content == body
    assert c.head(f"/v2/{name}/manifests/{digest}").status_code == 200
    r = c.get(f"/v2/{name}/tags/list")
    assert r.status_code == 200 and r.json() == {"name": name, "tags": ["v1"]}, r.text
    r = c.get(f"/v2/{name}/referrers/{digest}")
    assert r.status_code == 200 and r.json()["manifests"] == [], r.text
    assert c.delete(f"/v2/{name}/manifests/{digest}").status_code == 202
    assert_error(c.get(f"/v2/{name}/manifests/v1"), 404, "MANIFEST_UNKNOWN")
    assert c.delete(f"/v2/{name}/blobs/{sha256(data)}").status_code == 202
