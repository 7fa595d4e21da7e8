"""Replication through a real ``seawall serve`` to and from a ``docker-hub`` endpoint (the Hub
fake in front of a real Seawall): push and pull, an index, a signature and an SBOM (Hub has no
referrers API: the tag schema carries them), digests verified at both ends; the pull side
discovers the namespace through the Hub API and spends one pull per manifest it copies."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.replication.roundtrip import round_trip
from tests.replication.support import api, digest_of, dumps, run
from tests.support.client import client
from tests.support.client import push_image as push_raw_image
from tests.support.fake_docker_hub import FakeDockerHub
from tests.support.fake_docker_hub_world import PAT, USER, fake_hub, namespace
from tests.support.server import SeawallProcess

GET = "GET /v2/{name}/manifests/{ref}"


@pytest.fixture
def ns() -> str:
    return namespace()


@pytest.fixture
def hub(seawall: SeawallProcess, ns: str) -> Iterator[FakeDockerHub]:
    with fake_hub(seawall, (ns,)) as fake:
        yield fake


def _remote_digest(hub: FakeDockerHub) -> Callable[[str, str], str | None]:
    def digest(repo: str, reference: str) -> str | None:
        with client(hub.url, USER, PAT) as c:
            return digest_of(c, repo, reference)

    return digest


def test_round_trip(local: SeawallProcess, hub: FakeDockerHub, ns: str) -> None:
    endpoint = {
        "name": "hub",
        "type": "docker-hub",
        "url": hub.url,
        "insecure": True,
        "credential": {"type": "basic", "access_key": USER, "access_secret": PAT},
        "options": {"hub_url": hub.url, "rate_limit_floor": "10"},
    }
    round_trip(local, endpoint, remote_namespace=ns, remote_digest=_remote_digest(hub))
    assert hub.count("GET /v2/repositories/{namespace}/") >= 1  # discovery via the Hub API
    assert hub.count("GET /v2/_catalog") == 0
    assert hub.answers(GET).get(429, 0) == 0
    # the pull policy again, nothing changed at Hub: the server's run spends no pull
    with api(local.url, local.admin_password) as a:
        policies = a.get("/replication/policies", params={"page_size": 100}).json()
        pull = next(p["id"] for p in policies if p["name"] == "hub-pull")
        hub.reset_counts()
        ex, tasks = run(a, pull)
    assert ex["status"] == "Succeed", dumps([ex, tasks])
    assert hub.count(GET) == 0
    assert hub.count("HEAD /v2/{name}/manifests/{ref}") >= 2  # one free HEAD per tag


def test_the_cli_refuses_a_bad_endpoint_before_sending(seawall: SeawallProcess, ns: str) -> None:
    env = {**os.environ, "SEAWALL_PASSWORD": seawall.admin_password}
    base = [sys.executable, "-m", "seawall", "registry", "add", "--url", seawall.url, ns]
    bad = subprocess.run(
        [*base, "--type", "docker-hub", "--registry-url", "https://registry.example"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "give --hub-url" in bad.stderr and "Traceback" not in bad.stderr
    good = subprocess.run(
        # no network here: Hub itself cannot be pinged (--no-ping), but the settings are taken
        [*base, "--type", "docker-hub", "--registry-url", "https://docker.io", "--no-ping"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr


def test_a_proxy_cache_on_hub_costs_one_pull_per_manifest(
    local: SeawallProcess, hub: FakeDockerHub, seawall: SeawallProcess
) -> None:
    """``hub/<name>`` on the local Seawall pulls ``library/<name>`` through from Hub: the tag
    is resolved with a free HEAD, the manifest fetched once; a second pull within the TTL
    asks Hub nothing."""
    name = f"lib{namespace()}"
    with client(seawall.url, "admin", seawall.admin_password) as upstream:  # Docker's push
        digest, _ = push_raw_image(upstream, f"library/{name}", "3.20", seed=name)
    with api(local.url, local.admin_password) as a:
        endpoint = {
            "name": "hub",
            "type": "docker-hub",
            "url": hub.url,
            "insecure": True,
            "credential": {"type": "basic", "access_key": USER, "access_secret": PAT},
            "options": {"hub_url": hub.url},
        }
        r = a.post("/registries", json=endpoint)
        assert r.status_code == 201, r.text
        hub_id = int(r.headers["Location"].rsplit("/", 1)[1])
        r = a.post("/proxy-caches", json={"name": "hub", "registry": {"id": hub_id}})
        assert r.status_code == 201, r.text
    hub.reset_counts()
    with client(local.url, "admin", local.admin_password) as c:
        assert digest_of(c, f"hub/{name}", "3.20") == digest
        assert (hub.count(GET), hub.pulls(USER)) == (1, 1)
        assert hub.count("HEAD /v2/{name}/manifests/{ref}") >= 1  # free
        before = sum(hub.counts().values())
        assert digest_of(c, f"hub/{name}", "3.20") == digest
        assert sum(hub.counts().values()) == before  # within the TTL: Hub is not asked
