"""The periodic collection inside ``serve`` (``gc.interval_seconds``): its loop sleeps through an
injected sleep (no waiting), and in one interval only the node that took the lease collects —
another node (here: a second set of services on the same database and store) skips it."""

from __future__ import annotations

import asyncio

import pytest

from seawall.app import build_services
from seawall.cli import main
from seawall.config import GcSettings, load_settings
from seawall.gc_cli import collect_if_due, run_periodic
from tests.gc.support import Rig, layer, push_image
from tests.support.client import sha256


class Stop(Exception):
    pass


def garbage(rig: Rig, name: str) -> set[str]:
    """Push an image to ``gc-periodic/<name>`` and delete it; its two blobs' digests."""
    blobs = [f'{{"periodic":"{name}"}}'.encode(), layer(f"periodic-{name}", 1200)]
    with rig.client() as c:
        image, _ = push_image(c, f"gc-periodic/{name}", "v1", blobs)
        assert c.delete(f"/v2/{image.repo}/manifests/{image.digest}").status_code == 202
    return {sha256(b) for b in blobs}


def test_one_node_per_interval_collects(rig: Rig) -> None:
    rig.collect()
    settings = rig.settings.model_copy(
        update={"gc": GcSettings(interval_seconds=3600, grace_seconds=0)}
    )
    first = garbage(rig, "first")
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:  # after one collection
            raise Stop

    async def node_a() -> None:
        services = build_services(settings)
        try:
            await run_periodic(services, sleep=sleep)
        finally:
            await services.close()

    with pytest.raises(Stop):
        asyncio.run(node_a())
    assert slept == [300, 3600]  # first run 5 minutes after start, then every interval
    assert not first & set(rig.stored()), "the periodic collection did not run"

    second = garbage(rig, "second")

    async def node_b() -> object:
        services = build_services(settings)
        try:
            return await collect_if_due(services)
        finally:
            await services.close()

    assert asyncio.run(node_b()) is None  # the interval is node A's
    assert second <= set(rig.stored())
    rig.collect()  # the on-demand command ignores the lease
    assert not second & set(rig.stored())


def test_settings_and_command_line() -> None:
    s = load_settings(
        environ={"SEAWALL_GC__INTERVAL_SECONDS": "86400", "SEAWALL_GC__GRACE_SECONDS": "0"}
    )
    assert (s.gc.interval_seconds, s.gc.grace_seconds) == (86400, 0)
    defaults = load_settings(environ={})
    assert (defaults.gc.interval_seconds, defaults.gc.grace_seconds) == (0, 3600)
    assert main(["gc", "--grace-seconds", "-1"]) == 2
