"""``docker-hub`` on the Hub fake in front of a real Seawall: the adapter conformance kit with a
Docker ID and access token; discovery through the Hub API; ``library/`` names; Hub's name rules
and every bad endpoint refused before anything is sent; anonymous pulls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName, RegistryAdapter
from adapters.docker_hub import DockerHubAdapter
from adapters.oci.errors import NotFound, Unauthorized, Unsupported
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.registry import get
from adapters.testing import AdapterConformance, push_blob, push_image
from registry.oci import mediatypes as mt
from tests.support.client import client as oci_client
from tests.support.client import push_image as push_raw_image
from tests.support.fake_docker_hub import FakeDockerHub
from tests.support.fake_docker_hub_world import (
    FAST,
    PAT,
    USER,
    anonymous_config,
    fake_hub,
    hub_config,
    namespace,
)
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def hub(seawall: SeawallProcess) -> Iterator[FakeDockerHub]:
    with fake_hub(seawall, ("conformance", "library", "team")) as fake:
        yield fake


class TestDockerHub(AdapterConformance):
    @pytest.fixture
    async def adapter(self, hub: FakeDockerHub) -> AsyncIterator[RegistryAdapter]:
        async with DockerHubAdapter(hub_config(hub), clock=hub.clock, **FAST) as adapter:
            yield adapter


# -- declaration ---------------------------------------------------------------------------------


def test_declared_capabilities_are_hubs() -> None:
    caps = DockerHubAdapter.capabilities
    assert get("docker-hub") is DockerHubAdapter
    assert (caps.min_path_components, caps.max_path_components) == (2, 2)
    assert (caps.catalog, caps.delete_tag, caps.blob_mount, caps.chunked_upload) == (
        True,
        True,
        True,
        True,
    )
    assert (caps.referrers_api, caps.delete_manifest, caps.create_namespace) == (
        False,
        False,
        False,
    )
    info = DockerHubAdapter.info()
    assert {o["name"] for o in info["options"]} == {
        "hub_url",
        "namespaces",
        "rate_limit_floor",
        "tag_listing",
    }
    assert info["supported_triggers"] == ["manual", "scheduled"]


@pytest.mark.parametrize(
    "url",
    [
        "https://registry-1.docker.io",
        "https://docker.io",
        "https://index.docker.io/",
        "https://registry.hub.docker.com",
        "https://hub.docker.com",
        "https://index.docker.io/v2/",
    ],
)
def test_every_name_of_hubs_registry_is_registry_1(url: str) -> None:
    adapter = DockerHubAdapter(EndpointConfig(url))
    assert adapter.registry_url() == "https://registry-1.docker.io"
    assert adapter.settings.hub_url == "https://hub.docker.com"
    assert adapter.client().base_url == "https://registry-1.docker.io"


# -- bad input is refused before anything is sent -------------------------------------------------

HUB = "https://registry-1.docker.io"


def config(
    url: str = HUB, user: str | None = None, password: str | None = None, **options: str
) -> EndpointConfig:
    return EndpointConfig(url, username=user, password=password, options=options)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (config("gopher://docker.io"), "use http:// or https://"),
        (config("http://registry-1.docker.io"), "serves https on port 443"),
        (config("https://docker.io:5000"), "serves https on port 443"),
        (config("https://docker.io/library/alpine"), "give the registry only"),
        (config("https://registry.example"), "give --hub-url"),
        (config(HUB, None, "secret"), "a password without a username"),
        (config(HUB, "me", None), "needs a personal access token"),
        (config(hub_url="ftp://hub"), "give an http(s)://host URL"),
        (config(namespaces="MyOrg"), "is not valid"),
        (config(namespaces="a,,b"), "is not valid"),
        (config(rate_limit_floor="-1"), "is not valid"),
        (config(rate_limit_floor="lots"), "is not valid"),
        (config(tag_listing="catalog"), "use one of registry, hub-api"),
        (config(colour="blue"), "have no option 'colour'"),
        (EndpointConfig(HUB, token="a-bearer-token"), "takes no bearer token"),
    ],
)
def test_bad_endpoints_are_refused(cfg: EndpointConfig, message: str) -> None:
    with pytest.raises(InvalidEndpoint) as caught:
        DockerHubAdapter.check_config(cfg)
    assert message in str(caught.value)
    with pytest.raises(InvalidEndpoint):
        DockerHubAdapter(cfg)


def test_good_endpoints_are_taken() -> None:
    DockerHubAdapter.check_config(config(HUB, "me", "dckr_pat_x", namespaces="myorg,me"))
    DockerHubAdapter.check_config(config(rate_limit_floor="0"))
    DockerHubAdapter.check_config(config("http://127.0.0.1:5000", hub_url="http://127.0.0.1:5001"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("alpine", "exactly NAMESPACE/REPOSITORY"),
        ("team/app/api", "'team/app/api' -> 'myorg/api' with namespace myorg and replace count 2"),
        ("a/b/c/d", "replace count 3"),
        ("library/alpine", "official images"),
        ("team/x", "at least 2 characters"),
        ("Team/app", "is not valid"),
        ("team//app", "is not valid"),
    ],
)
def test_hub_names_are_namespace_slash_repository(name: str, message: str) -> None:
    adapter = DockerHubAdapter(config())
    with pytest.raises(InvalidRepositoryName) as caught:
        adapter.check_name(name)
    assert message in str(caught.value)


async def test_prepare_repository_checks_the_name_and_sends_nothing() -> None:
    adapter = DockerHubAdapter(config())  # no registry answers there: nothing may be sent
    await adapter.prepare_repository("team/app")
    with pytest.raises(InvalidRepositoryName):
        await adapter.prepare_repository("team/app/api")
    assert adapter.client().stats().requests == 0


# -- library/ and discovery -----------------------------------------------------------------------


async def test_one_component_names_read_library(
    hub: FakeDockerHub, seawall: SeawallProcess
) -> None:
    name = f"lib{namespace()}"
    with oci_client(seawall.url, "admin", seawall.admin_password) as c:  # Docker's own push
        digest, data = push_raw_image(c, f"library/{name}", "3.20", seed=name)
    async with DockerHubAdapter(hub_config(hub), clock=hub.clock, **FAST) as adapter:
        client = adapter.client()
        ref = await client.head_manifest(name, "3.20")
        assert ref is not None and ref.digest == digest
        assert (await client.get_manifest(name, "3.20")).data == data
        assert await client.list_tags(name) == ["3.20"]
        tags, refs = await adapter.list_tag_refs(name)
        assert (tags, refs) == (["3.20"], {})
    assert hub.count("HEAD /v2/{name}/manifests/{ref}") >= 1


async def test_the_hub_api_tag_listing_names_digests(hub: FakeDockerHub) -> None:
    cfg = hub_config(hub, tag_listing="hub-api")
    async with DockerHubAdapter(cfg, clock=hub.clock, **FAST) as adapter:
        client = adapter.client()
        digest, data = await push_image(adapter, "team/listed", "v1")
        await client.put_manifest("team/listed", "v2", data, mt.OCI_MANIFEST)
        hub.reset_counts()
        tags, refs = await adapter.list_tag_refs("team/listed")
        assert tags == ["v1", "v2"]
        assert refs == dict.fromkeys(tags, ManifestRef(digest, mt.OCI_MANIFEST, UNKNOWN_SIZE))
        assert hub.counts() == {
            "POST /v2/auth/token": 1,
            "GET /v2/repositories/{namespace}/{repository}/tags/": 1,
        }
        with pytest.raises(NotFound):
            await adapter.list_tag_refs("team/no-such-repository")


async def test_discovery_lists_the_filters_namespace_and_the_logins(hub: FakeDockerHub) -> None:
    async with DockerHubAdapter(hub_config(hub), clock=hub.clock, **FAST) as adapter:
        await push_image(adapter, "team/disc-a", "v1")
        await push_image(adapter, "team/disc-b", "v1")
        hub.reset_counts()
        assert adapter.discovery_namespaces("team/disc") == ["team"]
        assert adapter.discovery_namespaces("") == [USER]
        names, listings = await adapter.catalog_listings("team/disc")
        assert names == ["team/disc-a", "team/disc-b"] and listings is None
        names, _ = await adapter.catalog_listings("")  # the login's namespace: empty
        assert names == []
    assert hub.answers("POST /v2/auth/token") == {200: 1}  # one JWT for both listings
    assert hub.count("GET /v2/repositories/{namespace}/") == 2
    assert hub.count("GET /v2/_catalog") == 0


async def test_discovery_follows_hubs_pages(hub: FakeDockerHub, seawall: SeawallProcess) -> None:
    ns = namespace()
    with fake_hub(seawall, (ns,)) as mine:
        cfg = hub_config(mine, namespaces=ns)
        async with DockerHubAdapter(cfg, clock=mine.clock, **FAST) as adapter:
            for i in range(3):
                await push_image(adapter, f"{ns}/r{i:03d}", "v1")
            pages = "tests.support.fake_docker_hub_api.MAX_PAGE_SIZE"
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(pages, 2)
                names, _ = await adapter.catalog_listings("")
            assert names == [f"{ns}/r000", f"{ns}/r001", f"{ns}/r002"]
        assert mine.count("GET /v2/repositories/{namespace}/") == 2  # 2 + 1 by `next`


async def test_discovery_needs_a_namespace_and_names_the_fix(hub: FakeDockerHub) -> None:
    async with DockerHubAdapter(anonymous_config(hub), **FAST) as adapter:
        with pytest.raises(Unsupported) as caught:
            await adapter.catalog_listings("")
    assert "--namespaces" in str(caught.value)
    async with DockerHubAdapter(anonymous_config(hub, namespaces="nosuchns"), **FAST) as adapter:
        with pytest.raises(NotFound):
            await adapter.catalog_listings("")


# -- logins ---------------------------------------------------------------------------------------


async def test_anonymous_pulls_and_no_writes(hub: FakeDockerHub) -> None:
    async with DockerHubAdapter(hub_config(hub), clock=hub.clock, **FAST) as owner:
        _, data = await push_image(owner, "team/public", "v1")
    async with DockerHubAdapter(anonymous_config(hub), **FAST) as anonymous:
        assert (await anonymous.client().get_manifest("team/public", "v1")).data == data
        ok, detail = await anonymous.health()
        assert ok, detail
        with pytest.raises(Unauthorized):
            await anonymous.client().delete_tag("team/public", "v1")
        with pytest.raises(Unauthorized):  # the token service grants anonymous pulls only
            await push_blob(anonymous, "team/public", b"anonymous bytes")


async def test_the_hub_jwt_is_refreshed_before_it_expires(hub: FakeDockerHub) -> None:
    async with DockerHubAdapter(hub_config(hub), clock=hub.clock, **FAST) as adapter:
        await push_image(adapter, "team/jwt", "v1")
        await push_image(adapter, "team/jwt", "v2")
        api = adapter.api()
        await api.delete_tag("team/jwt", "v1")
        assert api.login is not None and api.login.logins == 1
        hub.clock.advance(hub.hub_token_seconds)  # the JWT has expired
        await api.delete_tag("team/jwt", "v2")
        assert api.login.logins == 2
        assert await adapter.client().list_tags("team/jwt") == []


async def test_an_older_hub_api_is_logged_in_to_through_users_login(
    seawall: SeawallProcess,
) -> None:
    ns = namespace()
    with fake_hub(seawall, (ns,)) as old:
        old.auth_token_route = False
        async with DockerHubAdapter(hub_config(old), clock=old.clock, **FAST) as adapter:
            await push_image(adapter, f"{ns}/app", "v1")
            await adapter.api().delete_tag(f"{ns}/app", "v1")
            old.clock.advance(old.hub_token_seconds)
            assert await adapter.catalog_listings(ns) == ([f"{ns}/app"], None)
        assert old.answers("POST /v2/auth/token") == {404: 1}  # asked once, then not again
        assert old.answers("POST /v2/users/login") == {200: 2}


async def test_a_wrong_access_token_says_so(hub: FakeDockerHub) -> None:
    cfg = EndpointConfig(hub.url, username=USER, password=PAT + "x", options={"hub_url": hub.url})
    async with DockerHubAdapter(cfg, **FAST) as adapter:
        with pytest.raises(Unauthorized) as caught:
            await adapter.api().delete_tag("team/any", "v1")
    assert "refused the login of 'hubuser'" in str(caught.value)
    assert "personal access token" in str(caught.value)
