"""``quay`` on the Quay fake in front of a real Seawall: the adapter conformance kit with a robot
account and an API token file, with an OAuth token alone, and with a robot and no API token
on a Quay that deletes tags and has no referrers API; then discovery paging, listing costs,
repository creation and the API's errors, from the outside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.base import EndpointConfig, RegistryAdapter
from adapters.oci.errors import Denied, NotFound, Unauthorized, Unsupported
from adapters.quay import QuayAdapter
from adapters.testing import AdapterConformance, push_image
from registry.oci import mediatypes as mt
from tests.support.fake_quay_world import FAST, LEGACY_ORG, ORG, USER, QuayWorld, quay_world
from tests.support.server import SeawallProcess

TAGS = "GET /api/v1/repository/{ns}/{repo}/tag/"
REPOS = "GET /api/v1/repository"
MANIFEST_ROUTES = ("GET /v2/{name}/manifests/{ref}", "HEAD /v2/{name}/manifests/{ref}")


@pytest.fixture(scope="module")
def world(seawall: SeawallProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuayWorld]:
    w = quay_world(seawall, tmp_path_factory.mktemp("quay"))
    yield w
    w.fake.stop()


@pytest.fixture(scope="module")
def legacy(
    seawall: SeawallProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[QuayWorld]:
    """An older Quay: tag deletes through /v2, no referrers API."""
    w = quay_world(
        seawall, tmp_path_factory.mktemp("quay-legacy"), v2_tag_delete=True, referrers_api=False
    )
    yield w
    w.fake.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class QuayConformance(AdapterConformance):
    repository_prefix = ORG
    lists_tag_digests = True  # the tag API: each tag's manifest_digest
    lists_media_types = False  # ... and neither media type
    lists_manifest_sizes = False  # ... nor the manifest's size


class TestQuayWithRobotAndApiToken(QuayConformance):
    @pytest.fixture
    async def adapter(self, world: QuayWorld) -> AsyncIterator[RegistryAdapter]:
        config = world.robot_config(create_repositories="true")
        async with QuayAdapter(config, **FAST) as adapter:
            yield adapter


class TestQuayWithOAuthToken(QuayConformance):
    @pytest.fixture
    async def adapter(self, world: QuayWorld) -> AsyncIterator[RegistryAdapter]:
        async with QuayAdapter(world.oauth_config(create_repositories="true"), **FAST) as adapter:
            yield adapter


class TestOlderQuayWithRobotOnly(AdapterConformance):
    """No API token: the registry's catalog and tag lists, a push creates the repository."""

    repository_prefix = LEGACY_ORG

    @pytest.fixture
    async def adapter(self, legacy: QuayWorld) -> AsyncIterator[RegistryAdapter]:
        async with QuayAdapter(legacy.legacy_config(), **FAST) as adapter:
            yield adapter


# -- behaviour beyond the kit ---------------------------------------------------------------------

pytestmark = pytest.mark.anyio


async def test_discovery_follows_next_page(world: QuayWorld) -> None:
    fake = world.fake
    ns = "paging"
    for i in range(5):
        fake.add_repository(ns, f"app{i}")
    fake.add_repository("elsewhere", "hidden")  # not the token's namespace
    token = fake.add_oauth_token("pager", [ns])
    before, fake.repo_page_size = fake.count(REPOS), 2
    try:
        async with QuayAdapter(EndpointConfig(fake.url, token=token)) as adapter:
            names, listings = await adapter.catalog_listings()
            narrowed, _ = await adapter.catalog_listings("paging/app3")
    finally:
        fake.repo_page_size = 100
    assert names == [f"{ns}/app{i}" for i in range(5)] and listings is None
    assert narrowed == [f"{ns}/app3"]
    # 3 pages of 'paging' per listing (5 repositories, 2 a page); the first also lists 'pager'
    assert fake.count(REPOS) - before == 3 + 1 + 3
    assert fake.count("GET /api/v1/user/") >= 2  # the token's namespaces: its own and 'paging'


async def test_discovery_of_given_namespaces_asks_no_user(world: QuayWorld) -> None:
    config = world.robot_config(namespaces=ORG)
    async with QuayAdapter(config, **FAST) as adapter:
        repo = f"{ORG}/given"
        world.fake.add_repository(*repo.split("/"))
        before = world.fake.count("GET /api/v1/user/")
        names, _ = await adapter.catalog_listings(ORG)
    assert repo in names
    assert world.fake.count("GET /api/v1/user/") == before


