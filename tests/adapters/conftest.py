"""Fixtures for the OCI client tests: real registries (CNCF distribution with and without
htpasswd Basic auth, Seawall with token auth) and the anyio backend (aiohttp needs asyncio)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from adapters.oci import OciClient
from tests.support.distribution import DistributionProcess, distribution_available
from tests.support.server import SeawallProcess


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class Remote:
    """A real registry the client is tested against."""

    name: str  # "distribution", "distribution-basic" or "seawall"
    url: str
    username: str | None
    password: str | None
    auth_scheme: str | None  # what ping() must report

    @property
    def is_distribution(self) -> bool:
        return self.name.startswith("distribution")

    def client(self, **kw: Any) -> OciClient:
        kw.setdefault("backoff_base_seconds", 0.01)
        return OciClient(self.url, username=self.username, password=self.password, **kw)


def _distribution(factory: pytest.TempPathFactory, basic_auth: bool) -> Iterator[Remote]:
    if not distribution_available():
        pytest.skip("docker-registry (CNCF distribution) is not installed")
    proc = DistributionProcess(factory.mktemp("distribution"), basic_auth=basic_auth).start()
    try:
        name = "distribution-basic" if basic_auth else "distribution"
        yield Remote(name, proc.url, proc.username, proc.password, "basic" if basic_auth else None)
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def oci_distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    yield from _distribution(tmp_path_factory, basic_auth=False)


@pytest.fixture(scope="session")
def oci_distribution_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    yield from _distribution(tmp_path_factory, basic_auth=True)


@pytest.fixture(scope="session")
def oci_seawall(seawall: SeawallProcess) -> Remote:
    return Remote("seawall", seawall.url, "admin", seawall.admin_password, "bearer")


@pytest.fixture(params=["distribution", "distribution-basic", "seawall"])
def remote(request: pytest.FixtureRequest) -> Remote:
    """Each test using this runs against distribution (no auth, Basic auth) and Seawall."""
    fixture = {
        "distribution": "oci_distribution",
        "distribution-basic": "oci_distribution_basic",
        "seawall": "oci_seawall",
    }[request.param]
    return request.getfixturevalue(fixture)


@pytest.fixture
def repo() -> str:
    """A repository name of the test's own."""
    return f"oci-client/t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One moto server for the session (S3, ECR, STS, ...; account 123456789012, key pair
    ``testing``, no IAM checks), a :class:`tests.support.moto.MotoServer`: point boto3 at it
    with ``monkeypatch`` and ``moto_server.env()``. Skipped without ``moto_server``, failed
    under ``CI=true``. Shared: tests use resource names of their own, never ``reset()``."""
    from tests.support.moto import MotoServer, require_moto

    require_moto()
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(autouse=True)
def credentials_dir(monkeypatch: pytest.MonkeyPatch) -> str:
    """File options (key files, certificates, federated tokens) may name files only inside
    ``$SEAWALL_CREDENTIALS_DIR``: the tests write theirs under the temporary directory."""
    import tempfile

    from adapters.base import CREDENTIALS_DIR_ENV

    root = tempfile.gettempdir()
    monkeypatch.setenv(CREDENTIALS_DIR_ENV, root)
    return root
