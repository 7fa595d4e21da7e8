"""Replication through a real ``seawall serve`` to and from a ``github-ghcr`` endpoint (the GHCR
fake in front of a real Seawall): the round trip (push and pull, an index, a signature and an
SBOM, digests verified at both ends; discovery of the pull side through the Packages API), and
deletion sync: a tag deleted at the source deletes its package version at GHCR — checked in the
registry behind the fake — while a tag that shares its version with another tag is left in
place with the reason in the task's log, never reported as deleted."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.replication.roundtrip import round_trip
from tests.replication.support import add_policy, api, digest_of, dumps, run, tags
from tests.support.client import OCI_MANIFEST, client, push_image
from tests.support.fake_ghcr import FakeGhcr
from tests.support.fake_ghcr_world import endpoint_body, fake_ghcr, owner
from tests.support.server import SeawallProcess


@pytest.fixture
def ghcr(seawall: SeawallProcess) -> Iterator[FakeGhcr]:
    with fake_ghcr(seawall) as fake:
        yield fake


def _behind(seawall: SeawallProcess) -> httpx.Client:
    """The registry behind the fake, read directly (what GHCR really stores)."""
    return client(seawall.url, "admin", seawall.admin_password)


def test_round_trip(local: SeawallProcess, ghcr: FakeGhcr, seawall: SeawallProcess) -> None:
    namespace = owner(ghcr)

    def remote_digest(repo: str, reference: str) -> str | None:
        with _behind(seawall) as c:
            return digest_of(c, repo, reference)

    round_trip(
        local, endpoint_body("ghcr", ghcr), remote_namespace=namespace, remote_digest=remote_digest
    )
    assert ghcr.count("GET /{kind}/{owner}/packages") >= 1  # the pull side found the packages
    assert ghcr.count("GET /{kind}/{owner}/packages/container/{package}/versions") >= 2
    assert ghcr.answers("GET /token").get(200, 0) >= 1


def test_deletion_sync_deletes_versions_and_leaves_a_shared_tag_loudly(
    local: SeawallProcess, ghcr: FakeGhcr, seawall: SeawallProcess
) -> None:
    org = owner(ghcr)
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
        _behind(seawall) as behind,
    ):
        digests = {tag: push_image(c, "mirror/app", tag, seed=tag)[0] for tag in ("a", "b")}
        shared, data = push_image(c, "mirror/app", "x", seed="shared")
        r = c.put(
            "/v2/mirror/app/manifests/y", content=data, headers={"Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 201
        r = a.post("/registries", json=endpoint_body("ghcr", ghcr))
        assert r.status_code == 201, r.text
        dest = int(r.headers["Location"].rsplit("/", 1)[1])
        pid = add_policy(
            a,
            "to-ghcr",
            dest=dest,
            deletion=True,
            max_deletion_fraction=1.0,
            dest_namespace=org,
            dest_namespace_replace_count=1,
        )
        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert tags(behind, f"{org}/app") == ["a", "b", "x", "y"]

        assert c.delete("/v2/mirror/app/manifests/a").status_code == 202  # a tag alone
        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert [t["outcome"] for t in tasks if t["operation"] == "deletion"] == ["deleted"]
        assert digest_of(behind, f"{org}/app", digests["a"]) is None  # really gone
        assert tags(behind, f"{org}/app") == ["b", "x", "y"]
        assert ghcr.count("DELETE /v2/{name}/manifests/{ref}") == 0

        assert c.delete("/v2/mirror/app/manifests/x").status_code == 202  # y still names it
        ex, tasks = run(a, pid)
        deletions = [t for t in tasks if t["operation"] == "deletion"]
        assert [t["outcome"] for t in deletions] != ["deleted"], dumps(tasks)
        r = a.get(f"/replication/executions/{ex['id']}/tasks/{deletions[0]['id']}/log")
        assert "left in place" in r.text and "y still names" in r.text, dumps([r.text, tasks])
        assert digest_of(behind, f"{org}/app", "x") == shared  # nothing claimed, nothing gone


def test_the_cli_adds_an_endpoint_and_refuses_a_bad_one(
    local: SeawallProcess, ghcr: FakeGhcr
) -> None:
    env = {**os.environ, "SEAWALL_PASSWORD": local.admin_password}
    base = [sys.executable, "-m", "seawall", "registry", "add", "--url", local.url]
    target = [
        "--type",
        "github-ghcr",
        "--registry-url",
        ghcr.url,
        "--option",
        f"api_url={ghcr.url}",
    ]
    login = ["--access-key", "octo-admin", "--access-secret", "ghp_" + "A" * 36]
    good = subprocess.run(
        [*base, "ghcr", *target, "--option", "owner_type=org", *login],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    before = sum(ghcr.counts().values())
    bad = subprocess.run(
        [
            *base,
            "ghcr-bad",
            "--type",
            "github-ghcr",
            "--registry-url",
            "https://ghcr.io/acme",
            *login,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "give the registry only" in bad.stderr and "Traceback" not in bad.stderr
    assert sum(ghcr.counts().values()) == before  # refused before anything was sent
