from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.client import client
from tests.support.distribution import DistributionProcess
from tests.support.postgres import PostgresCluster, find_pg_bin
from tests.support.server import SeawallProcess

#: ``SEAWALL_TEST_DATABASE=postgresql`` runs the session registry (``seawall`` fixture, hence the
#: whole protocol suite) on a throwaway PostgreSQL database instead of SQLite.
TEST_DATABASE = os.environ.get("SEAWALL_TEST_DATABASE", "sqlite")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL server for the session (127.0.0.1, a free port).

    Without PostgreSQL installed the tests that need it are skipped — except under CI
    (``CI=true``), where ``scripts/test`` installs it and its absence is a failure.
    """
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("PostgreSQL is not installed (scripts/test installs it)")
        pytest.skip("PostgreSQL is not installed (scripts/test installs it)")
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
    except Exception:
        log = cluster.log()
        cluster.stop()
        raise RuntimeError(f"starting PostgreSQL failed:\n{log}") from None
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind Seawall runs on: a SQLite file in the test's
    directory, then a database of the session's PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'seawall.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """A fresh, empty database of the session cluster: ``postgresql://postgres@127.0.0.1:P/N``."""
    return postgres_cluster.create_database()


@pytest.fixture(scope="session")
def seawall(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[SeawallProcess]:
    """One Seawall registry for the session (auth on, admin password known)."""
    env: dict[str, str] = {}
    if TEST_DATABASE == "postgresql":
        cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
        env["SEAWALL_DATABASE_URL"] = cluster.create_database("session")
    proc = SeawallProcess(tmp_path_factory.mktemp("seawall") / "data", extra_env=env).start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_seawall(tmp_path: Path) -> Iterator[SeawallProcess]:
    """A Seawall registry of the test's own (for tests that restart or kill it)."""
    proc = SeawallProcess(tmp_path / "data")
    yield proc
    proc.kill()


@pytest.fixture
def admin(seawall: SeawallProcess) -> Iterator[httpx.Client]:
    """An HTTP client logged in as admin (token flow) on the session registry."""
    with client(seawall.url, "admin", seawall.admin_password) as c:
        yield c


@pytest.fixture
def local(fresh_seawall: SeawallProcess) -> SeawallProcess:
    """The test's own Seawall, started (the replication tests' "local" registry)."""
    return fresh_seawall.start()


@pytest.fixture
def dist(tmp_path: Path) -> Iterator[DistributionProcess]:
    """A CNCF distribution (Debian's docker-registry) of the test's own, as a foreign registry."""
    with DistributionProcess(tmp_path / "dist") as d:
        yield d
