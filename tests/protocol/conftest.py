"""Fixtures for the black-box OCI Distribution protocol suite.

By default the suite runs against the session Seawall (``seawall`` fixture). With
``PROTOCOL_TARGET=http://127.0.0.1:5000`` it runs against any registry without auth (e.g. CNCF
distribution, as a yardstick for the tests themselves); tests marked ``seawall_only`` (auth,
accounts, restarts) are then skipped.

Every client made here checks the protocol's invariants on every response it gets
(:func:`tests.protocol.helpers.check_invariants`): no 5xx, ``Docker-Distribution-API-Version`` on
``/v2/``, errors as OCI error JSON.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.protocol.helpers import HEADERS, Target, hooks
from tests.support.client import client


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "seawall_only: needs Seawall itself (auth, accounts, CLI, restarts)"
    )


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Target:
    external = os.environ.get("PROTOCOL_TARGET")
    if external:
        return Target(external.rstrip("/"), None, None, external=True)
    sw = request.getfixturevalue("seawall")
    return Target(sw.url, "admin", sw.admin_password, data_dir=sw.data_dir)


@pytest.fixture(autouse=True)
def _seawall_only(request: pytest.FixtureRequest, target: Target) -> None:
    if target.external and request.node.get_closest_marker("seawall_only"):
        pytest.skip("needs Seawall (auth/accounts/restart)")


@pytest.fixture
def admin(target: Target) -> Iterator[httpx.Client]:
    """Admin via the Docker token flow (Basic at the realm, then Bearer), invariants checked."""
    with client(
        target.url, target.username, target.password, event_hooks=hooks(), headers=HEADERS
    ) as c:
        yield c


@pytest.fixture
def basic(target: Target) -> Iterator[httpx.Client]:
    """Admin with HTTP Basic sent directly on every request (no token dance: streamed bodies
    are never replayed)."""
    auth = httpx.BasicAuth(target.username, target.password or "") if target.username else None
    with httpx.Client(
        base_url=target.url, auth=auth, timeout=60, event_hooks=hooks(), headers=HEADERS
    ) as c:
        yield c


@pytest.fixture
def anon(target: Target) -> Iterator[httpx.Client]:
    """No credentials at all."""
    with httpx.Client(base_url=target.url, timeout=60, event_hooks=hooks(), headers=HEADERS) as c:
        yield c


def unique_name(request: pytest.FixtureRequest, prefix: str = "proto") -> str:
    """A valid repository name from the test's name plus a random suffix."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60].strip("-")
    return f"{prefix}/{stem or 't'}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    return unique_name(request)


@pytest.fixture
def repo2(request: pytest.FixtureRequest) -> str:
    return unique_name(request, "proto2")
