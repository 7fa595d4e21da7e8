"""Docker Hub's pull limit, through the Hub fake in front of a real Seawall: manifest ``GET``\\s
stop at the endpoint's floor with a message naming the budget and the window, a ``429
TOOMANYREQUESTS`` becomes that message too, ``HEAD``\\s (free on Hub) resolve tags before any
``GET``, and a sync of unchanged tags from Hub costs no pull at all (counted at the fake)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.base import EndpointConfig, RegistryAdapter
from adapters.docker_hub import DockerHubAdapter
from adapters.docker_hub_limits import PullBudget, PullLimitReached, parse_rate_limit
from adapters.oci.errors import NotFound, RateLimited
from adapters.testing import push_image
from engine.oneshot import SyncSide, sync_once
from engine.referrers import source_referrers
from registry.oci import mediatypes as mt
from tests.support.fake_acr_auth import FakeClock
from tests.support.fake_docker_hub_world import FAST, PAT, USER, fake_hub, hub_config, namespace
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.anyio
GET = "GET /v2/{name}/manifests/{ref}"
HEAD = "HEAD /v2/{name}/manifests/{ref}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_rate_limit_headers_are_read() -> None:
    assert parse_rate_limit("100;w=21600") == (100, 21600.0)
    assert parse_rate_limit(" 76 ; w=3600") == (76, 3600.0)
    assert parse_rate_limit("5") == (5, 21600.0)
    assert parse_rate_limit("") is None
    assert parse_rate_limit("lots;w=1") is None
    clock = FakeClock()
    budget = PullBudget(3, clock)
    assert budget.allows()  # no reading: Hub said nothing (an unlimited account)
    budget.observe({"ratelimit-limit": "10;w=60", "ratelimit-remaining": "4;w=60"})
    assert budget.allows()
    with budget.spend("a@b", "u"):
        assert not budget.allows()  # 4 left, 1 in flight: the next would leave the floor
    budget.observe({"ratelimit-remaining": "3;w=60"})
    assert not budget.allows()
    clock.advance(60)
    assert budget.allows()  # the reading is older than its window


async def test_manifest_gets_stop_at_the_floor(seawall: SeawallProcess) -> None:
    ns = namespace()
    with fake_hub(seawall, (ns,), pull_limit=5) as hub:
        cfg = hub_config(hub, rate_limit_floor="2")
        async with DockerHubAdapter(cfg, clock=hub.clock, **FAST) as adapter:
            client = adapter.client()
            digest, data = await push_image(adapter, f"{ns}/app", "v1")
            for _ in range(3):
                await client.get_manifest(f"{ns}/app", digest)
            assert hub.remaining(USER) == 2
            gets = hub.count(GET)
            with pytest.raises(PullLimitReached) as caught:
                await client.get_manifest(f"{ns}/app", digest)
            assert hub.count(GET) == gets  # refused here: nothing was sent
            message = str(caught.value)
            assert "2 of 5 pulls left in Hub's 21600-second window" in message
            assert "the floor of 2 pulls is kept in reserve" in message
            assert f"{ns}/app@{digest}" in message and "frees these pulls by" in message
            assert caught.value.retry_after_seconds == pytest.approx(21600, abs=5)
            head = await client.head_manifest(f"{ns}/app", "v1")  # HEADs still go, for free
            assert head is not None and head.digest == digest
            assert hub.remaining(USER) == 2
            hub.clock.advance(21600)  # the window has passed (and the registry tokens expired)
            assert (await client.get_manifest(f"{ns}/app", digest)).data == data
            assert hub.remaining(USER) == 4
            assert adapter.budget.refused == 1


async def test_a_429_is_one_clear_error_and_stops_the_gets(seawall: SeawallProcess) -> None:
    ns = namespace()
    with fake_hub(seawall, (ns,), pull_limit=2) as hub:
        cfg = hub_config(hub, rate_limit_floor="0")
        async with DockerHubAdapter(cfg, clock=hub.clock, **FAST) as adapter:
            digest, _ = await push_image(adapter, f"{ns}/app", "v1")
            async with DockerHubAdapter(cfg, clock=hub.clock, **FAST) as ci_runner:
                for _ in range(2):  # another user of the account spends the budget
                    await ci_runner.client().get_manifest(f"{ns}/app", digest)
            with pytest.raises(PullLimitReached) as caught:
                await adapter.client().get_manifest(f"{ns}/app", digest)
            error = caught.value
            assert error.status == 429 and error.code == "TOOMANYREQUESTS"
            assert "Docker Hub refused it (429 TOOMANYREQUESTS)" in str(error)
            assert "0 of 2 pulls left" in str(error)
            assert hub.answers(GET).get(429) == 1  # Retry-After of hours: not retried here
            with pytest.raises(PullLimitReached):
                await adapter.client().get_manifest(f"{ns}/app", digest)
            assert hub.answers(GET).get(429) == 1  # the second was refused before sending


async def test_request_throttling_is_not_the_pull_limit(seawall: SeawallProcess) -> None:
    ns = namespace()
    with fake_hub(seawall, (ns,), pull_limit=100) as hub:
        async with DockerHubAdapter(hub_config(hub), clock=hub.clock, **FAST) as adapter:
            digest, data = await push_image(adapter, f"{ns}/app", "v1")
            hub.throttle(1)  # a 429 without the pull limit's word: Hub's request throttling
            with pytest.raises(RateLimited) as caught:
                await adapter.client().get_manifest(f"{ns}/app", digest)
            assert not isinstance(caught.value, PullLimitReached)
            assert caught.value.retry_after_seconds == 3600
            assert (await adapter.client().get_manifest(f"{ns}/app", digest)).data == data
            assert hub.answers(GET) == {429: 1, 200: 1}


async def test_head_before_get(seawall: SeawallProcess) -> None:
    ns = namespace()
    with fake_hub(seawall, (ns,)) as hub:
        async with DockerHubAdapter(hub_config(hub), clock=hub.clock, **FAST) as adapter:
            client = adapter.client()
            digest, data = await push_image(adapter, f"{ns}/app", "v1")
            hub.reset_counts()
            got = await client.get_manifest(f"{ns}/app", "v1")
            assert (got.data, got.digest) == (data, digest)
            assert (hub.count(HEAD), hub.count(GET)) == (1, 1)
            with pytest.raises(NotFound):
                await client.get_manifest(f"{ns}/app", "no-such-tag")
            assert await source_referrers(client, f"{ns}/app", digest) == []  # the tag schema
            assert hub.count(GET) == 1  # neither a missing tag nor no referrers cost a pull
            assert hub.pulls(USER) == 1


@dataclass(frozen=True)
class HubSide(SyncSide):
    """A ``seawall sync`` side on the Hub fake (its Hub API at the fake's URL too)."""

    hub_url: str = ""
    tag_listing: str = "registry"
    clock: FakeClock | None = None

    def adapter(self) -> RegistryAdapter:
        config = EndpointConfig(
            self.base,
            username=self.username,
            password=self.password,
            options={"hub_url": self.hub_url, "tag_listing": self.tag_listing},
        )
        return DockerHubAdapter(config, clock=self.clock, **FAST)


@pytest.mark.parametrize(("tag_listing", "heads"), [("registry", 5), ("hub-api", 0)])
async def test_a_sync_of_unchanged_tags_costs_no_pull(
    seawall: SeawallProcess, tmp_path: Path, tag_listing: str, heads: int
) -> None:
    ns = namespace()
    with fake_hub(seawall, (ns,)) as hub:
        async with DockerHubAdapter(hub_config(hub), clock=hub.clock, **FAST) as adapter:
            digest, data = await push_image(adapter, f"{ns}/app", "1.0")
            for tag in ("1", "latest", "stable"):
                await adapter.client().put_manifest(f"{ns}/app", tag, data, mt.OCI_MANIFEST)
            other, _ = await push_image(adapter, f"{ns}/tool", "v1")
        src = HubSide(
            f"{hub.url}/{ns}", USER, PAT, hub_url=hub.url, tag_listing=tag_listing, clock=hub.clock
        )
        dst = SyncSide(f"{seawall.url}/{namespace()}", "admin", seawall.admin_password)
        hub.reset_counts()
        first = await sync_once(src, dst, tmp_path)
        assert first.status == "Succeed", first.tasks
        assert hub.count(GET) == 2  # one pull per manifest copied: app's and tool's
        hub.reset_counts()
        again = await sync_once(src, dst, tmp_path)
        assert again.status == "Succeed", again.tasks
        assert hub.count(GET) == 0  # nothing changed: no pull
        assert hub.count(HEAD) == heads  # a free HEAD per source tag, or the Hub API digests
        assert {t["reason"] for t in again.tasks} == {"identical at destination"}
        assert hub.count("GET /v2/repositories/{namespace}/") == 1
        tag_lists = hub.count("GET /v2/repositories/{namespace}/{repository}/tags/")
        assert tag_lists == (2 if tag_listing == "hub-api" else 0)
    assert digest != other
