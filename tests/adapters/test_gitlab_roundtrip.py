"""Replication through a real ``seawall serve`` to and from a ``gitlab`` endpoint (the GitLab fake
in front of a real CNCF distribution): push and pull, an index, a signature and an SBOM
(through the tag schema: the registry has no referrers API), digests verified at both ends;
and the CLI adding an endpoint, and refusing a bad one before anything is sent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.replication.roundtrip import round_trip
from tests.replication.support import digest_of
from tests.support.client import client
from tests.support.distribution import DistributionProcess
from tests.support.fake_gitlab import FakeGitLab
from tests.support.fake_gitlab_world import TOKEN, USER, fake_gitlab, fresh_project
from tests.support.server import SeawallProcess


@pytest.fixture
def gitlab(dist: DistributionProcess) -> Iterator[FakeGitLab]:
    with fake_gitlab(dist) as fake:
        yield fake


def test_round_trip(local: SeawallProcess, gitlab: FakeGitLab, dist: DistributionProcess) -> None:
    project = fresh_project(gitlab)

    def remote_digest(repo: str, reference: str) -> str | None:
        with client(dist.url, None) as c:  # the registry behind the fake, as it is
            return digest_of(c, repo, reference)

    endpoint: dict[str, Any] = {
        "name": "gitlab",
        "type": "gitlab",
        "url": gitlab.registry_url,
        "credential": {"type": "basic", "access_key": USER, "access_secret": TOKEN},
        "options": {"gitlab_url": gitlab.gitlab_url},
    }
    round_trip(local, endpoint, remote_namespace=project, remote_digest=remote_digest)
    assert gitlab.answers("GET /api/v4/projects/:id").get(200, 0) >= 1  # projects checked
    assert gitlab.count("GET /api/v4/groups/:id/registry/repositories") >= 1  # discovered
    assert gitlab.answers("GET /jwt/auth").get(200, 0) >= 1
    assert gitlab.count("GET /v2/_catalog") == 0


def test_the_cli_adds_an_endpoint_and_refuses_a_bad_one(
    local: SeawallProcess, gitlab: FakeGitLab
) -> None:
    env = {**os.environ, "SEAWALL_PASSWORD": local.admin_password}
    base = [sys.executable, "-m", "seawall", "registry", "add", "--url", local.url]
    login = ["--access-key", USER, "--access-secret", TOKEN]
    good = subprocess.run(
        [
            *base,
            "gl",
            "--type",
            "gitlab",
            "--registry-url",
            gitlab.registry_url,
            "--gitlab-url",
            gitlab.gitlab_url,
            "--option",
            "group=seawall-ci",
            *login,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    assert gitlab.answers("GET /api/v4/personal_access_tokens/self").get(200, 0) >= 1  # pinged
    assert gitlab.answers("GET /v2/").get(200, 0) >= 1
    gitlab.reset_counts()
    bad = subprocess.run(
        [*base, "gl-bad", "--type", "gitlab", "--registry-url", gitlab.registry_url, *login],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "give --gitlab-url" in bad.stderr and "Traceback" not in bad.stderr
    assert gitlab.counts() == {}  # refused before anything was sent
