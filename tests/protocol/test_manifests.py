"""Manifests (end-3 GET/HEAD, end-7 PUT, end-9 DELETE): the four manifest media types and an
artifact, exact bytes, tags moving, deletes by digest and tag, and every rejection."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from tests.protocol.helpers import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    EMPTY_JSON,
    EMPTY_JSON_DIGEST,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    assert_error,
    blob_data,
    descriptor,
    image,
    index,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)
from tests.support.client import ACCEPT

ARTIFACT_TYPE = "application/vnd.example.thing.v1"
HEADERS = {"Accept": ACCEPT}


def _image(c: httpx.Client, repo: str, media_type: str) -> bytes:
    config = json.dumps({"architecture": "amd64", "os": "linux", "x": blob_data(4).hex()}).encode()
    layer = blob_data(300)
    push_blob(c, repo, config)
    push_blob(c, repo, layer)
    # indented with a trailing newline: only exact-bytes storage keeps the digest
    return image(config, [layer], media_type=media_type, indent=3) + b"\n"


def _index(c: httpx.Client, repo: str, media_type: str) -> bytes:
    child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    children = []
    for _ in range(2):
        body = _image(c, repo, child_type)
        assert put_manifest(c, repo, sha256(body), body, child_type).status_code == 201
        children.append((body, child_type))
    return index(children, media_type=media_type)


def _artifact(c: httpx.Client, repo: str, media_type: str) -> bytes:
    assert push_blob(c, repo, EMPTY_JSON) == EMPTY_JSON_DIGEST
    payload = blob_data(200)
    push_blob(c, repo, payload)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2},
        "layers": [descriptor("application/vnd.example.thing.layer.v1", payload)],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    return json.dumps(doc).encode()


def _artifact_empty_layer(c: httpx.Client, repo: str, media_type: str) -> bytes:
    """An artifact with no payload: the empty descriptor as config and as its only layer."""
    push_blob(c, repo, EMPTY_JSON)
    empty = {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2}
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": empty,
        "layers": [empty],
    }
    return json.dumps(doc).encode()


KINDS: dict[str, tuple[str, Callable[[httpx.Client, str, str], bytes]]] = {
    "oci-manifest": (OCI_MANIFEST, _image),
    "docker-manifest": (DOCKER_MANIFEST, _image),
    "oci-index": (OCI_INDEX, _index),
    "docker-list": (DOCKER_LIST, _index),
    "artifact": (OCI_MANIFEST, _artifact),
    "artifact-empty-layer": (OCI_MANIFEST, _artifact_empty_layer),
}


def build(c: httpx.Client, repo: str, kind: str) -> tuple[bytes, str]:
    media_type, make = KINDS[kind]
    return make(c, repo, media_type), media_type


def assert_manifest(r: httpx.Response, body: bytes, media_type: str, *, head: bool) -> None:
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"] == media_type  # no parameters, the pushed type
    assert r.headers["Docker-Content-Digest"] == sha256(body)
    assert r.headers["Content-Length"] == str(len(body))
    if head:
        assert r.content == b""
    else:
        assert r.content == body
        assert sha256(r.content) == r.headers["Docker-Content-Digest"]


@pytest.mark.parametrize("by", ["tag", "digest"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_push_and_pull(admin: httpx.Client, repo: str, kind: str, by: str) -> None:
    body, media_type = build(admin, repo, kind)
    digest = sha256(body)
    ref = "v1" if by == "tag" else digest
    r = put_manifest(admin, repo, ref, body, media_type)
    assert r.status_code == 201, (r.status_code, r.text)
    assert r.headers["Docker-Content-Digest"] == digest
    location = r.headers["Location"]
    assert location
    assert_manifest(admin.get(location, headers=HEADERS), body, media_type, head=False)
    refs = [digest, "v1"] if by == "tag" else [digest]
    for ref in refs:
        url = f"/v2/{repo}/manifests/{ref}"
        assert_manifest(admin.get(url, headers=HEADERS), body, media_type, head=False)
        assert_manifest(admin.head(url, headers=HEADERS), body, media_type, head=True)


def test_content_type_parameters_ignored(admin: httpx.Client, repo: str) -> None:
    """The registry SHOULD ignore Content-Type parameters and SHOULD NOT send any back."""
    body = _image(admin, repo, OCI_MANIFEST)
    r = put_manifest(admin, repo, "v1", body, OCI_MANIFEST + "; charset=utf-8")
    assert r.status_code == 201, (r.status_code, r.text)
    assert_manifest(
        admin.get(f"/v2/{repo}/manifests/v1", headers=HEADERS), body, OCI_MANIFEST, head=False
    )


def test_manifest_without_media_type_field(admin: httpx.Client, repo: str) -> None:
    """``mediaType`` in the body is a SHOULD; the Content-Type of the PUT is the type."""
    doc = json.loads(_image(admin, repo, OCI_MANIFEST))
    del doc["mediaType"]
    body = json.dumps(doc).encode()
    r = put_manifest(admin, repo, "v1", body, OCI_MANIFEST)
    assert r.status_code == 201, (r.status_code, r.text)
    assert_manifest(
        admin.get(f"/v2/{repo}/manifests/v1", headers=HEADERS), body, OCI_MANIFEST, head=False
    )


def test_tag_update_moves_tag(admin: httpx.Client, repo: str) -> None:
    d1, b1 = push_image(admin, repo, "latest")
    d2, b2 = push_image(admin, repo, "latest")
    assert d1 != d2
    r = admin.get(f"/v2/{repo}/manifests/latest", headers=HEADERS)
    assert r.headers["Docker-Content-Digest"] == d2 and r.content == b2
    r = admin.get(f"/v2/{repo}/manifests/{d1}", headers=HEADERS)  # the old one stays by digest
    assert r.status_code == 200 and r.content == b1


def test_one_manifest_many_tags(admin: httpx.Client, repo: str) -> None:
    digest, body = push_image(admin, repo, "a")
    for tag in ("b", "c"):
        assert put_manifest(admin, repo, tag, body, OCI_MANIFEST).status_code == 201
    for tag in ("a", "b", "c"):
        r = admin.get(f"/v2/{repo}/manifests/{tag}", headers=HEADERS)
        assert r.headers["Docker-Content-Digest"] == digest


def test_push_same_manifest_twice_is_idempotent(admin: httpx.Client, repo: str) -> None:
    digest, body = push_image(admin, repo, "a")
    r = put_manifest(admin, repo, digest, body, OCI_MANIFEST)
    assert r.status_code == 201
    assert r.headers["Docker-Content-Digest"] == digest


# --------------------------------------------------------------------------- deletes


def test_delete_by_digest(admin: httpx.Client, repo: str) -> None:
    digest, _ = push_image(admin, repo, "v1")
    assert (
        put_manifest(
            admin,
            repo,
            "v2",
            admin.get(f"/v2/{repo}/manifests/v1", headers=HEADERS).content,
            OCI_MANIFEST,
        ).status_code
        == 201
    )
    r = admin.delete(f"/v2/{repo}/manifests/{digest}")
    assert r.status_code == 202, (r.status_code, r.text)
    for ref in (digest, "v1", "v2"):  # the digest and every tag pointing at it are gone
        assert_error(
            admin.get(f"/v2/{repo}/manifests/{ref}", headers=HEADERS), 404, "MANIFEST_UNKNOWN"
        )
        assert_error(admin.head(f"/v2/{repo}/manifests/{ref}", headers=HEADERS), 404)
    assert_error(admin.delete(f"/v2/{repo}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")


def test_delete_by_tag_removes_only_the_tag(admin: httpx.Client, repo: str) -> None:
    digest, body = push_image(admin, repo, "v1")
    assert put_manifest(admin, repo, "v2", body, OCI_MANIFEST).status_code == 201
    r = admin.delete(f"/v2/{repo}/manifests/v1")
    assert r.status_code == 202, (r.status_code, r.text)
    assert_error(admin.get(f"/v2/{repo}/manifests/v1", headers=HEADERS), 404, "MANIFEST_UNKNOWN")
    assert admin.get(f"/v2/{repo}/manifests/{digest}", headers=HEADERS).content == body
    assert admin.get(f"/v2/{repo}/manifests/v2", headers=HEADERS).content == body
    assert_error(admin.delete(f"/v2/{repo}/manifests/v1"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("ref", ["nosuchtag", "sha256:" + "0" * 64])
def test_delete_unknown_manifest(admin: httpx.Client, repo: str, ref: str) -> None:
    push_image(admin, repo, "v1")
    assert_error(admin.delete(f"/v2/{repo}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")


def test_delete_in_unknown_repository(admin: httpx.Client, repo: str) -> None:
    r = admin.delete(f"/v2/{repo}/manifests/sha256:{'0' * 64}")
    assert_error(r, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")


# --------------------------------------------------------------------------- unknown


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("ref", ["nosuchtag", "sha256:" + "0" * 64])
def test_unknown_manifest(admin: httpx.Client, repo: str, ref: str, method: str) -> None:
    push_image(admin, repo, "v1")
    assert_error(admin.request(method, f"/v2/{repo}/manifests/{ref}"), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("ref", ["latest", "sha256:" + "0" * 64])
def test_unknown_repository(admin: httpx.Client, repo: str, ref: str) -> None:
    r = admin.get(f"/v2/{repo}/manifests/{ref}", headers=HEADERS)
    assert_error(r, 404, "NAME_UNKNOWN", "MANIFEST_UNKNOWN")


# --------------------------------------------------------------------------- references

BAD_REFS = [
    "sha256:totallywrong",
    "sha256:baddigeststring",
    "sha256:" + "a" * 63,
    "sha256:" + "A" * 64,
    "md5:d41d8cd98f00b204e9800998ecf8427e",
    "-leading-dash",
    ".leading-dot",
    "a" * 129,
    "sp%20ace",
    "t@g",
    "tag+plus",
]
REF_CODES = ("MANIFEST_UNKNOWN", "MANIFEST_INVALID", "TAG_INVALID", "DIGEST_INVALID", "UNSUPPORTED")


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
@pytest.mark.parametrize("ref", BAD_REFS)
def test_bad_reference_read(admin: httpx.Client, repo: str, ref: str, method: str) -> None:
    push_image(admin, repo, "v1")
    r = admin.request(method, f"/v2/{repo}/manifests/{ref}", headers=HEADERS)
    assert_error(r, (400, 404), *REF_CODES)


@pytest.mark.parametrize("ref", BAD_REFS)
def test_bad_reference_put(admin: httpx.Client, repo: str, ref: str) -> None:
    _, body = push_image(admin, repo, "v1")
    r = put_manifest(admin, repo, ref, body, OCI_MANIFEST)
    assert_error(r, (400, 404), *REF_CODES)
    tags = admin.get(f"/v2/{repo}/tags/list").json()["tags"]
    assert tags == ["v1"]


@pytest.mark.parametrize("tag", ["a" * 128, "_underscore", "UPPER", "v1.2.3-rc.1_b", "0", "a--b"])
def test_valid_tag_edge_cases(admin: httpx.Client, repo: str, tag: str) -> None:
    _, body = push_image(admin, repo, tag)
    r = admin.get(f"/v2/{repo}/manifests/{tag}", headers=HEADERS)
    assert r.status_code == 200 and r.content == body
    assert tag in admin.get(f"/v2/{repo}/tags/list").json()["tags"]


# --------------------------------------------------------------------------- rejections


def assert_not_stored(c: httpx.Client, repo: str, body: bytes, tag: str | None = "v1") -> None:
    r = c.get(f"/v2/{repo}/manifests/{sha256(body)}", headers=HEADERS)
    assert_error(r, 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    if tag:
        r = c.get(f"/v2/{repo}/manifests/{tag}", headers=HEADERS)
        assert_error(r, 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


@pytest.mark.parametrize("missing", ["config", "layer"])
@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_manifest_blob_unknown(
    admin: httpx.Client, repo: str, media_type: str, missing: str
) -> None:
    config, layer = blob_data(100), blob_data(100)
    push_blob(admin, repo, layer if missing == "config" else config)
    body = image(config, [layer], media_type=media_type)
    r = put_manifest(admin, repo, "v1", body, media_type)
    assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN")
    assert_not_stored(admin, repo, body)


def test_manifest_blob_in_other_repository_is_unknown(
    admin: httpx.Client, repo: str, repo2: str
) -> None:
    """Blobs must be in the manifest's own repository, not just somewhere in the registry."""
    config, layer = blob_data(100), blob_data(100)
    push_blob(admin, repo, config)
    push_blob(admin, repo2, layer)
    body = image(config, [layer])
    assert_error(put_manifest(admin, repo, "v1", body, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")
    assert_not_stored(admin, repo, body)


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_index_child_unknown(admin: httpx.Client, repo: str, media_type: str) -> None:
    child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    known = _image(admin, repo, child_type)
    assert put_manifest(admin, repo, sha256(known), known, child_type).status_code == 201
    unknown = _image(admin, repo, child_type)  # blobs pushed, manifest never
    body = index([(known, child_type), (unknown, child_type)], media_type=media_type)
    assert_error(put_manifest(admin, repo, "v1", body, media_type), 400, "MANIFEST_BLOB_UNKNOWN")
    assert_not_stored(admin, repo, body)


def _valid(c: httpx.Client, repo: str) -> dict:
    return json.loads(_image(c, repo, OCI_MANIFEST))


INVALID: dict[str, Callable[[dict], bytes]] = {
    "not-json": lambda d: b"this is not json",
    "truncated": lambda d: json.dumps(d).encode()[:-5],
    "empty-body": lambda d: b"",
    "json-array": lambda d: b"[]",
    "json-string": lambda d: b'"manifest"',
    "empty-object": lambda d: b"{}",
    "no-config": lambda d: json.dumps({k: v for k, v in d.items() if k != "config"}).encode(),
    "schema-version-1": lambda d: json.dumps({**d, "schemaVersion": 1}).encode(),
    "config-not-object": lambda d: json.dumps({**d, "config": "sha256:abc"}).encode(),
    "layers-not-list": lambda d: json.dumps({**d, "layers": {}}).encode(),
    "config-bad-digest": lambda d: json.dumps(
        {**d, "config": {**d["config"], "digest": "sha256:nope"}}
    ).encode(),
    "config-size-string": lambda d: json.dumps(
        {**d, "config": {**d["config"], "size": str(d["config"]["size"])}}
    ).encode(),
    "invalid-utf8": lambda d: json.dumps(d).encode()[:-1] + b',"x":"\xff\xfe"}',
}


@pytest.mark.parametrize("case", list(INVALID))
def test_manifest_invalid(admin: httpx.Client, repo: str, case: str) -> None:
    body = INVALID[case](_valid(admin, repo))
    r = put_manifest(admin, repo, "v1", body, OCI_MANIFEST)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_not_stored(admin, repo, body)


def test_index_invalid(admin: httpx.Client, repo: str) -> None:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": "none"}).encode()
    assert_error(put_manifest(admin, repo, "v1", body, OCI_INDEX), 400, "MANIFEST_INVALID")
    assert_not_stored(admin, repo, body)


# (body kind, Content-Type sent): the body's mediaType field says otherwise
MISMATCHED = [
    ("oci-manifest", DOCKER_MANIFEST),
    ("oci-manifest", OCI_INDEX),
    ("docker-manifest", OCI_MANIFEST),
    ("oci-index", OCI_MANIFEST),
    ("oci-index", DOCKER_LIST),
]


@pytest.mark.parametrize(("kind", "content_type"), MISMATCHED)
def test_content_type_mismatch(
    admin: httpx.Client, repo: str, kind: str, content_type: str
) -> None:
    body, _ = build(admin, repo, kind)
    r = put_manifest(admin, repo, "v1", body, content_type)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_not_stored(admin, repo, body)


@pytest.mark.parametrize(
    "content_type",
    ["application/octet-stream", "text/plain", "application/vnd.example.unknown+json"],
)
def test_unknown_content_type(admin: httpx.Client, repo: str, content_type: str) -> None:
    body = _image(admin, repo, OCI_MANIFEST)
    r = put_manifest(admin, repo, "v1", body, content_type)
    assert_error(r, 400, "MANIFEST_INVALID")
    assert_not_stored(admin, repo, body)


def test_put_by_digest_mismatch(admin: httpx.Client, repo: str) -> None:
    body = _image(admin, repo, OCI_MANIFEST)
    claimed = sha256(body + b" ")
    r = put_manifest(admin, repo, claimed, body, OCI_MANIFEST)
    assert_error(r, 400, "DIGEST_INVALID")
    assert_not_stored(admin, repo, body, tag=None)
    assert_error(
        admin.get(f"/v2/{repo}/manifests/{claimed}"), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN"
    )


# --------------------------------------------------------------------------- size limit


def _padded(c: httpx.Client, repo: str, size: int) -> bytes:
    doc = _valid(c, repo)
    doc["annotations"] = {"pad": ""}
    base = len(json.dumps(doc).encode())
    doc["annotations"]["pad"] = "x" * (size - base)
    body = json.dumps(doc).encode()
    assert len(body) == size
    return body


def test_manifest_of_4_megabytes_accepted(admin: httpx.Client, repo: str) -> None:
    """Registries SHOULD accept manifests of at least 4 megabytes."""
    body = _padded(admin, repo, 4_000_000)
    r = put_manifest(admin, repo, "v1", body, OCI_MANIFEST)
    assert r.status_code == 201, (r.status_code, r.text[:300])
    assert admin.get(f"/v2/{repo}/manifests/v1", headers=HEADERS).content == body


def test_manifest_over_4_mib_rejected(admin: httpx.Client, repo: str) -> None:
    """Over the limit: SHOULD be 413 Payload Too Large."""
    body = _padded(admin, repo, 4 * 1024 * 1024 + 1024)
    r = put_manifest(admin, repo, "v1", body, OCI_MANIFEST)
    assert r.status_code == 413, (r.status_code, r.text[:300])
    assert_not_stored(admin, repo, body)
