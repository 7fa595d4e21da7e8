"""Fixtures of the region tests: the management API in-process with the failover checks wired
(a real :class:`~engine.regions.checks.DrChecker` over real endpoint clients)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from anyio.from_thread import start_blocking_portal

import engine.regions.models  # noqa: F401 - registers the region tables before build()
from engine.api import create_api
from engine.regions.checks import CheckSettings, DrChecker
from seawall.config import Settings
from seawall.replication import EndpointClients
from tests.api.harness import Fakes, InProcessApi, build


@pytest.fixture
def regions_api(tmp_path: Path) -> Iterator[InProcessApi]:
    fakes = Fakes()
    with start_blocking_portal("asyncio") as portal:
        ctx, _ = portal.call(build, tmp_path, fakes)
        clients = EndpointClients(Settings(data_dir=str(tmp_path)), ctx.db, ctx.secrets, b"k" * 32)
        checker = DrChecker(ctx.db, clients, CheckSettings(self_name="home"))
        ctx = dataclasses.replace(ctx, regions=checker)
        yield InProcessApi(portal, ctx, create_api(ctx), fakes)
        portal.call(clients.aclose)
        portal.call(ctx.db.dispose)
