"""``google-gar`` and ``google-gcr`` against a fake of Google's own parts (token exchanges,
``tags/list`` extension, Artifact Registry API) in front of a real Seawall: the shared adapter
kit, discovery through the API, listings with digests at one request per repository,
repositories that must exist, and deletes the Google way."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest

from adapters.base import RegistryAdapter
from adapters.google_gar import GarAdapter, GcrAdapter
from adapters.oci.errors import NotFound, RequestRejected
from adapters.testing import AdapterConformance, push_image
from engine.listing import list_repositories, list_side
from registry.oci import mediatypes as mt
from tests.support.google_world import FAST, PROJECT, REPOSITORY, GoogleWorld, google_world
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def gar_world(seawall: SeawallProcess) -> Iterator[GoogleWorld]:
    with google_world(seawall, "gar") as world:
        yield world


@pytest.fixture(scope="module")
def gcr_world(seawall: SeawallProcess) -> Iterator[GoogleWorld]:
    with google_world(seawall, "gcr") as world:
        yield world


@pytest.fixture
def world(seawall: SeawallProcess) -> Iterator[GoogleWorld]:
    """A GAR fake of the test's own (its counters and settings are the test's)."""
    with google_world(seawall, "gar") as w:
        yield w


class GoogleKit(AdapterConformance):
    lists_tag_digests = True
    lists_manifest_sizes = False  # Google's tags/list map carries no manifest sizes


class TestGarOnFakeGoogle(GoogleKit):
    catalog_lists_tags = True

    def repository_name(self, adapter: RegistryAdapter) -> str:
        return f"{PROJECT}/{REPOSITORY}/t{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    async def adapter(self, gar_world: GoogleWorld) -> AsyncIterator[RegistryAdapter]:
        async with GarAdapter(gar_world.config(), **FAST) as adapter:
            yield adapter


class TestGcrOnFakeGoogle(GoogleKit):
    repository_prefix: ClassVar[str] = PROJECT

    @pytest.fixture
    async def adapter(self, gcr_world: GoogleWorld) -> AsyncIterator[RegistryAdapter]:
        async with GcrAdapter(gcr_world.config(), **FAST) as adapter:
            yield adapter


# -- discovery and listings ------------------------------------------------------------------


async def push_corpus(adapter: RegistryAdapter, base: str, repos: int, tags: int) -> list[str]:
    names = [f"{base}/app{i}" for i in range(repos)]
    for name in names:
        _, data = await push_image(adapter, name, "t0")
        for t in range(1, tags):
            await adapter.client().put_manifest(name, f"t{t}", data, mt.OCI_MANIFEST)
    return names


async def test_discovery_lists_repositories_images_and_digests_through_the_api(
    world: GoogleWorld,
) -> None:
    fake = world.fake
    fake.create_repository(PROJECT, "other")
    fake.create_repository(PROJECT, "jars", fmt="MAVEN")
    async with GarAdapter(world.config(), **FAST) as gar:
        names = await push_corpus(gar, f"{PROJECT}/{REPOSITORY}", repos=5, tags=8)
        await push_corpus(gar, f"{PROJECT}/other", repos=1, tags=1)
        fake.reset_counts()
        found, listings = await gar.catalog_listings("")
        assert found == sorted([*names, f"{PROJECT}/other/app0"])
        assert listings is not None
        tags, refs = listings[names[0]]
        assert tags == [f"t{i}" for i in range(8)]
        head = await gar.client().head_manifest(names[0], "t3")
        assert head is not None and refs["t3"].digest == head.digest
        # one repositories page, one dockerImages page per Docker repository (not the Maven one)
        assert fake.counts["api_repositories"] == 1
        assert fake.counts["api_docker_images"] == 2
        assert fake.total("manifest", "tags_list", "catalog") == 1  # the HEAD above
        fake.reset_counts()
        only, _ = await gar.catalog_listings(f"{PROJECT}/other/")
        assert only == [f"{PROJECT}/other/app0"]
        assert fake.counts["api_docker_images"] == 1  # the prefix rules out "images"


async def test_a_no_op_listing_costs_one_request_per_page_not_one_per_tag(
    world: GoogleWorld,
) -> None:
    """What the engine lists for a pull from GAR: the API's pages; no tags/list, no HEAD."""
    fake = world.fake
    async with GarAdapter(world.config(), **FAST) as gar:
        names = await push_corpus(gar, f"{PROJECT}/{REPOSITORY}", repos=4, tags=8)
    async with GarAdapter(world.config(), **FAST) as gar:  # a fresh client: tokens included
        fake.reset_counts()
        repos, preloaded = await list_repositories(gar, lambda n: True)
        listing = await list_side(gar, repos, preloaded=preloaded)
    assert listing.complete and sorted(listing.tags) == names
    assert all(len(t) == 8 for t in listing.tags.values())
    assert dict(fake.counts) == {"oauth_token": 1, "api_repositories": 1, "api_docker_images": 1}


