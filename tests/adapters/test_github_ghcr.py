"""``github-ghcr`` on the GHCR fake (ghcr.io's token service and the GitHub Packages API) in
front of a real Seawall: the adapter conformance kit; discovery through the Packages API with
its paging; deletes that really delete (checked in the registry behind), refuse a tag shared
with other tags, fail on a token without ``delete:packages`` and on a delete GitHub answers
but does not apply; anonymous pulls of public packages; every bad input refused before
anything is sent."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName
from adapters.github_ghcr import GhcrAdapter
from adapters.github_ghcr_client import DeleteNotApplied
from adapters.oci.client import OciClient
from adapters.oci.errors import Denied, NotFound, RequestRejected, Unauthorized, Unsupported
from adapters.oci.types import UNKNOWN_SIZE, ManifestRef
from adapters.registry import get
from adapters.testing import AdapterConformance, push_image
from registry.oci import mediatypes as mt
from tests.support.fake_ghcr import FakeGhcr
from tests.support.fake_ghcr_world import FAST, config, fake_ghcr, owner
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def ghcr(seawall: SeawallProcess) -> Iterator[FakeGhcr]:
    with fake_ghcr(seawall, page_cap=2) as fake:  # two items a page: paging is exercised
        fake.add_owner("conformance")
        yield fake


@pytest.fixture
async def adapter(ghcr: FakeGhcr) -> AsyncIterator[GhcrAdapter]:
    async with GhcrAdapter(config(ghcr), **FAST) as a:
        yield a


class TestGhcrConformance(AdapterConformance):
    lists_tag_digests = True  # the package's versions: each tag's digest
    lists_media_types = False  # ... and nothing else
    lists_manifest_sizes = False


def _upstream_digest(seawall: SeawallProcess, repo: str, reference: str) -> str | None:
    """What the registry behind the fake holds (not through the fake)."""
    auth = ("admin", seawall.admin_password)
    accept = ", ".join([mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST])
    r = httpx.head(
        f"{seawall.url}/v2/{repo}/manifests/{reference}", auth=auth, headers={"Accept": accept}
    )
    if r.status_code == 401:  # token flow: ask for a token with the admin login
        token = httpx.get(
            f"{seawall.url}/service/token",
            params={"service": seawall.host, "scope": f"repository:{repo}:pull"},
            auth=auth,
        ).json()["token"]
        r = httpx.head(
            f"{seawall.url}/v2/{repo}/manifests/{reference}",
            headers={"Authorization": f"Bearer {token}", "Accept": accept},
        )
    return r.headers.get("Docker-Content-Digest") if r.status_code == 200 else None


# -- declaration and config ------------------------------------------------------------------


def test_declared_capabilities_are_ghcrs() -> None:
    caps = GhcrAdapter.capabilities
    assert get("github-ghcr") is GhcrAdapter
    assert (caps.catalog, caps.delete_manifest, caps.delete_tag) == (True, True, False)
    assert (caps.referrers_api, caps.create_namespace, caps.min_path_components) == (
        False,
        False,
        2,
    )
    info = GhcrAdapter.info()
    assert info["endpoint_pattern"]["endpoints"] == [{"key": "ghcr.io", "value": "https://ghcr.io"}]
    assert info["supported_triggers"] == ["manual", "scheduled"]
    assert {o["name"] for o in info["options"]} == {
        "api_url",
        "owner_type",
        "owners",
    }


@pytest.mark.parametrize(
    ("cfg", "says"),
    [
        (EndpointConfig("http://ghcr.io"), "https on port 443"),
        (EndpointConfig("https://ghcr.io/acme"), "give the registry only"),
        (EndpointConfig("https://registry.example.com"), "give --api-url"),
        (EndpointConfig("https://ghcr.io", username="octocat"), "personal access token"),
        (EndpointConfig("https://ghcr.io", options={"api_url": "http://api.example"}), "use https"),
        (EndpointConfig("https://ghcr.io", options={"api_url": "not a url"}), "http(s)://host"),
        (EndpointConfig("https://ghcr.io", options={"owner_type": "team"}), "org, user"),
        (EndpointConfig("https://ghcr.io", options={"owners": "acme,-bad"}), "GitHub user"),
        (EndpointConfig("https://ghcr.io", options={"owners": "a_b"}), "not valid"),
        (EndpointConfig("https://ghcr.io", password="p", token="t"), "once"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(cfg: EndpointConfig, says: str) -> None:
    with pytest.raises(InvalidEndpoint, match="github-ghcr") as caught:
        GhcrAdapter.check_config(cfg)
    assert says in str(caught.value)


def test_a_good_config_needs_no_io() -> None:
    GhcrAdapter.check_config(EndpointConfig("https://ghcr.io"))  # anonymous pulls
    GhcrAdapter.check_config(EndpointConfig("https://ghcr.io", token="ghp_x"))
    cfg = EndpointConfig(
        "https://ghcr.io",
        username="octocat",
        password="ghp_x",
        options={"owners": "Acme,acme-labs", "owner_type": "org"},
    )
    adapter = GhcrAdapter(cfg)
    assert adapter.settings.owners == ("acme", "acme-labs")
    assert adapter.settings.api_url == "https://api.github.com"
    kwargs = adapter.client_kwargs()  # the PAT goes to the token service as Basic, never bearer
    assert (kwargs["username"], kwargs["password"], kwargs["token"]) == ("octocat", "ghp_x", None)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("app", "at least 2"),
        ("Acme/app", "not valid"),
        ("a_b/app", "not a GitHub user or organization"),
        ("a--b/app", "not a GitHub user or organization"),
        (f"{'a' * 40}/app", "not a GitHub user or organization"),
    ],
)
def test_names_follow_ghcrs_rules(name: str, says: str) -> None:
    adapter = GhcrAdapter(EndpointConfig("https://ghcr.io", token="ghp_x"))
    with pytest.raises(InvalidRepositoryName) as caught:
        adapter.check_name(name)
    assert says in str(caught.value)
    adapter.check_name("acme-labs/team/app.v2")


async def test_an_anonymous_endpoint_refuses_to_push_before_sending() -> None:
    async with GhcrAdapter(EndpointConfig("https://ghcr.io")) as adapter:
        with pytest.raises(InvalidEndpoint, match="write:packages"):
            await adapter.prepare_repository("acme/app")
        with pytest.raises(Unauthorized, match="personal access token"):
            await adapter.catalog_listings("acme/")
        assert adapter.client().stats().requests == 0


# -- discovery -------------------------------------------------------------------------------


async def test_discovery_lists_every_package_of_an_owner_through_paged_api(
    ghcr: FakeGhcr,
) -> None:
    org, user = owner(ghcr), owner(ghcr, "User")
    names = [f"{org}/p{i}" for i in range(5)] + [f"{org}/team/nested", f"{user}/mine"]
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        for name in names:
            await push_image(adapter, name, "v1")
        ghcr.reset_counts()
        found, listings = await adapter.catalog_listings(f"{org}/")
        assert found == sorted(n for n in names if n.startswith(org)) and listings is None
        assert ghcr.count("GET /{kind}/{owner}/packages") == 3  # 6 packages, 2 a page
        assert ghcr.count("GET /v2/_catalog") == 0
        found, _ = await adapter.catalog_listings(user)  # a prefix that is just the owner
        assert found == [f"{user}/mine"]
        assert ghcr.count("GET /users/{owner}") == 2  # each owner's kind asked once
        tags, refs = await adapter.list_tag_refs(f"{org}/team/nested")
        assert tags == ["v1"] and refs["v1"].digest.startswith("sha256:")
        with pytest.raises(NotFound):
            await adapter.list_tag_refs(f"{org}/never-pushed")
    assert set(ghcr.api_headers) == {("application/vnd.github+json", "2022-11-28")}
    async with GhcrAdapter(config(ghcr, owners=f"{org},{user}"), **FAST) as adapter:
        found, _ = await adapter.catalog_listings("")
        assert found == sorted(names)
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        with pytest.raises(RequestRejected, match="--owners"):
            await adapter.catalog_listings("")


async def test_owner_type_option_skips_the_lookup(ghcr: FakeGhcr) -> None:
    org = owner(ghcr)
    async with GhcrAdapter(config(ghcr, owner_type="org"), **FAST) as adapter:
        await push_image(adapter, f"{org}/app", "v1")
        ghcr.reset_counts()
        assert (await adapter.catalog_listings(f"{org}/"))[0] == [f"{org}/app"]
        assert ghcr.count("GET /users/{owner}") == 0
    async with GhcrAdapter(config(ghcr, owner_type="user"), **FAST) as adapter:
        with pytest.raises(NotFound, match="no user 'gh"):  # an org asked as a user: a 404
            await adapter.catalog_listings(f"{org}/")
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        with pytest.raises(NotFound, match="no user or organization 'nobody-here'"):
            await adapter.catalog_listings("nobody-here/")


async def test_a_token_without_read_packages_is_told_which_scope_it_lacks(
    ghcr: FakeGhcr,
) -> None:
    org = owner(ghcr)
    pat = "ghp_" + uuid.uuid4().hex[:36]
    ghcr.add_pat(pat, "nobody", [])
    async with GhcrAdapter(config(ghcr, pat=pat), **FAST) as adapter:
        with pytest.raises(Denied) as caught:
            await adapter.catalog_listings(f"{org}/")
    assert "read:packages" in str(caught.value)


# -- deletes ---------------------------------------------------------------------------------


async def test_delete_by_digest_really_deletes_in_the_registry_behind(
    ghcr: FakeGhcr, seawall: SeawallProcess
) -> None:
    repo = f"{owner(ghcr)}/app"
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        kept, _ = await push_image(adapter, repo, "keep")
        gone, _ = await push_image(adapter, repo, "gone")
        assert _upstream_digest(seawall, repo, gone) == gone
        with pytest.raises(Unsupported):  # the registry's own DELETE: refused, as on ghcr.io
            await OciClient.delete_manifest(adapter.client(), repo, gone)
        assert _upstream_digest(seawall, repo, gone) == gone
        await adapter.client().delete_manifest(repo, gone)
        assert _upstream_digest(seawall, repo, gone) is None
        assert _upstream_digest(seawall, repo, "keep") == kept
        assert await adapter.list_tag_refs(repo) == (
            ["keep"],
            {"keep": ManifestRef(kept, "", UNKNOWN_SIZE)},
        )
        with pytest.raises(NotFound):
            await adapter.client().delete_manifest(repo, gone)
    assert ghcr.answers("DELETE /{kind}/{owner}/packages/container/{package}/versions/{id}") == {
        204: 1
    }
    assert ghcr.answers("DELETE /v2/{name}/manifests/{ref}") == {405: 1}  # only the test's


async def test_deleting_the_last_version_deletes_the_package(
    ghcr: FakeGhcr, seawall: SeawallProcess
) -> None:
    repo = f"{owner(ghcr)}/only"
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        digest, _ = await push_image(adapter, repo, "v1")
        await adapter.client().delete_manifest(repo, digest)
        assert _upstream_digest(seawall, repo, digest) is None
        assert ghcr.book.package(repo) is None
        with pytest.raises(NotFound):
            await adapter.list_tag_refs(repo)


async def test_a_tag_shared_with_other_tags_is_refused_loudly(
    ghcr: FakeGhcr, seawall: SeawallProcess
) -> None:
    repo = f"{owner(ghcr)}/shared"
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        digest, data = await push_image(adapter, repo, "v1")
        for tag in ("latest", "stable"):
            await adapter.client().put_manifest(repo, tag, data, mt.OCI_MANIFEST)
        with pytest.raises(Unsupported) as caught:
            await adapter.client().delete_tag(repo, "v1")
        message = str(caught.value)
        assert "also carries the tags latest, stable" in message and digest in message
        await push_image(adapter, repo, "solo")
        with pytest.raises(Unsupported, match="only tag"):  # alone: by digest, it says
            await adapter.client().delete_tag(repo, "solo")
        with pytest.raises(NotFound):
            await adapter.client().delete_tag(repo, "no-such-tag")
    assert _upstream_digest(seawall, repo, "v1") == digest  # nothing was deleted


async def test_a_token_without_delete_packages_fails_loudly(
    ghcr: FakeGhcr, seawall: SeawallProcess
) -> None:
    repo = f"{owner(ghcr)}/nodelete"
    pat = "ghp_" + uuid.uuid4().hex[:36]
    ghcr.add_pat(pat, "writer", ["read:packages", "write:packages"])
    async with GhcrAdapter(config(ghcr, pat=pat), **FAST) as adapter:
        digest, _ = await push_image(adapter, repo, "v1")
        await push_image(adapter, repo, "v2")
        with pytest.raises(Denied) as caught:
            await adapter.client().delete_manifest(repo, digest)
    message = str(caught.value)
    assert "delete:packages" in message and "read:packages, write:packages" in message
    assert _upstream_digest(seawall, repo, digest) == digest


async def test_a_delete_github_answers_but_does_not_apply_is_an_error(
    ghcr: FakeGhcr, seawall: SeawallProcess
) -> None:
    repo = f"{owner(ghcr)}/sticky"
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        digest, _ = await push_image(adapter, repo, "v1")
        only, _ = await push_image(adapter, f"{repo}-alone", "v1")
        await push_image(adapter, repo, "v2")
        ghcr.ignore_deletes = True
        try:
            with pytest.raises(DeleteNotApplied, match="still there"):
                await adapter.client().delete_manifest(repo, digest)
            with pytest.raises(DeleteNotApplied, match="still there"):
                await adapter.client().delete_manifest(f"{repo}-alone", only)
        finally:
            ghcr.ignore_deletes = False
    assert _upstream_digest(seawall, repo, digest) == digest


# -- auth ------------------------------------------------------------------------------------


async def test_public_packages_pull_anonymously_private_ones_do_not(ghcr: FakeGhcr) -> None:
    org = owner(ghcr)
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        public, _ = await push_image(adapter, f"{org}/public", "v1")
        await push_image(adapter, f"{org}/private", "v1")
    ghcr.set_visibility(f"{org}/public", "public")
    anonymous = EndpointConfig(ghcr.url, options={"api_url": ghcr.url})
    async with GhcrAdapter(anonymous, **FAST) as adapter:
        ref = await adapter.client().head_manifest(f"{org}/public", "v1")
        assert ref is not None and ref.digest == public
        assert await adapter.list_tag_refs(f"{org}/public") == (["v1"], {})  # /v2 tag list
        with pytest.raises(Denied):
            await adapter.client().head_manifest(f"{org}/private", "v1")
    assert ghcr.answers("GET /token").get(200, 0) >= 2


async def test_a_read_only_token_cannot_push(ghcr: FakeGhcr) -> None:
    org = owner(ghcr)
    pat = "ghp_" + uuid.uuid4().hex[:36]
    ghcr.add_pat(pat, "reader", ["read:packages"])
    async with GhcrAdapter(config(ghcr, pat=pat), **FAST) as adapter:
        with pytest.raises(Denied, match="write_package"):
            await push_image(adapter, f"{org}/app", "v1")


async def test_wrong_pat_is_unhealthy_and_the_catalog_is_empty_on_v2(ghcr: FakeGhcr) -> None:
    wrong = dataclasses.replace(config(ghcr), password="ghp_wrong")
    async with GhcrAdapter(wrong, **FAST) as adapter:
        ok, detail = await adapter.health()
    assert not ok and "401" in detail
    async with GhcrAdapter(config(ghcr), **FAST) as adapter:
        assert await adapter.client().catalog() == []  # why discovery needs the API
    assert ghcr.answers("GET /v2/_catalog").get(200) == 1
