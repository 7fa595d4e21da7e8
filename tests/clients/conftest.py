"""Fixtures for the real-client end-to-end tests.

``registry`` runs a test once against CNCF distribution (the reference, no auth) and once against
Seawall (token auth, admin user): a failure on the Seawall side only points at Seawall.
``seawall_registry`` is for behaviour distribution 2.8 lacks (referrers API, token auth).
Every client runs with a private configuration under the test's tmp_path.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.tools import (
    DockerCli,
    Podman,
    Registry,
    Skopeo,
    probe_podman_storage_driver,
    require_binary,
)
from tests.support.distribution import DISTRIBUTION_BINARY, DistributionProcess
from tests.support.server import SeawallProcess


def _distribution(
    tmp_path_factory: pytest.TempPathFactory, *, basic_auth: bool = False
) -> Iterator[Registry]:
    require_binary(DISTRIBUTION_BINARY)
    workdir = tmp_path_factory.mktemp("distribution")
    proc = DistributionProcess(workdir, basic_auth=basic_auth).start()
    try:
        yield Registry("distribution", proc.url, proc.host, proc.username, proc.password)
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """CNCF distribution without auth."""
    yield from _distribution(tmp_path_factory)


@pytest.fixture(scope="session")
def distribution_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """CNCF distribution behind htpasswd (Basic) auth: the yardstick for login tests."""
    yield from _distribution(tmp_path_factory, basic_auth=True)


@pytest.fixture(scope="session")
def seawall_registry(seawall: SeawallProcess) -> Registry:
    return Registry("seawall", seawall.url, seawall.host, "admin", seawall.admin_password)


@pytest.fixture(params=["distribution", "seawall"])
def registry(request: pytest.FixtureRequest) -> Registry:
    """Each test using this runs against distribution and against Seawall."""
    name = "seawall_registry" if request.param == "seawall" else request.param
    return request.getfixturevalue(name)


@pytest.fixture(params=["distribution_basic", "seawall"])
def authed_registry(request: pytest.FixtureRequest) -> Registry:
    """A registry that checks passwords: distribution (Basic) and Seawall (Bearer tokens)."""
    name = "seawall_registry" if request.param == "seawall" else request.param
    return request.getfixturevalue(name)


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name of the test's own (the session registries are shared)."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"clients/{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(tmp_path, require_binary("skopeo"))


@pytest.fixture(scope="session")
def podman_storage_driver(tmp_path_factory: pytest.TempPathFactory) -> str:
    binary = require_binary("podman")
    return probe_podman_storage_driver(tmp_path_factory.mktemp("podman-probe"), binary)


@pytest.fixture
def podman(tmp_path: Path, podman_storage_driver: str) -> Iterator[Podman]:
    tool = Podman(tmp_path / "podman", podman_storage_driver, require_binary("podman"))
    yield tool
    tool.close()


@pytest.fixture
def docker_cli(tmp_path: Path) -> DockerCli:
    return DockerCli(tmp_path, require_binary("docker"))
