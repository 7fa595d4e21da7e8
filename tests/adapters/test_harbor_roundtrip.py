"""Replication through a real ``seawall serve`` to and from a ``harbor`` endpoint (the Harbor
fake in front of a real Seawall): the engine round trip (push and pull, an index, a signature
and an SBOM, digests verified at both ends) as the least-privilege system robot; and Harbor's
webhook as the trigger of an event-based pull policy: a push into Harbor fires
``PUSH_ARTIFACT`` at Seawall, whose run copies the pushed tag, and a delete there fires
``DELETE_ARTIFACT``, whose run (deletion on) removes it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from adapters.harbor import HarborAdapter, WebhookTarget
from adapters.testing import push_image
from tests.replication.roundtrip import round_trip
from tests.replication.support import add_policy, api, digest_of, dumps
from tests.schedules.test_events import eventually, executions
from tests.support.client import client
from tests.support.fake_harbor import FakeHarbor
from tests.support.fake_harbor_world import (
    FAST,
    REPLICATION_ROBOT,
    create_robot,
    fake_harbor,
    namespace,
    robot_config,
)
from tests.support.server import SeawallProcess

SECRET = "harbor-hook-secret-0123456789"


@pytest.fixture
def harbor(seawall: SeawallProcess) -> Iterator[FakeHarbor]:
    with fake_harbor(seawall) as fake:
        yield fake


def _endpoint(name: str, harbor: FakeHarbor, robot: tuple[str, str], **extra: Any) -> dict:
    return {
        "name": name,
        "type": "harbor",
        "url": harbor.url,
        "insecure": True,
        "credential": {"type": "basic", "access_key": robot[0], "access_secret": robot[1]},
        **extra,
    }


def test_round_trip_as_the_replication_robot(local: SeawallProcess, harbor: FakeHarbor) -> None:
    robot = create_robot(harbor, REPLICATION_ROBOT)
    project = namespace()

    def remote_digest(repo: str, reference: str) -> str | None:
        with client(harbor.url, robot[0], robot[1]) as c:
            return digest_of(c, repo, reference)

    endpoint = _endpoint("harbor", harbor, robot, options={"project_auto_scan": "true"})
    round_trip(local, endpoint, remote_namespace=project, remote_digest=remote_digest)
    created = harbor.project(project)
    assert created is not None and created.metadata == {"public": "false", "auto_scan": "true"}
    assert harbor.count("POST /api/v2.0/projects") == 1  # once, though two repositories
    artifacts = "GET /api/v2.0/projects/{project_name}/repositories/{repository_name}/artifacts"
    assert harbor.count(artifacts) >= 2  # listed through the artifact API
    assert harbor.count("GET /v2/{name}/tags/list") == 0


def test_a_push_into_harbor_triggers_an_event_based_pull_policy(
    local: SeawallProcess, harbor: FakeHarbor
) -> None:
    robot = create_robot(harbor, REPLICATION_ROBOT)
    project = namespace()
    with (
        api(local.url, local.admin_password) as a,
        client(local.url, "admin", local.admin_password) as c,
    ):
        registry_id = _add_with_the_cli(local, harbor, robot, a, project)
        policy = add_policy(
            a,
            "from-harbor",
            src=registry_id,
            trigger={"type": "event_based"},
            filters=[{"type": "name", "value": f"{project}/**"}],
            deletion=True,
            max_deletion_fraction=1.0,  # the repository's only tag goes
        )
        hook = f"{local.url}/api/v2.0/registries/{registry_id}/webhook"
        digest = asyncio.run(_register_and_push(harbor, robot, project, hook))
        eventually(lambda: digest_of(c, f"{project}/app", "v1") == digest, what=f"{project}/app:v1")
        asyncio.run(_delete(harbor, robot, f"{project}/app", digest))  # DELETE_ARTIFACT
        eventually(lambda: digest_of(c, f"{project}/app", "v1") is None, what="v1 deleted")
        runs = executions(a, policy)
        assert runs and all(x["trigger"] == "event_based" for x in runs), dumps(runs)
    delivered = [d for d in harbor.deliveries() if d.address == hook]
    assert [d.status for d in delivered] == [202, 202]  # Seawall took Harbor's own payloads
    assert [d.event_type for d in delivered] == ["PUSH_ARTIFACT", "DELETE_ARTIFACT"]
    assert delivered[0].payload["event_data"]["resources"][0]["tag"] == "v1"


def _add_with_the_cli(
    local: SeawallProcess,
    harbor: FakeHarbor,
    robot: tuple[str, str],
    a: httpx.Client,
    project: str,
) -> int:
    """``seawall registry add`` as the docs show it; a bad option is refused first, with
    nothing sent to Harbor. The endpoint's id."""
    env = {**os.environ, "SEAWALL_PASSWORD": local.admin_password}
    base = [sys.executable, "-m", "seawall", "registry", "add", "--url", local.url, "harbor"]
    login = ["--type", "harbor", "--registry-url", harbor.url, "--access-key", robot[0]]
    login += ["--access-secret", robot[1], "--webhook-secret", SECRET]
    before = sum(harbor.counts().values())
    bad = subprocess.run(
        [*base, *login, "--project-severity", "high"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0
    assert "only with --project-prevent-vul true" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr and sum(harbor.counts().values()) == before
    good = subprocess.run(
        [*base, *login, "--project-auto-scan", "true", "--option", f"projects={project}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    found = [r for r in a.get("/registries").json() if r["name"] == "harbor"]
    assert found[0]["options"] == {"project_auto_scan": "true", "projects": project}
    return int(found[0]["id"])


async def _delete(harbor: FakeHarbor, robot: tuple[str, str], repo: str, digest: str) -> None:
    async with HarborAdapter(robot_config(harbor, robot), **FAST) as adapter:
        await adapter.client().delete_manifest(repo, digest)


async def _register_and_push(
    harbor: FakeHarbor, robot: tuple[str, str], project: str, hook: str
) -> str:
    """Register Seawall's webhook on ``project`` through the adapter, then push into Harbor."""
    async with HarborAdapter(robot_config(harbor, robot), **FAST) as adapter:
        await adapter.prepare_repository(f"{project}/app")
        await adapter.ensure_webhook(project, WebhookTarget(hook, auth_header=SECRET))
        digest, _ = await push_image(adapter, f"{project}/app", "v1")
    return digest
