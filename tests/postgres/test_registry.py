"""The registry on PostgreSQL, through real HTTP against ``seawall serve``: blobs, manifests,
tags (byte order, paging), referrers, deletes, the catalog, and accounts made by the CLI."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.postgres.helpers import eventually, node, seawall_cli
from tests.protocol.helpers import (
    EMPTY_JSON,
    EMPTY_JSON_DIGEST,
    HEADERS,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    all_pages,
    assert_error,
    blob_data,
    descriptor,
    hooks,
    push_blob,
    push_image,
    put_manifest,
    sha256,
)
from tests.support.client import client
from tests.support.postgres import PostgresCluster
from tests.support.server import SeawallProcess


@pytest.fixture(scope="module")
def pg_seawall(
    postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SeawallProcess]:
    url = postgres_cluster.create_database("registry")
    proc = node(tmp_path_factory.mktemp("pg-seawall") / "data", url).start()
    yield proc
    proc.stop()


@pytest.fixture
def admin(pg_seawall: SeawallProcess) -> Iterator[httpx.Client]:
    with client(
        pg_seawall.url, "admin", pg_seawall.admin_password, event_hooks=hooks(), headers=HEADERS
    ) as c:
        yield c


@pytest.fixture
def repo() -> str:
    return f"pg/app-{uuid.uuid4().hex[:8]}"


def test_blob_push_pull_head_range_delete(admin: httpx.Client, repo: str) -> None:
    data = blob_data(70_000)
    digest = push_blob(admin, repo, data)
    r = admin.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200 and r.content == data
    r = admin.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200 and int(r.headers["Content-Length"]) == len(data)
    r = admin.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == data[10:20]
    # a blob pushed to one repository is mountable into another
    other = repo + "-b"
    r = admin.post(f"/v2/{other}/blobs/uploads/", params={"mount": digest, "from": repo})
    assert r.status_code == 201, r.text
    assert admin.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    assert_error(admin.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    assert admin.head(f"/v2/{other}/blobs/{digest}").status_code == 200


def test_manifest_push_pull_by_tag_and_digest(admin: httpx.Client, repo: str) -> None:
    digest, body = push_image(admin, repo, "1.0", layers=2)
    for ref in ("1.0", digest):
        r = admin.get(f"/v2/{repo}/manifests/{ref}")
        assert r.status_code == 200
        assert r.content == body
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["Content-Type"] == OCI_MANIFEST
    # a manifest naming a blob the repository lacks is refused, and nothing is stored
    doc = json.loads(body)
    doc["layers"].append(descriptor("application/vnd.oci.image.layer.v1.tar", b"absent"))
    bad = json.dumps(doc).encode()
    assert_error(put_manifest(admin, repo, "bad", bad, OCI_MANIFEST), 400, "MANIFEST_BLOB_UNKNOWN")
    assert_error(admin.get(f"/v2/{repo}/manifests/bad"), 404, "MANIFEST_UNKNOWN")


def test_index_over_children(admin: httpx.Client, repo: str) -> None:
    children = [push_image(admin, repo) for _ in range(2)]
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [descriptor(OCI_MANIFEST, body) for _, body in children],
    }
    body = json.dumps(doc).encode()
    assert put_manifest(admin, repo, "multi", body, OCI_INDEX).status_code == 201
    r = admin.get(f"/v2/{repo}/manifests/multi")
    assert r.status_code == 200 and r.content == body


def test_tags_list_in_byte_order_and_paged(admin: httpx.Client, repo: str) -> None:
    digest, _ = push_image(admin, repo)
    # byte order, as SQLite and the spec's lexical order: upper case before lower case,
    # '-' and '.' before digits (a linguistic collation would order these differently)
    tags = ["b", "B", "a-1", "a.1", "a1", "A", "Z9", "_x", "1.0", "1.0-rc"]
    _, body = push_image(admin, repo)
    for t in tags:
        assert put_manifest(admin, repo, t, body, OCI_MANIFEST).status_code == 201
    want = sorted(tags)
    r = admin.get(f"/v2/{repo}/tags/list")
    assert r.status_code == 200 and r.json() == {"name": repo, "tags": want}
    assert all_pages(admin, f"/v2/{repo}/tags/list?n=3", "tags") == want
    r = admin.get(f"/v2/{repo}/tags/list", params={"n": 2, "last": "a-1"})
    assert r.json()["tags"] == want[want.index("a-1") + 1 :][:2]
    assert digest  # the untagged manifest is not listed


def test_referrers_with_and_without_filter(admin: httpx.Client, repo: str) -> None:
    digest, body = push_image(admin, repo, "v1")
    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body)}
    push_blob(admin, repo, EMPTY_JSON)
    pushed: dict[str, str] = {}
    for kind in ("application/vnd.example.sbom.v1", "application/vnd.example.sig.v1"):
        payload = blob_data(64)
        push_blob(admin, repo, payload)
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": kind,
            "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": 2},
            "layers": [descriptor("application/vnd.example.payload", payload)],
            "subject": subject,
            "annotations": {"kind": kind},
        }
        art = json.dumps(doc).encode()
        r = put_manifest(admin, repo, sha256(art), art, OCI_MANIFEST)
        assert r.status_code == 201 and r.headers["OCI-Subject"] == digest
        pushed[kind] = sha256(art)
    r = admin.get(f"/v2/{repo}/referrers/{digest}")
    assert r.status_code == 200
    got = {d["digest"]: d for d in r.json()["manifests"]}
    assert set(got) == set(pushed.values())
    for kind, d in pushed.items():
        assert got[d]["artifactType"] == kind
        assert got[d]["annotations"] == {"kind": kind}
    kind = "application/vnd.example.sig.v1"
    r = admin.get(f"/v2/{repo}/referrers/{digest}", params={"artifactType": kind})
    assert [d["digest"] for d in r.json()["manifests"]] == [pushed[kind]]
    assert r.headers.get("OCI-Filters-Applied") == "artifactType"
    # deleting a referrer removes it from the list
    assert admin.delete(f"/v2/{repo}/manifests/{pushed[kind]}").status_code == 202
    r = admin.get(f"/v2/{repo}/referrers/{digest}")
    assert [d["digest"] for d in r.json()["manifests"]] == [
        pushed["application/vnd.example.sbom.v1"]
    ]


def test_manifest_and_tag_delete(admin: httpx.Client, repo: str) -> None:
    digest, _ = push_image(admin, repo, "keep")
    other, _ = push_image(admin, repo, "drop")
    assert admin.delete(f"/v2/{repo}/manifests/drop").status_code == 202  # a tag
    assert_error(admin.get(f"/v2/{repo}/manifests/drop"), 404, "MANIFEST_UNKNOWN")
    assert admin.get(f"/v2/{repo}/manifests/{other}").status_code == 200  # still by digest
    assert admin.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202  # and its tags
    assert_error(admin.get(f"/v2/{repo}/manifests/keep"), 404, "MANIFEST_UNKNOWN")
    assert_error(admin.get(f"/v2/{repo}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")
    assert admin.get(f"/v2/{repo}/tags/list").json()["tags"] == []
    assert_error(admin.delete(f"/v2/{repo}/manifests/{digest}"), 404, "MANIFEST_UNKNOWN")


def test_catalog_in_byte_order_and_paged(admin: httpx.Client) -> None:
    stem = f"cat-{uuid.uuid4().hex[:6]}"
    names = [f"{stem}/a-b", f"{stem}/a.b", f"{stem}/a/b", f"{stem}/ab", f"{stem}/a_b"]
    for name in names:
        push_blob(admin, name, blob_data(10))
    everything = all_pages(admin, "/v2/_catalog?n=2", "repositories")
    assert everything == sorted(everything)
    assert [n for n in everything if n.startswith(stem + "/")] == sorted(names)


def test_cli_accounts_on_postgres(pg_seawall: SeawallProcess, repo: str) -> None:
    """Accounts made and deleted by the CLI (another process) on the same database: a deleted
    user is refused at once, though the server had it cached (cache TTL 2 s, notification)."""
    url, data_dir = pg_seawall.extra_env["SEAWALL_DATABASE_URL"], pg_seawall.data_dir
    name, password = f"dev-{uuid.uuid4().hex[:6]}", "pw-" + uuid.uuid4().hex
    seawall_cli(url, data_dir, "user", "add", name, "--password", password, "--allow", "pg/*=*")
    out = seawall_cli(url, data_dir, "robot", "add", f"ci-{name}", "--expires-days", "3")
    secret = out.strip().splitlines()[-1].strip()
    assert f"robot$ci-{name}" in seawall_cli(url, data_dir, "robot", "list")
    basic = httpx.BasicAuth(name, password)
    with httpx.Client(base_url=pg_seawall.url, auth=basic, timeout=30) as c:
        push_image(c, repo, "v1")
        assert c.get(f"/v2/{repo}/manifests/v1").status_code == 200
        seawall_cli(url, data_dir, "user", "delete", name)
        eventually(lambda: c.get(f"/v2/{repo}/manifests/v1").status_code, lambda s: s == 401, 1.0)
    with client(pg_seawall.url, f"robot$ci-{name}", secret) as c:
        assert c.get("/v2/").status_code == 200


def test_data_dir_holds_no_sqlite_database(pg_seawall: SeawallProcess) -> None:
    assert not Path(pg_seawall.data_dir, "seawall.db").exists()
