from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.client import client
from tests.support.server import SeawallProcess


@pytest.fixture(scope="session")
def seawall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    """One Seawall registry for the session (auth on, admin password known)."""
    proc = SeawallProcess(tmp_path_factory.mktemp("seawall") / "data").start()
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
