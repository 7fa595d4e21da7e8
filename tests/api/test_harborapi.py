"""The API driven by a real Harbor client: ``harborapi`` (unioslo/harborapi), whose pydantic
models are Harbor's swagger. Parsing its answers proves the field names and types match."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

pytest.importorskip("harborapi", reason="harborapi is in the test extra")

from harborapi import HarborAsyncClient
from harborapi.models import (
    Registry,
    RegistryCredential,
    RegistryPing,
    RegistryUpdate,
    ReplicationFilter,
    ReplicationPolicy,
    ReplicationTrigger,
    ReplicationTriggerSettings,
)

from tests.api.harness import ADMIN_PASSWORD, InProcessApi


def harbor(api: InProcessApi) -> HarborAsyncClient:
    client = HarborAsyncClient(
        url=f"{api.url}/api/v2.0", username="admin", secret=ADMIN_PASSWORD, retry=None
    )
    client.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app))
    return client


def step(api: InProcessApi, fn: Callable[[HarborAsyncClient], Awaitable[Any]]) -> Any:
    """Run one async step on the API's event loop (where its database lives)."""

    async def go() -> Any:
        return await fn(harbor(api))

    return api.call(go)


def test_harborapi_registry_policy_execution_tasks(api: InProcessApi) -> None:
    async def setup(h: HarborAsyncClient) -> tuple[int, int, int]:
        assert await h.ping() == "Pong"
        info = await h.get_system_info()
        assert info.harbor_version and info.current_time is not None
        assert "docker-registry" in await h.get_registry_adapters()
        providers = await h.get_registry_providers()
        assert "seawall" in providers.root
        location = await h.create_registry(
            Registry(
                name="upstream",
                type="docker-registry",
                url="https://upstream.example.com",
                credential=RegistryCredential(type="basic", access_key="bob", access_secret="pw"),
                insecure=False,
            )
        )
        rid = int(location.rsplit("/", 1)[1])
        got = await h.get_registry(rid)
        assert got.name == "upstream" and got.credential is not None
        assert got.credential.access_secret == "*****" and got.credential.access_key == "bob"
        assert got.creation_time is not None
        await h.update_registry(rid, RegistryUpdate(description="the upstream"))
        assert (await h.get_registry(rid)).description == "the upstream"
        await h.check_registry_status(RegistryPing(id=rid))
        assert (await h.get_registry(rid)).status == "healthy"
        registry_info = await h.get_registry_info(rid)
        assert registry_info.type == "docker-registry"
        location = await h.create_replication_policy(
            ReplicationPolicy(
                name="pull-upstream",
                src_registry=Registry(id=rid),
                dest_namespace="mirror",
                filters=[ReplicationFilter(type="name", value="library/**")],
                trigger=ReplicationTrigger(
                    type="scheduled",
                    trigger_settings=ReplicationTriggerSettings(cron="0 0 * * * *"),
                ),
                replicate_deletion=True,
                override=True,
                enabled=True,
                speed=800,
            )
        )
        pid = int(location.rsplit("/", 1)[1])
        policy = await h.get_replication_policy(pid)
        assert policy.src_registry is not None and policy.src_registry.id == rid
        assert policy.dest_registry is not None and policy.dest_registry.id == 0
        assert policy.deletion is True and policy.replicate_deletion is True
        assert policy.dest_namespace_replace_count == -1 and policy.speed == 800
        assert policy.trigger is not None and policy.trigger.type == "scheduled"
        assert [p.name for p in await h.get_replication_policies(query="name=~pull")] == [
            "pull-upstream"
        ]
        await h.update_replication_policy(pid, ReplicationPolicy(description="hourly"))
        assert (await h.get_replication_policy(pid)).enabled is True
        location = await h.start_replication(pid)
        eid = int(location.rsplit("/", 1)[1])
        execution = await h.get_replication(eid)
        assert execution.policy_id == pid and execution.status == "InProgress"
        assert execution.trigger == "manual" and execution.start_time is not None
        return rid, pid, eid

    rid, pid, eid = step(api, setup)
    api.add_tasks(
        eid,
        [
            {
                "status": "Succeed",
                "operation": "copy",
                "resource_type": "artifact",
                "src_resource": f"library/app-{i}:[1.0]",
                "dst_resource": f"mirror/app-{i}:[1.0]",
                "log": f"copied app-{i}",
            }
            for i in range(12)
        ],
    )

    async def tasks(h: HarborAsyncClient) -> None:
        found = await h.get_replication_tasks(eid, page_size=5)  # follows the Link header
        assert len(found) == 12 and found[0].operation == "copy"
        assert found[0].src_resource == "library/app-0:[1.0]" and found[0].execution_id == eid
        assert await h.get_replication_task_log(eid, found[3].id or 0) == "copied app-3"
        assert [e.id for e in await h.get_replications(policy_id=pid)] == [eid]
        await h.stop_replication(eid)

    step(api, tasks)
    api.set_execution(eid, status="Stopped")

    async def teardown(h: HarborAsyncClient) -> None:
        await h.delete_replication_policy(pid)
        await h.delete_registry(rid)
        assert await h.get_registries() == []

    step(api, teardown)


def test_harborapi_follows_pages_of_registries(api: InProcessApi) -> None:
    async def go(h: HarborAsyncClient) -> None:
        for i in range(13):
            await h.create_registry(
                Registry(name=f"r{i:02d}", type="seawall", url=f"https://r{i}.example.com")
            )
        everything = await h.get_registries(page_size=5)
        assert [r.name for r in everything] == [f"r{i:02d}" for i in range(13)]

    step(api, go)
