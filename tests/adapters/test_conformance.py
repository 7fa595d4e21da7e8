"""The adapter conformance kit on real registries: ``docker-registry`` on CNCF distribution 2.8
(htpasswd Basic auth, deletes on) and ``seawall`` on a real Seawall (Docker token flow); and
what the base class does without a registry (health bounds, names, client settings)."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest

from adapters.base import (
    AdapterError,
    Capabilities,
    EndpointConfig,
    InvalidRepositoryName,
    RegistryAdapter,
)
from adapters.generic import DockerRegistryAdapter
from adapters.seawall import SeawallAdapter
from adapters.testing import AdapterConformance
from tests.adapters.conftest import Remote

FAST = {"backoff_base_seconds": 0.01}  # client options: no slow retries in tests


class TestDockerRegistryOnDistribution(AdapterConformance):
    @pytest.fixture
    async def adapter(self, oci_distribution_basic: Remote) -> AsyncIterator[RegistryAdapter]:
        r = oci_distribution_basic
        config = EndpointConfig(r.url, username=r.username, password=r.password)
        async with DockerRegistryAdapter(config, **FAST) as adapter:
            yield adapter


class TestSeawallOnSeawall(AdapterConformance):
    lists_tag_digests = True
    catalog_lists_tags = True

    @pytest.fixture
    async def adapter(self, oci_seawall: Remote) -> AsyncIterator[RegistryAdapter]:
        config = EndpointConfig(oci_seawall.url, username="admin", password=oci_seawall.password)
        async with SeawallAdapter(config, **FAST) as adapter:
            yield adapter


# -- the base class without a registry ---------------------------------------------------------


class HubLike(RegistryAdapter):
    type: ClassVar[str] = "hub-like"
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=False,
        referrers_api=False,
        blob_mount=True,
        chunked_upload=True,
        delete_tag=False,
        delete_manifest=True,
        create_namespace=False,
        min_path_components=2,
        max_path_components=2,
        monolithic_max_bytes=20_000_000,
        requests_per_second=5.0,
        max_in_flight=4,
    )
    health_timeout_seconds: ClassVar[float] = 0.3


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


@pytest.mark.anyio
async def test_health_of_a_silent_registry_is_bounded(silent_port: int) -> None:
    async with HubLike(EndpointConfig(f"http://127.0.0.1:{silent_port}")) as adapter:
        ok, detail = await adapter.health()
    assert not ok
    assert "within 0.3s" in detail


@pytest.mark.anyio
async def test_health_of_an_unreachable_registry_says_why() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with DockerRegistryAdapter(EndpointConfig(f"http://127.0.0.1:{port}"), retries=0) as a:
        ok, detail = await a.health()
    assert not ok
    assert "127.0.0.1" in detail


def test_client_takes_limits_from_capabilities_and_options_win() -> None:
    adapter = HubLike(EndpointConfig("https://hub.example", username="u", password="p"))
    client = adapter.client()
    assert client.monolithic_max_bytes == 20_000_000
    assert client.chunk_bytes == 20_000_000
    assert client.session._requests_per_second == 5.0
    assert client.session._max_in_flight == 4
    tuned = HubLike(EndpointConfig("https://hub.example"), chunk_bytes=1 << 20)
    assert tuned.client().chunk_bytes == 1 << 20


def test_path_depth_rules_say_what_to_change() -> None:
    adapter = HubLike(EndpointConfig("https://hub.example"))
    adapter.check_name("library/nginx")
    with pytest.raises(InvalidRepositoryName, match=r"'nginx' has 1 path component.*exactly 2"):
        adapter.check_name("nginx")
    with pytest.raises(InvalidRepositoryName, match="dest_namespace"):
        adapter.check_name("a/b/c")
    with pytest.raises(InvalidRepositoryName, match="lowercase"):
        adapter.check_name("Library/nginx")


def test_capabilities_are_validated() -> None:
    base = HubLike.capabilities
    with pytest.raises(ValueError, match="min_path_components"):
        dataclasses.replace(base, min_path_components=0)
    with pytest.raises(ValueError, match="max_path_components"):
        dataclasses.replace(base, min_path_components=3)
    with pytest.raises(ValueError, match="max_in_flight"):
        dataclasses.replace(base, max_in_flight=0)


def test_an_incomplete_adapter_cannot_be_used() -> None:
    class NoType(RegistryAdapter):
        capabilities = HubLike.capabilities

    with pytest.raises(TypeError, match="no type name"):
        NoType(EndpointConfig("https://x.example"))
    with pytest.raises(TypeError, match="probe_catalog"):

        class BadProbe(HubLike):
            probed = frozenset({"catalog"})


@pytest.mark.anyio
async def test_declared_capability_needs_no_probe_request() -> None:
    async with SeawallAdapter(EndpointConfig("http://127.0.0.1:1"), retries=0) as adapter:
        assert await adapter.probe_referrers_api() is True
        current = await adapter.current_capabilities()
        assert current == SeawallAdapter.capabilities
        assert adapter.client().stats().requests == 0


def test_harbor_credentials_map_to_endpoint_config() -> None:
    basic = EndpointConfig.from_harbor_credential(
        "https://r.example", credential_type="basic", access_key="u", access_secret="s3cret"
    )
    assert (basic.username, basic.password, basic.token) == ("u", "s3cret", None)
    assert "s3cret" not in repr(basic)
    oauth = EndpointConfig.from_harbor_credential(
        "https://r.example", credential_type="oauth", access_key="", access_secret="tok"
    )
    assert (oauth.username, oauth.token) == (None, "tok")
    anonymous = EndpointConfig.from_harbor_credential(
        "https://r.example", credential_type="basic", access_key="", access_secret=""
    )
    assert (anonymous.username, anonymous.password, anonymous.token) == (None, None, None)
    with pytest.raises(AdapterError, match="basic or oauth"):
        EndpointConfig.from_harbor_credential(
            "https://r.example", credential_type="ntlm", access_key="", access_secret=""
        )


def test_info_is_harbors_registry_info() -> None:
    assert SeawallAdapter.info() == {
        "type": "seawall",
        "description": SeawallAdapter.description,
        "supported_resource_filters": [
            {"type": "name", "style": "input"},
            {"type": "tag", "style": "input"},
        ],
        "supported_triggers": ["manual", "scheduled", "event_based"],
        "supported_copy_by_chunk": True,
        "options": [o.describe() for o in SeawallAdapter.options_spec],  # the conflict rule
    }
    info = HubLike.info()
    info["supported_resource_filters"][0]["type"] = "changed"
    assert HubLike.info()["supported_resource_filters"][0]["type"] == "name"
