"""Fixtures for the management API tests.

``api``: the API in-process (its own SQLite database per test, fakes for wake and ping).
``live``: the real ``seawall serve`` of the session, once ``seawall.app`` wires the API
(skipped before that).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

from tests.api.harness import Fakes, InProcessApi, build
from tests.support.server import SeawallProcess


@pytest.fixture
def api(tmp_path: Path) -> Iterator[InProcessApi]:
    fakes = Fakes()
    with start_blocking_portal("asyncio") as portal:
        ctx, app = portal.call(build, tmp_path, fakes)
        yield InProcessApi(portal, ctx, app, fakes)
        portal.call(ctx.db.dispose)


def api_is_wired() -> bool:
    """Whether ``seawall.app`` wires the API (read, not imported: importing it pulls in every
    part of Seawall, and a part still being written must not break these tests)."""
    spec = importlib.util.find_spec("seawall.app")
    origin = spec.origin if spec is not None else None
    return origin is not None and "create_api(" in Path(origin).read_text()


@pytest.fixture
def live(request: pytest.FixtureRequest) -> SeawallProcess:
    if not api_is_wired():
        pytest.skip("seawall.app does not serve the management API yet (no create_api wiring)")
    proc: SeawallProcess = request.getfixturevalue("seawall")
    return proc