async def test_tag_listing_costs_no_manifest_requests(world: QuayWorld) -> None:
    config = world.robot_config(create_repositories="true")
    async with QuayAdapter(config, **FAST) as adapter:
        repo = f"{ORG}/listing"
        digest, data = await push_image(adapter, repo, "t0")
        for i in range(1, 5):
            await adapter.client().put_manifest(repo, f"t{i}", data, mt.OCI_MANIFEST)
        counts = world.fake.counts()
        tags, refs = await adapter.list_tag_refs(repo)
        after = world.fake.counts()
        api = adapter.api()
        assert api is not None
        paged_tags, paged_refs = await api.tag_refs(repo, page_size=2)
        with pytest.raises(NotFound):
            await adapter.list_tag_refs(f"{ORG}/no-such-repository")
    assert sorted(tags) == [f"t{i}" for i in range(5)]
    assert {r.digest for r in refs.values()} == {digest} and sorted(refs) == sorted(tags)
    for route in MANIFEST_ROUTES:
        assert after.get(route, 0) == counts.get(route, 0), route
    assert after[TAGS] - counts.get(TAGS, 0) == 1
    assert (paged_tags, paged_refs) == (tags, refs)
    assert world.fake.count(TAGS) - after[TAGS] == 3 + 1  # 5 tags, 2 a page; then the 404


async def test_repository_is_created_on_push_with_its_visibility(world: QuayWorld) -> None:
    config = world.robot_config(create_repositories="true", visibility="public")
    async with QuayAdapter(config, **FAST) as adapter:
        repo = f"{ORG}/created-public"
        before = world.fake.count("POST /api/v1/repository")
        await adapter.prepare_repository(repo)
        await adapter.prepare_repository(repo)  # known now: no request
        digest, _ = await push_image(adapter, repo, "v1")
        caps = await adapter.current_capabilities(repo)
    created = world.fake.repositories[repo]
    assert created.public and created.description == QuayAdapter.repository_description
    assert world.fake.count("POST /api/v1/repository") - before == 1
    assert world.fake.count("GET /api/v1/repository/{ns}/{repo}") >= 1
    assert caps.create_namespace is True and digest.startswith("sha256:")


async def test_a_missing_repository_is_not_created_unless_configured(world: QuayWorld) -> None:
    async with QuayAdapter(world.robot_config(), **FAST) as adapter:
        with pytest.raises(NotFound, match="--create-repositories true"):
            await adapter.prepare_repository(f"{ORG}/not-created")
        assert (await adapter.current_capabilities()).create_namespace is False
    assert f"{ORG}/not-created" not in world.fake.repositories


async def test_a_refused_tag_delete_goes_through_the_api_once_refused(world: QuayWorld) -> None:
    fake = world.fake
    async with QuayAdapter(world.robot_config(create_repositories="true"), **FAST) as adapter:
        repo = f"{ORG}/deletes"
        _, data = await push_image(adapter, repo, "a")
        for tag in ("b", "c"):
            await adapter.client().put_manifest(repo, tag, data, mt.OCI_MANIFEST)
        v2, api = (
            "DELETE /v2/{name}/manifests/{ref}",
            "DELETE /api/v1/repository/{ns}/{repo}/tag/{tag}",
        )
        before_v2, before_api = fake.answers(v2).get(405, 0), fake.answers(api).get(204, 0)
        await adapter.client().delete_tag(repo, "a")
        await adapter.client().delete_tag(repo, "b")  # straight to the API now
        tags, _ = await adapter.list_tag_refs(repo)
        with pytest.raises(NotFound):
            await adapter.client().delete_tag(repo, "a")
    assert tags == ["c"]
    assert fake.answers(v2).get(405, 0) - before_v2 == 1
    assert fake.answers(api).get(204, 0) - before_api == 2


async def test_without_an_api_token_a_refused_tag_delete_says_how(world: QuayWorld) -> None:
    world.fake.add_repository(ORG, "no-api")
    user, token = world.robot
    config = EndpointConfig(world.fake.url, username=user, password=token)
    async with QuayAdapter(config, **FAST) as adapter:
        await push_image(adapter, f"{ORG}/no-api", "v1")
        with pytest.raises(Unsupported, match="--api-token-file"):
            await adapter.client().delete_tag(f"{ORG}/no-api", "v1")
        assert await adapter.client().head_manifest(f"{ORG}/no-api", "v1") is not None


async def test_api_errors_say_what_and_what_next(world: QuayWorld) -> None:
    fake = world.fake
    read_only = fake.add_oauth_token(USER, [ORG], scopes=["repo:read", "user:read"])
    create = {"create_repositories": "true"}
    async with QuayAdapter(
        EndpointConfig(fake.url, token=read_only, options=tuple(create.items()))
    ) as adapter:
        with pytest.raises(Denied, match=r"Unauthorized \(the OAuth token lacks the scope"):
            await adapter.prepare_repository(f"{ORG}/refused")
    async with QuayAdapter(EndpointConfig(fake.url, token="revoked"), **FAST) as adapter:
        with pytest.raises(Unauthorized, match="The access token provided is invalid"):
            await adapter.catalog_listings()
        ok, detail = await adapter.health()
    assert not ok and detail
    assert f"{ORG}/refused" not in fake.repositories
