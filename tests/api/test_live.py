"""The management API as ``seawall serve`` serves it (skipped until ``seawall.app`` wires
``create_api``): the real replication service, the real endpoint checker, the CLI as a process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest

pytest.importorskip("harborapi", reason="harborapi is in the test extra")

from harborapi import HarborAsyncClient
from harborapi.models import (
    Registry,
    RegistryCredential,
    RegistryPing,
    ReplicationFilter,
    ReplicationPolicy,
)

from tests.support.server import SeawallProcess


def test_live_public_endpoints_and_challenge(live: SeawallProcess) -> None:
    assert httpx.get(f"{live.url}/api/v2.0/ping").text == "Pong"
    assert httpx.get(f"{live.url}/api/v2.0/systeminfo").json()["harbor_version"]
    r = httpx.get(f"{live.url}/api/v2.0/registries")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="seawall"'


def test_live_harborapi_push_run_to_itself(live: SeawallProcess) -> None:
    """A push policy from the local registry to an endpoint that is this same Seawall, filtered
    to nothing: the run must be picked up by the real service and end ``Succeed``."""
    asyncio.run(_push_run(live))


async def _push_run(live: SeawallProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    h = HarborAsyncClient(url=f"{live.url}/api/v2.0", username="admin", secret=live.admin_password)
    adapters = await h.get_registry_adapters()
    kind = next((a for a in ("seawall", "docker-registry") if a in adapters), adapters[0])
    location = await h.create_registry(
        Registry(
            name=f"self-{suffix}",
            type=kind,
            url=live.url,
            credential=RegistryCredential(
                type="basic", access_key="admin", access_secret=live.admin_password
            ),
        )
    )
    rid = int(location.rsplit("/", 1)[1])
    await h.check_registry_status(RegistryPing(id=rid))
    assert (await h.get_registry(rid)).status == "healthy"
    location = await h.create_replication_policy(
        ReplicationPolicy(
            name=f"push-{suffix}",
            dest_registry=Registry(id=rid),
            dest_namespace=f"mirror-{suffix}",
            filters=[ReplicationFilter(type="name", value=f"nothing-{suffix}/**")],
        )
    )
    pid = int(location.rsplit("/", 1)[1])
    eid = int((await h.start_replication(pid)).rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    execution = await h.get_replication(eid)
    while execution.status == "InProgress" and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        execution = await h.get_replication(eid)
    assert execution.status == "Succeed", execution
    assert execution.end_time is not None
    tasks = await h.get_replication_tasks(eid)
    assert all(t.status == "Succeed" for t in tasks)
    await h.delete_replication_policy(pid)
    await h.delete_registry(rid)


def test_live_cli_process(live: SeawallProcess) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    env.update(SEAWALL_URL=live.url, SEAWALL_ADMIN_PASSWORD=live.admin_password)
    ok = subprocess.run(
        [sys.executable, "-m", "seawall", "registry", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ID")
    bad = subprocess.run(
        [sys.executable, "-m", "seawall", "policy", "list", "--password", "wrong"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "refused the credentials of user 'admin'" in bad.stderr
