"""Replication through a real ``seawall serve`` to and from an ``azure-acr`` endpoint (the ACR
fake in front of a real Seawall): push and pull, an index, a signature and an SBOM, digests
verified at both ends; once with the admin user, once with a service principal that the
server logs in through azure-identity, Microsoft Entra ID (the HTTPS fake) and the exchange."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.replication.roundtrip import round_trip
from tests.replication.support import digest_of
from tests.support.acr_world import (
    CLIENT_ID,
    CLIENT_SECRET,
    aad_options,
    fake_aad,
    fake_acr,
    namespace,
)
from tests.support.client import client
from tests.support.fake_aad import FakeAad
from tests.support.fake_acr import FakeAcr
from tests.support.server import SeawallProcess


@pytest.fixture(scope="module")
def aad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAad]:
    with fake_aad(tmp_path_factory.mktemp("aad")) as a:
        yield a


@pytest.fixture
def acr(seawall: SeawallProcess, aad: FakeAad) -> Iterator[FakeAcr]:
    with fake_acr(seawall, aad) as fake:
        yield fake


@pytest.fixture
def local_trusting_aad(tmp_path: Path, aad: FakeAad) -> Iterator[SeawallProcess]:
    """The test's own Seawall, whose azure-identity trusts the fake authority's CA."""
    proc = SeawallProcess(tmp_path / "data", extra_env={"REQUESTS_CA_BUNDLE": str(aad.ca_file)})
    proc.start()
    yield proc
    proc.kill()


def _remote_digest(acr: FakeAcr) -> Any:
    def digest(repo: str, reference: str) -> str | None:
        with client(acr.url, acr.admin_username, acr.admin_password) as c:
            return digest_of(c, repo, reference)

    return digest


def _endpoint(name: str, acr: FakeAcr, key: str, secret: str, **options: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "azure-acr",
        "url": acr.url,
        "insecure": True,
        "credential": {"type": "basic", "access_key": key, "access_secret": secret},
        "options": options,
    }


def test_round_trip_with_the_admin_user(local: SeawallProcess, acr: FakeAcr) -> None:
    endpoint = _endpoint("acr", acr, acr.admin_username, acr.admin_password, auth="admin")
    round_trip(local, endpoint, remote_namespace=namespace(), remote_digest=_remote_digest(acr))
    assert acr.count("GET /acr/v1/{name}/_tags") >= 2  # the pull side listed through /acr/v1
    assert acr.count("GET /acr/v1/_catalog") >= 1


def test_round_trip_with_a_service_principal(
    local_trusting_aad: SeawallProcess, acr: FakeAcr, aad: FakeAad
) -> None:
    endpoint = _endpoint("acr-sp", acr, CLIENT_ID, CLIENT_SECRET, **aad_options(aad))
    round_trip(
        local_trusting_aad,
        endpoint,
        remote_namespace=namespace(),
        remote_digest=_remote_digest(acr),
    )
    assert acr.answers("POST /oauth2/exchange").get(200, 0) >= 1
    assert acr.answers("POST /oauth2/exchange").get(401, 0) == 0


def test_the_cli_adds_an_endpoint_and_refuses_a_bad_one(
    local: SeawallProcess, acr: FakeAcr
) -> None:
    env = {**os.environ, "SEAWALL_PASSWORD": local.admin_password}
    base = [sys.executable, "-m", "seawall", "registry", "add", "--url", local.url]
    target = ["--type", "azure-acr", "--registry-url", acr.url]
    good = subprocess.run(
        [
            *base,
            "acr",
            *target,
            "--auth",
            "admin",
            "--access-key",
            acr.admin_username,
            "--access-secret",
            acr.admin_password,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    bad = subprocess.run(
        [
            *base,
            "acr-sp",
            *target,
            "--auth",
            "aad-secret",
            "--access-key",
            CLIENT_ID,
            "--access-secret",
            CLIENT_SECRET,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "needs --tenant-id" in bad.stderr and "Traceback" not in bad.stderr
    assert acr.count("POST /oauth2/exchange") == 0  # refused before anything was sent
