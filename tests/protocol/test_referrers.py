"""The referrers API (end-12a/12b): ``OCI-Subject`` on push, the index it answers with,
``artifactType`` filtering, subjects pushed after their referrers, deletes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.protocol.helpers import (
    EMPTY_JSON,
    EMPTY_JSON_DIGEST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    assert_error,
    blob_data,
    descriptor,
    image,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)

SBOM = "application/vnd.example.sbom.v1"
SIG = "application/vnd.example.signature.v1"


def subject_of(digest: str, body: bytes, media_type: str = OCI_MANIFEST) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": len(body)}


def push_artifact(
    c: httpx.Client,
    repo: str,
    subject: dict[str, Any],
    artifact_type: str | None,
    *,
    annotations: dict[str, str] | None = None,
    config_type: str = OCI_EMPTY,
    tag: str | None = None,
) -> tuple[str, bytes]:
    """Push an artifact manifest with ``subject``; assert 201 and ``OCI-Subject``."""
    payload = blob_data(100)
    push_blob(c, repo, payload)
    if config_type == OCI_EMPTY:
        push_blob(c, repo, EMPTY_JSON)
        config = {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2}
    else:
        raw = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        push_blob(c, repo, raw)
        config = descriptor(config_type, raw)
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config
    doc["layers"] = [descriptor("application/vnd.example.payload", payload)]
    doc["subject"] = subject
    if annotations:
        doc["annotations"] = annotations
    body = json.dumps(doc).encode()
    r = put_manifest(c, repo, tag or sha256(body), body, OCI_MANIFEST)
    assert r.status_code == 201, (r.status_code, r.text)
    assert r.headers.get("OCI-Subject") == subject["digest"], r.headers
    return sha256(body), body


def referrers(c: httpx.Client, repo: str, digest: str, **params: str) -> httpx.Response:
    r = c.get(f"/v2/{repo}/referrers/{digest}", params=params)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["Content-Type"] == OCI_INDEX
    doc = r.json()
    assert doc["schemaVersion"] == 2
    assert doc["mediaType"] == OCI_INDEX
    assert isinstance(doc["manifests"], list)
    return r


def by_digest(r: httpx.Response) -> dict[str, dict[str, Any]]:
    return {d["digest"]: d for d in r.json()["manifests"]}


@pytest.fixture
def subject(admin: httpx.Client, repo: str) -> dict[str, Any]:
    digest, body = push_image(admin, repo, "v1")
    return subject_of(digest, body)


def test_referrers_list(admin: httpx.Client, repo: str, subject: dict[str, Any]) -> None:
    sbom_ann = {"org.example.sbom.format": "json", "org.opencontainers.image.created": "2024"}
    sig_ann = {"org.example.signature.fingerprint": "abcd"}
    d1, b1 = push_artifact(admin, repo, subject, SBOM, annotations=sbom_ann)
    d2, b2 = push_artifact(admin, repo, subject, SIG, annotations=sig_ann, tag="sig")
    r = referrers(admin, repo, subject["digest"])
    assert "OCI-Filters-Applied" not in r.headers
    got = by_digest(r)
    assert set(got) == {d1, d2}
    assert got[d1] == {
        "mediaType": OCI_MANIFEST,
        "digest": d1,
        "size": len(b1),
        "artifactType": SBOM,
        "annotations": sbom_ann,
    }
    assert got[d2] == {
        "mediaType": OCI_MANIFEST,
        "digest": d2,
        "size": len(b2),
        "artifactType": SIG,
        "annotations": sig_ann,
    }


@pytest.mark.parametrize(("wanted", "expected"), [(SBOM, [SBOM]), (SIG, [SIG]), ("x/none", [])])
def test_referrers_filter(
    admin: httpx.Client, repo: str, subject: dict[str, Any], wanted: str, expected: list[str]
) -> None:
    digests = {t: push_artifact(admin, repo, subject, t)[0] for t in (SBOM, SIG)}
    r = referrers(admin, repo, subject["digest"], artifactType=wanted)
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    got = r.json()["manifests"]
    assert [d["digest"] for d in got] == [digests[t] for t in expected]
    assert all(d["artifactType"] == wanted for d in got)


def test_artifact_type_falls_back_to_config_media_type(
    admin: httpx.Client, repo: str, subject: dict[str, Any]
) -> None:
    """An image manifest without ``artifactType``: the descriptor carries the config's type."""
    d, _ = push_artifact(admin, repo, subject, None, config_type="application/vnd.example.cfg")
    got = by_digest(referrers(admin, repo, subject["digest"]))
    assert got[d]["artifactType"] == "application/vnd.example.cfg"
    got = by_digest(
        referrers(admin, repo, subject["digest"], artifactType="application/vnd.example.cfg")
    )
    assert set(got) == {d}
    got = by_digest(referrers(admin, repo, subject["digest"], artifactType=OCI_CONFIG))
    assert got == {}