async def test_api_listings_follow_page_tokens(world: GoogleWorld) -> None:
    fake = world.fake
    for i in range(2):
        fake.create_repository(PROJECT, f"extra{i}")
    fake.api_max_page_size = 2
    async with GarAdapter(world.config(), **FAST) as gar:
        names = await push_corpus(gar, f"{PROJECT}/{REPOSITORY}", repos=5, tags=1)
        fake.reset_counts()
        found, _ = await gar.catalog_listings(f"{PROJECT}/")
    assert found == names
    assert fake.counts["api_repositories"] == 2  # 3 repositories, 2 a page
    assert fake.counts["api_docker_images"] == 3 + 2  # 5 images; the 2 empty ones 1 each


async def test_gcr_lists_tags_with_digests_in_one_request_per_repository(
    gcr_world: GoogleWorld,
) -> None:
    fake = gcr_world.fake
    base = f"{PROJECT}/l{uuid.uuid4().hex[:8]}"
    async with GcrAdapter(gcr_world.config(), **FAST) as gcr:
        names = await push_corpus(gcr, base, repos=3, tags=8)
    async with GcrAdapter(gcr_world.config(), **FAST) as gcr:
        fake.reset_counts()
        repos, preloaded = await list_repositories(gcr, lambda n: n.startswith(base))
        listing = await list_side(gcr, repos, preloaded=preloaded)
    assert sorted(listing.tags) == names and listing.complete
    assert fake.counts["tags_list"] == 3 and fake.counts["manifest"] == 0
    assert fake.counts["catalog"] == 2  # a fresh client's first request meets the challenge
    assert fake.counts["registry_token"] == 1 + 3  # one per scope: the catalog, each repo


async def test_gcr_discovery_keeps_to_the_project(gcr_world: GoogleWorld) -> None:
    async with GcrAdapter(gcr_world.config(), **FAST) as gcr:
        await push_image(gcr, "other-project/app", "v1")
        await push_image(gcr, f"{PROJECT}/mine", "v1")
    async with GcrAdapter(gcr_world.config(project=PROJECT), **FAST) as gcr:
        names, listings = await gcr.catalog_listings("")
    assert f"{PROJECT}/mine" in names and listings is None
    assert all(n.startswith(PROJECT + "/") for n in names)


# -- repositories that must exist --------------------------------------------------------------


async def test_a_missing_artifact_registry_repository_is_a_clear_reason(
    world: GoogleWorld,
) -> None:
    async with GarAdapter(world.config(), **FAST) as gar:
        with pytest.raises(NotFound, match="gcloud artifacts repositories create nope"):
            await gar.prepare_repository(f"{PROJECT}/nope/app")
        assert world.fake.counts["api_repository"] == 1
        with pytest.raises(NotFound):  # a push would fail the same way, at the registry
            await gar.client().put_manifest(f"{PROJECT}/nope/app", "v1", b"{}", mt.OCI_MANIFEST)


async def test_an_existing_repository_is_checked_once(world: GoogleWorld) -> None:
    async with GarAdapter(world.config(), **FAST) as gar:
        for image in ("a", "b", "c/d"):
            await gar.prepare_repository(f"{PROJECT}/{REPOSITORY}/{image}")
    assert world.fake.counts["api_repository"] == 1


async def test_create_repositories_creates_a_missing_one(world: GoogleWorld) -> None:
    class QuickGar(GarAdapter):
        operation_poll_seconds = 0.0

    world.fake.create_operation_polls = 2  # the operation is done at the second poll
    async with QuickGar(world.config(create_repositories="true"), **FAST) as gar:
        assert (await gar.current_capabilities()).create_namespace
        digest, _ = await push_image(gar, f"{PROJECT}/fresh/app", "v1")
        assert await gar.client().head_manifest(f"{PROJECT}/fresh/app", "v1") is not None
    assert world.fake.counts["api_create_repository"] == 1
    assert world.fake.counts["api_operation"] == 2
    assert (PROJECT, "fresh") in world.fake.repositories
    assert digest


async def test_a_remote_repository_takes_no_push(world: GoogleWorld) -> None:
    world.fake.create_repository(PROJECT, "mirror", mode="REMOTE_REPOSITORY")
    async with GarAdapter(world.config(), **FAST) as gar:
        with pytest.raises(RequestRejected, match="remote repository"):
            await gar.prepare_repository(f"{PROJECT}/mirror/app")


# -- deletes -------------------------------------------------------------------------------------


async def test_deleting_a_tagged_manifest_untags_it_first(world: GoogleWorld) -> None:
    repo = f"{PROJECT}/{REPOSITORY}/del"
    async with GarAdapter(world.config(), **FAST) as gar:
        client = gar.client()
        digest, data = await push_image(gar, repo, "v1")
        await client.put_manifest(repo, "v2", data, mt.OCI_MANIFEST)
        world.fake.reset_counts()
        await client.delete_manifest(repo, digest)
        assert await client.head_manifest(repo, digest) is None
        assert await client.list_tags(repo) == []
    # refused once (GOOGLE_MANIFEST_DANGLING_TAG), one listing, two untags, the delete
    assert world.fake.counts["manifest"] == 1 + 2 + 1 + 1  # + the HEAD
    assert world.fake.counts["tags_list"] == 2
