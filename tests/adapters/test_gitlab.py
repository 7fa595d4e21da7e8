"""``gitlab`` on the GitLab fake in front of a real CNCF distribution: the adapter conformance kit
(with an access token), and every bad endpoint and name refused before anything is sent."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName, RegistryAdapter
from adapters.gitlab import GitLabAdapter
from adapters.registry import get
from adapters.testing import AdapterConformance
from tests.support.distribution import DistributionProcess
from tests.support.fake_gitlab import FakeGitLab
from tests.support.fake_gitlab_world import FAST, GROUP, PROJECT, config, fake_gitlab


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistributionProcess]:
    with DistributionProcess(tmp_path_factory.mktemp("gitlab-registry")) as d:
        yield d


@pytest.fixture(scope="module")
def gitlab(registry: DistributionProcess) -> Iterator[FakeGitLab]:
    with fake_gitlab(registry) as fake:
        yield fake


class TestGitLab(AdapterConformance):
    lists_tag_digests = True  # each tag's details say its digest ...
    lists_media_types = False  # ... and nothing else the engine needs
    lists_manifest_sizes = False

    def repository_name(self, adapter: RegistryAdapter) -> str:
        return f"{PROJECT}/t{uuid.uuid4().hex[:12]}"  # below an existing project

    @pytest.fixture
    async def adapter(self, gitlab: FakeGitLab) -> AsyncIterator[RegistryAdapter]:
        async with GitLabAdapter(config(gitlab, group=GROUP), **FAST) as adapter:
            yield adapter


# -- declaration ---------------------------------------------------------------------------------


def test_declared_capabilities_are_gitlabs() -> None:
    caps = GitLabAdapter.capabilities
    assert get("gitlab") is GitLabAdapter
    assert (caps.catalog, caps.delete_tag, caps.delete_manifest) == (True, True, True)
    assert (caps.blob_mount, caps.chunked_upload, caps.create_namespace) == (True, True, False)
    assert caps.referrers_api is False and GitLabAdapter.probed == {"referrers_api"}
    assert caps.min_path_components == 2
    info = GitLabAdapter.info()
    assert info["supported_triggers"] == ["manual", "scheduled"]  # GitLab sends no webhooks
    assert {o["name"] for o in info["options"]} == {"gitlab_url", "group", "project"}
    assert {o["name"]: o["kind"] for o in info["options"]}["gitlab_url"] == "url"


def test_the_token_goes_only_to_the_registry_and_the_instance() -> None:
    cfg = EndpointConfig("https://registry.gitlab.com", username="u", password="glpat-x")
    assert GitLabAdapter.secret_targets(cfg) == (
        "https://registry.gitlab.com",
        "https://gitlab.com",
    )
    own = EndpointConfig(
        "https://registry.example.com",
        username="u",
        password="p",
        options=(("gitlab_url", "https://gitlab.example.com"),),
    )
    assert "https://gitlab.example.com" in GitLabAdapter.secret_targets(own)


# -- bad input is refused before anything is sent -------------------------------------------------

COM = "https://registry.gitlab.com"


def cfg(
    url: str = COM, user: str | None = "u", password: str | None = "p", **options: str
) -> EndpointConfig:
    return EndpointConfig(
        url, username=user, password=password, options=tuple(sorted(options.items()))
    )


@pytest.mark.parametrize(
    ("endpoint", "message"),
    [
        (cfg("gopher://registry.gitlab.com"), "use http:// or https://"),
        (cfg("https://registry.example.com"), "give --gitlab-url"),
        (cfg(COM + "/mygroup/myproject"), "registry's URL only"),
        (cfg(COM, gitlab_url="gitlab.example.com"), "give an http(s)://host URL"),
        (cfg(COM, gitlab_url="https://gitlab.example.com/api/v4"), "without /api/v4"),
        (cfg(COM, gitlab_url="https://u:p@gitlab.example.com"), "must not hold credentials"),
        (cfg(COM, "u", None), "both a username and a token"),
        (cfg(COM, None, "glpat-x"), "both a username and a token"),
        (EndpointConfig(COM, token="glpat-x"), "takes no bearer token"),
        (cfg(COM, group="a", project="a/b"), "not both"),
        (cfg(COM, project="justaname"), "project's full path"),
        (cfg(COM, group="bad//path"), "--group 'bad//path' is not valid"),
        (cfg(COM, project="-x/y"), "--project '-x/y' is not valid"),
        (cfg(COM, region="eu"), "no option 'region'"),
    ],
)
def test_bad_endpoints_are_refused_before_anything_is_sent(
    endpoint: EndpointConfig, message: str
) -> None:
    with pytest.raises(InvalidEndpoint) as caught:
        GitLabAdapter.check_config(endpoint)
    assert message in str(caught.value)


def test_good_endpoints_pass() -> None:
    GitLabAdapter.check_config(cfg())
    GitLabAdapter.check_config(EndpointConfig(COM))  # anonymous: public projects
    GitLabAdapter.check_config(cfg(COM, "gitlab+deploy-token-1", "gldt-x", project="a/b"))
    GitLabAdapter.check_config(
        cfg("https://gitlab.example.com:5050", gitlab_url="https://gitlab.example.com")
    )
    assert GitLabAdapter(cfg()).settings.gitlab_url == "https://gitlab.com"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("justone", "has no project"),
        ("Group/Project", "is not valid for GitLab"),
        ("group/project.git/image", "cannot end in .git or .atom"),
        ("group.atom/project", "cannot end in .git or .atom"),
        ("/".join(["n"] * 25), "at most 24"),
        ("a/" + "b" * 260, "is not valid for GitLab"),
    ],
)
def test_names_outside_gitlabs_rules_are_refused(name: str, message: str) -> None:
    with pytest.raises(InvalidRepositoryName) as caught:
        GitLabAdapter(cfg()).check_name(name)
    assert message in str(caught.value)


def test_a_project_endpoint_takes_names_below_it_only() -> None:
    adapter = GitLabAdapter(cfg(project="Team/App"))
    adapter.check_name("team/app")
    adapter.check_name("team/app/a/b/c")
    with pytest.raises(InvalidRepositoryName, match="not under the GitLab project 'team/app'"):
        adapter.check_name("team/other/x")
    with pytest.raises(InvalidRepositoryName, match="at most 3"):
        adapter.check_name("team/app/a/b/c/d")