def test_index_as_referrer(admin: httpx.Client, repo: str, subject: dict[str, Any]) -> None:
    """An index with a subject is a referrer too; its artifactType comes from the index (and is
    omitted when the index has none)."""
    _, child_body = push_image(admin, repo)
    bodies = {}
    for at in ("application/vnd.example.bundle.v1", None):
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
        if at:
            doc["artifactType"] = at
        doc["manifests"] = [descriptor(OCI_MANIFEST, child_body)]
        doc["subject"] = subject
        doc["annotations"] = {"n": str(len(bodies))}
        body = json.dumps(doc).encode()
        r = put_manifest(admin, repo, sha256(body), body, OCI_INDEX)
        assert r.status_code == 201, r.text
        assert r.headers.get("OCI-Subject") == subject["digest"]
        bodies[at] = body
    got = by_digest(referrers(admin, repo, subject["digest"]))
    with_type = got[sha256(bodies["application/vnd.example.bundle.v1"])]
    assert with_type["mediaType"] == OCI_INDEX
    assert with_type["artifactType"] == "application/vnd.example.bundle.v1"
    assert with_type["annotations"] == {"n": "0"}
    without = got[sha256(bodies[None])]
    assert "artifactType" not in without or not without["artifactType"]


def test_referrer_before_subject(admin: httpx.Client, repo: str) -> None:
    """A registry MUST accept a manifest whose subject does not exist (yet)."""
    config = json.dumps({"os": "linux", "n": blob_data(4).hex()}).encode()
    layer = blob_data(100)
    subject_body = image(config, [layer])
    subj = subject_of(sha256(subject_body), subject_body)
    d, _ = push_artifact(admin, repo, subj, SBOM)
    assert d in by_digest(referrers(admin, repo, subj["digest"]))
    push_blob(admin, repo, config)
    push_blob(admin, repo, layer)
    assert put_manifest(admin, repo, "v1", subject_body, OCI_MANIFEST).status_code == 201
    assert d in by_digest(referrers(admin, repo, subj["digest"]))


def test_referrers_of_unknown_digest(admin: httpx.Client, repo: str, subject: dict) -> None:
    r = referrers(admin, repo, sha256(blob_data(10)))
    assert r.json()["manifests"] == []


def test_referrers_in_unknown_repository(admin: httpx.Client, repo: str) -> None:
    r = admin.get(f"/v2/{repo}/referrers/{sha256(b'x')}")
    if r.status_code == 200:
        assert r.json()["manifests"] == []
    else:
        assert_error(r, 404, "NAME_UNKNOWN")


@pytest.mark.parametrize("digest", ["sha256:totallywrong", "sha256:" + "a" * 63, "latest"])
def test_referrers_invalid_digest(
    admin: httpx.Client, repo: str, subject: dict[str, Any], digest: str
) -> None:
    assert_error(admin.get(f"/v2/{repo}/referrers/{digest}"), 400, "DIGEST_INVALID")


def test_deleted_referrer_disappears(admin: httpx.Client, repo: str, subject: dict) -> None:
    d1, _ = push_artifact(admin, repo, subject, SBOM)
    d2, _ = push_artifact(admin, repo, subject, SIG)
    assert admin.delete(f"/v2/{repo}/manifests/{d1}").status_code == 202
    assert set(by_digest(referrers(admin, repo, subject["digest"]))) == {d2}
    r = referrers(admin, repo, subject["digest"], artifactType=SBOM)
    assert r.json()["manifests"] == []


def test_referrers_are_per_repository(
    admin: httpx.Client, repo: str, repo2: str, subject: dict[str, Any]
) -> None:
    """A referrer pushed in another repository is not listed for this one."""
    d_here, _ = push_artifact(admin, repo, subject, SBOM)
    d_there, _ = push_artifact(admin, repo2, subject, SBOM)
    assert set(by_digest(referrers(admin, repo, subject["digest"]))) == {d_here}
    assert set(by_digest(referrers(admin, repo2, subject["digest"]))) == {d_there}


def test_referrers_survive_subject_tag_move(
    admin: httpx.Client, repo: str, subject: dict[str, Any]
) -> None:
    """Referrers hang on the digest, not on a tag."""
    d, _ = push_artifact(admin, repo, subject, SBOM)
    push_image(admin, repo, "v1")  # moves v1 away from the subject
    assert d in by_digest(referrers(admin, repo, subject["digest"]))
