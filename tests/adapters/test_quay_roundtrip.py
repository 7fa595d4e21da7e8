"""Replication through a real ``seawall serve`` to and from a ``quay`` endpoint (the Quay fake in
front of a real Seawall), logged in with an OAuth application token as ``$oauthtoken``: push
and pull, an index, a signature and an SBOM, digests verified at both ends; repositories
created through the API and listed through it; and ``seawall registry add`` with a robot."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.replication.roundtrip import round_trip
from tests.replication.support import digest_of
from tests.support.client import client
from tests.support.fake_quay import OAUTH_USERNAME
from tests.support.fake_quay_world import USER, QuayWorld, namespace, quay_world
from tests.support.server import SeawallProcess


@pytest.fixture
def world(seawall: SeawallProcess, tmp_path: Path) -> Iterator[QuayWorld]:
    w = quay_world(seawall, tmp_path)
    yield w
    w.fake.stop()


def test_round_trip_with_an_oauth_token(local: SeawallProcess, world: QuayWorld) -> None:
    fake, ns = world.fake, namespace()
    token = fake.add_oauth_token(USER, [ns])

    def remote_digest(repo: str, reference: str) -> str | None:
        with client(fake.url, OAUTH_USERNAME, token) as c:
            return digest_of(c, repo, reference)

    endpoint = {
        "name": "quay",
        "type": "quay",
        "url": fake.url,
        "insecure": True,
        "credential": {"type": "basic", "access_key": OAUTH_USERNAME, "access_secret": token},
        "options": {"create_repositories": "true"},
    }
    round_trip(local, endpoint, remote_namespace=ns, remote_digest=remote_digest)
    assert {f"{ns}/multi", f"{ns}/signed"} <= set(fake.repositories)
    assert fake.answers("POST /api/v1/repository").get(201, 0) == 2  # created through the API
    assert fake.count("GET /api/v1/repository") >= 1  # the pull side discovered through it
    assert fake.count("GET /api/v1/repository/{ns}/{repo}/tag/") >= 2
    assert fake.answers("GET /v2/auth").get(401, 0) == 0
    _the_cli_adds_an_endpoint_and_refuses_a_bad_one(local, world)


def _the_cli_adds_an_endpoint_and_refuses_a_bad_one(
    local: SeawallProcess, world: QuayWorld
) -> None:
    """(On the same Seawall: a fresh one costs seconds.)"""
    before = world.fake.count("POST /api/v1/repository")
    env = {**os.environ, "SEAWALL_PASSWORD": local.admin_password}
    base = [sys.executable, "-m", "seawall", "registry", "add", "--url", local.url]
    user, secret = world.robot
    login = ["--access-key", user, "--access-secret", secret]
    target = ["--type", "quay", "--registry-url", world.fake.url, *login]
    good = subprocess.run(
        [*base, "quay-robot", *target, "--option", "namespaces=conformance"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(
        [*base, "quay-bad", *target, "--option", "create_repositories=true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "needs Quay's API" in bad.stderr and "Traceback" not in bad.stderr
    assert world.fake.count("POST /api/v1/repository") == before  # refused: nothing was sent
