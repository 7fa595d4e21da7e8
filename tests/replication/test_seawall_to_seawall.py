"""Seawall to Seawall: multi-arch indexes and referrers carried with their subject, deletion
sync with its safety rails."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.replication.support import add_endpoint, add_policy, api, digest_of, dumps, run, tags
from tests.support.client import OCI_INDEX, OCI_MANIFEST, client, push_artifact, push_image, sha256
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

COSIGN = "application/vnd.dev.cosign.artifact.sig.v1+json"
SPDX = "application/spdx+json"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[SeawallProcess]:
    proc = SeawallProcess(tmp_path / "remote").start()
    yield proc
    proc.kill()


def push_index(c: httpx.Client, repo: str, tag: str) -> tuple[str, list[str]]:
    children = []
    for arch in ("amd64", "arm64"):
        digest, data = push_image(c, repo, f"{tag}-{arch}", seed=f"{tag}{arch}")
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(data),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    r = c.put(f"/v2/{repo}/manifests/{tag}", content=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201, r.text
    return sha256(index), [ch["digest"] for ch in children]


def test_index_and_referrers_follow_their_subject(
    local: SeawallProcess, remote: SeawallProcess
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        index, children = push_index(c, "apps/multi", "1.0")
        image, data = push_image(c, "apps/signed", "v1", seed="signed")
        sig = push_artifact(c, "apps/signed", COSIGN, b"signature", subject=(image, len(data)))
        sbom = push_artifact(c, "apps/signed", SPDX, b'{"spdx": 1}', subject=(image, len(data)))
        dest = add_endpoint(
            a,
            "remote",
            remote.url,
            type_="seawall",
            username="admin",
            password=remote.admin_password,
        )
        pid = add_policy(a, "s2s", dest=dest, filters=[{"type": "tag", "value": "{1.0,v1}"}])
        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
    with client(remote.url, "admin", remote.admin_password) as r:
        assert digest_of(r, "apps/multi", "1.0") == index
        for child in children:  # children arrive with the index, by digest
            assert digest_of(r, "apps/multi", child) == child
        assert tags(r, "apps/multi") == ["1.0"]  # the per-arch tags were filtered out
        assert digest_of(r, "apps/signed", "v1") == image
        listed = r.get(f"/v2/apps/signed/referrers/{image}").json()["manifests"]
        assert {(m["digest"], m["artifactType"]) for m in listed} == {(sig, COSIGN), (sbom, SPDX)}


def test_deletion_sync_deletes_only_what_it_replicated(
    local: SeawallProcess, remote: SeawallProcess
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
        client(remote.url, "admin", remote.admin_password) as r,
    ):
        for tag in ("a", "b", "c", "d"):
            push_image(c, "mirror/app", tag, seed=tag)
        theirs, _ = push_image(r, "mirror/app", "theirs", seed="theirs")
        dest = add_endpoint(
            a,
            "remote",
            remote.url,
            type_="seawall",
            username="admin",
            password=remote.admin_password,
        )
        pid = add_policy(a, "mirror", dest=dest, deletion=True, max_deletions=1)
        ex, _ = run(a, pid)
        assert ex["status"] == "Succeed"
        assert tags(r, "mirror/app") == ["a", "b", "c", "d", "theirs"]
        assert c.delete("/v2/mirror/app/manifests/a").status_code == 202
        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert [t["outcome"] for t in tasks if t["operation"] == "deletion"] == ["deleted"]
        assert tags(r, "mirror/app") == ["b", "c", "d", "theirs"]
        # Two deletions exceed max_deletions=1: the run stops for review, nothing is deleted.
        for tag in ("b", "c"):
            assert c.delete(f"/v2/mirror/app/manifests/{tag}").status_code == 202
        ex, tasks = run(a, pid)
        assert ex["status"] == "Failed" and "deletion guard" in ex["status_text"], dumps(ex)
        assert tags(r, "mirror/app") == ["b", "c", "d", "theirs"]
        assert digest_of(r, "mirror/app", "theirs") == theirs  # never ours to delete


def test_failed_source_listing_deletes_nothing(local: SeawallProcess, tmp_path: Path) -> None:
    dist = DistributionProcess(tmp_path / "dist").start()
    try:
        with httpx.Client(base_url=dist.url) as d:
            for tag in ("1", "2"):
                push_image(d, "lib/x", tag, seed=tag)
        with (
            api(local.url, local.admin_password) as a,
            client(local.url, "admin", local.admin_password) as c,
        ):
            src = add_endpoint(a, "dist", dist.url)
            pid = add_policy(a, "pull-mirror", src=src, deletion=True)
            ex, _ = run(a, pid)
            assert ex["status"] == "Succeed"
            assert tags(c, "lib/x") == ["1", "2"]
            dist.stop()  # the source goes away: its listing fails
            ex, tasks = run(a, pid, timeout_s=240)
            assert ex["status"] == "Failed", dumps([ex, tasks])
            assert not [t for t in tasks if t["operation"] == "deletion"], dumps(tasks)
            assert tags(c, "lib/x") == ["1", "2"]
    finally:
        dist.stop()


def test_a_changed_endpoint_password_takes_effect_on_the_next_run(
    local: SeawallProcess, remote: SeawallProcess
) -> None:
    """Runs share an endpoint's client (tokens, connections); a credential change gives the
    next run a new one, so a wrong password fails clearly and the corrected one works."""
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        image, _ = push_image(c, "creds/app", "v1", seed="creds")
        dest = add_endpoint(
            a, "remote-creds", remote.url, type_="seawall", username="admin", password="wrong"
        )
        pid = add_policy(a, "creds", dest=dest, filters=[{"type": "name", "value": "creds/**"}])
        ex, tasks = run(a, pid)
        assert ex["status"] == "Failed", dumps([ex, tasks])
        assert "401" in dumps(tasks) or "unauthorized" in dumps([ex, tasks]).lower()
        r = a.put(f"/registries/{dest}", json={"access_secret": remote.admin_password})
        assert r.status_code == 200, r.text
        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        # and the other way: a password that stops working fails the next run
        r = a.put(f"/registries/{dest}", json={"access_secret": "wrong-again"})
        assert r.status_code == 200, r.text
        push_image(c, "creds/app", "v2", seed="creds2")
        ex, tasks = run(a, pid)
        assert ex["status"] == "Failed", dumps([ex, tasks])
    with client(remote.url, "admin", remote.admin_password) as r:
        assert digest_of(r, "creds/app", "v1") == image
        assert tags(r, "creds/app") == ["v1"]
