"""``gitlab`` beyond the kit, on the GitLab fake in front of a real CNCF distribution: discovery
and tags through GitLab's paged container registry API, registry JWTs asked again before they
expire (the fake's clock, injected), access tokens that expire or are revoked, pushes outside
any project, and deploy tokens (registry only)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from adapters.base import InvalidRepositoryName
from adapters.gitlab import GitLabAdapter
from adapters.oci.credentials import CredentialsUnavailable
from adapters.oci.errors import NotFound, OciError, ServerError, Unsupported
from adapters.testing import push_blob, push_image
from registry.oci import mediatypes as mt
from tests.support.distribution import DistributionProcess
from tests.support.fake_gitlab import FakeGitLab
from tests.support.fake_gitlab_world import (
    DEPLOY_SECRET,
    DEPLOY_USER,
    FAST,
    GROUP,
    PROJECT,
    config,
    fake_gitlab,
    fresh_project,
)

pytestmark = pytest.mark.anyio

REPOSITORIES = "GET /api/v4/groups/:id/registry/repositories"
TAGS = "GET /api/v4/projects/:id/registry/repositories/:repository_id/tags"
TAG = "GET /api/v4/projects/:id/registry/repositories/:repository_id/tags/:tag_name"
HEAD = "HEAD /v2/{name}/manifests/{ref}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionProcess]:
    with DistributionProcess(tmp_path_factory.mktemp("gitlab-registry")) as d:
        yield d


@pytest.fixture
def gitlab(registry: DistributionProcess) -> Iterator[FakeGitLab]:
    with fake_gitlab(registry) as fake:  # the test's own: its clock, its counts
        yield fake


def _name() -> str:
    return f"i{uuid.uuid4().hex[:10]}"


# -- discovery -----------------------------------------------------------------------------------


async def test_discovery_follows_gitlabs_pages(gitlab: FakeGitLab) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    project, nested = fresh_project(gitlab, group), fresh_project(gitlab, f"{group}/sub")
    names = sorted([project, *(f"{project}/img{i}" for i in range(2)), f"{nested}/x/y"])
    async with GitLabAdapter(config(gitlab, group=group), **FAST) as adapter:
        for name in names:
            await push_image(adapter, name, "v1")
        gitlab.max_per_page = 2
        gitlab.reset_counts()
        found, listings = await adapter.catalog_listings()
        assert (found, listings) == (names, None)
        assert gitlab.answers(REPOSITORIES) == {200: 2}  # 4 repositories, 2 a page
        assert gitlab.count("GET /v2/_catalog") == 0
        found, _ = await adapter.catalog_listings(f"{nested}/")
        assert found == [f"{nested}/x/y"]
    async with GitLabAdapter(config(gitlab, project=project), **FAST) as adapter:
        found, _ = await adapter.catalog_listings()
        assert found == [n for n in names if not n.startswith(nested)]
    async with GitLabAdapter(config(gitlab), **FAST) as adapter:  # no scope: the prefix's group
        found, _ = await adapter.catalog_listings(f"{group}/")
        assert found == names
        with pytest.raises(Unsupported, match="set --group"):
            await adapter.catalog_listings()
        with pytest.raises(NotFound, match="404 Group Not Found"):
            await adapter.catalog_listings("no-such-group/")


async def test_tags_come_with_their_digests_across_pages(gitlab: FakeGitLab) -> None:
    repo = f"{fresh_project(gitlab)}/app"
    async with GitLabAdapter(config(gitlab), **FAST) as adapter:
        digest, data = await push_image(adapter, repo, "v1")
        for tag in ("v2", "v3"):
            await adapter.client().put_manifest(repo, tag, data, mt.OCI_MANIFEST)
        gitlab.max_per_page = 2
        gitlab.reset_counts()
        tags, refs = await adapter.list_tag_refs(repo)
        assert sorted(tags) == ["v1", "v2", "v3"]
        assert {t: r.digest for t, r in refs.items()} == dict.fromkeys(tags, digest)
        assert gitlab.answers(TAGS) == {200: 2}
        assert gitlab.answers(TAG) == {200: 3}
        assert gitlab.count("GET /v2/{name}/tags/list") == 0
        await adapter.client().delete_tag(repo, "v2")
        assert sorted((await adapter.list_tag_refs(repo))[0]) == ["v1", "v3"]
        with pytest.raises(NotFound, match="no tag 'v2'"):
            await adapter.client().delete_tag(repo, "v2")
        with pytest.raises(NotFound):
            await adapter.list_tag_refs(f"{repo}/never-pushed")


async def test_a_failing_tag_detail_is_raised_as_one_error(gitlab: FakeGitLab) -> None:
    repo = f"{fresh_project(gitlab)}/app"
    async with GitLabAdapter(config(gitlab), retries=1, **FAST) as adapter:
        _, data = await push_image(adapter, repo, "v1")
        await adapter.client().put_manifest(repo, "v2", data, mt.OCI_MANIFEST)
        gitlab.fail(TAG, times=10)
        with pytest.raises(ServerError, match="500 Internal Server Error"):
            await adapter.list_tag_refs(repo)


# -- tokens --------------------------------------------------------------------------------------


async def test_registry_jwts_are_asked_again_before_they_expire(gitlab: FakeGitLab) -> None:
    repo = f"{PROJECT}/{_name()}"
    async with GitLabAdapter(config(gitlab), clock=gitlab.clock, **FAST) as adapter:
        digest, _ = await push_image(adapter, repo, "v1")
        client = adapter.client()
        head = await client.head_manifest(repo, "v1")  # a pull scope's JWT
        assert head is not None and head.digest == digest
        issued = gitlab.jwt.jwts_issued
        gitlab.reset_counts()
        assert await client.head_manifest(repo, "v1") is not None
        assert gitlab.jwt.jwts_issued == issued  # cached
        gitlab.clock.advance(290)  # the 300-second JWTs are about to expire
        assert await client.head_manifest(repo, "v1") is not None
        assert gitlab.jwt.jwts_issued == issued + 1
        assert gitlab.answers(HEAD) == {200: 2}  # asked before expiry: no 401 on the way
        gitlab.jwt.revoke_jwts()  # GitLab forgot them: the 401 gets a new one
        assert await client.head_manifest(repo, "v1") is not None
        assert gitlab.answers(HEAD) == {200: 3, 401: 1}
        assert adapter.token_checks == 1  # the access token was checked once, at the start


@pytest.mark.parametrize("how", ["expired", "revoked"])
async def test_an_access_token_that_stops_working_says_so(gitlab: FakeGitLab, how: str) -> None:
    today = datetime.fromtimestamp(gitlab.clock(), UTC).date()
    record = gitlab.add_token("glpat-short", "api", name="short", expires_at=today)
    repo = f"{PROJECT}/{_name()}"
    cfg = config(gitlab, password="glpat-short")
    async with GitLabAdapter(cfg, clock=gitlab.clock, **FAST) as adapter:
        await push_image(adapter, repo, "v1")
        if how == "expired":
            gitlab.clock.advance(2 * 86400)  # past the end of its last day
            said = "Token has expired"
        else:
            record.revoked = True
            gitlab.jwt.revoke_jwts()
            said = "Token was revoked"
        with pytest.raises(CredentialsUnavailable) as caught:
            await adapter.client().head_manifest(repo, "v1")
        assert said in str(caught.value) and "read_registry" in str(caught.value)
        ok, detail = await adapter.health()
        assert not ok and said in detail


async def test_a_token_without_registry_scopes_is_refused_up_front(gitlab: FakeGitLab) -> None:
    gitlab.add_token("glpat-api-read", "read_api", name="reader")
    async with GitLabAdapter(config(gitlab, password="glpat-api-read"), **FAST) as adapter:
        ok, detail = await adapter.health()
    assert not ok and "needs read_registry" in detail
    assert gitlab.count("GET /jwt/auth") == 0


# -- projects ------------------------------------------------------------------------------------


async def test_a_push_outside_any_project_fails_loudly(gitlab: FakeGitLab) -> None:
    async with GitLabAdapter(config(gitlab), **FAST) as adapter:
        with pytest.raises(NotFound, match=r"no project .* owns 'nogroup/noproject/img'"):
            await adapter.prepare_repository("nogroup/noproject/img")
        with pytest.raises(InvalidRepositoryName, match="at most 3"):
            await adapter.prepare_repository(f"{PROJECT}/a/b/c/d")
        await adapter.prepare_repository(f"{PROJECT}/a/b/c")
        with pytest.raises(OciError):  # GitLab's JWT grants nothing there: the registry refuses
            await push_blob(adapter, "nogroup/noproject/img", b"x" * 10)


async def test_a_deploy_token_uses_the_registry_only(gitlab: FakeGitLab) -> None:
    repo = f"{PROJECT}/{_name()}"
    cfg = config(gitlab, DEPLOY_USER, DEPLOY_SECRET, group=GROUP)
    async with GitLabAdapter(cfg, **FAST) as adapter:
        await push_image(adapter, repo, "v1")
        tags, refs = await adapter.list_tag_refs(repo)
        assert (tags, refs) == (["v1"], {})  # the registry's tag list: the engine HEADs
        with pytest.raises(Unsupported, match="deploy token"):
            await adapter.catalog_listings()
        assert (await adapter.health())[0]
    assert not [r for r in gitlab.counts() if r.split()[1].startswith("/api/v4")]
    wrong = config(gitlab, "gitlab+deploy-token-8", DEPLOY_SECRET)
    async with GitLabAdapter(wrong, **FAST) as adapter:
        ok, detail = await adapter.health()
    assert not ok and "Access denied" in detail
