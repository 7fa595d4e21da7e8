"""``harbor`` on the Harbor fake in front of a real Seawall: the adapter conformance kit as the
admin user and as the docs' least-privilege system robot account; projects created on push
with the endpoint's settings; listings through the artifact API (no manifest request per tag);
tag deletes through the API; webhook policies; every bad input refused before anything is
sent."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from adapters.base import EndpointConfig, InvalidEndpoint, InvalidRepositoryName, RegistryAdapter
from adapters.harbor import WEBHOOK_EVENTS, HarborAdapter, WebhookTarget
from adapters.oci.client import OciClient
from adapters.oci.errors import Denied, NotFound, Unsupported
from adapters.registry import get
from adapters.testing import AdapterConformance, push_image
from registry.oci import mediatypes as mt
from tests.support.fake_harbor import FakeHarbor
from tests.support.fake_harbor_world import (
    FAST,
    PROJECT_ROBOT,
    REPLICATION_ROBOT,
    admin_config,
    create_robot,
    fake_harbor,
    namespace,
    robot_config,
)
from tests.support.server import SeawallProcess

ARTIFACTS = "GET /api/v2.0/projects/{project_name}/repositories/{repository_name}/artifacts"
MANIFEST = "/v2/{name}/manifests/{ref}"


@pytest.fixture(scope="module")
def harbor(seawall: SeawallProcess) -> Iterator[FakeHarbor]:
    with fake_harbor(seawall) as fake:
        yield fake


@pytest.fixture(scope="module")
def robot(harbor: FakeHarbor) -> tuple[str, str]:
    return create_robot(harbor, REPLICATION_ROBOT)


class HarborConformance(AdapterConformance):
    lists_tag_digests = True  # the artifact API: each tag's digest and manifest media type
    lists_manifest_sizes = False  # an artifact's size counts its layers: not listed


class TestHarborAsAdmin(HarborConformance):
    @pytest.fixture
    async def adapter(self, harbor: FakeHarbor) -> AsyncIterator[RegistryAdapter]:
        async with HarborAdapter(admin_config(harbor), **FAST) as adapter:
            yield adapter


class TestHarborAsSystemRobot(HarborConformance):
    """The docs' least-privilege robot account (``robot$seawall``)."""

    @pytest.fixture
    async def adapter(
        self, harbor: FakeHarbor, robot: tuple[str, str]
    ) -> AsyncIterator[RegistryAdapter]:
        async with HarborAdapter(robot_config(harbor, robot), **FAST) as adapter:
            yield adapter


def _api(harbor: FakeHarbor) -> httpx.Client:
    return httpx.Client(
        base_url=f"{harbor.url}/api/v2.0", auth=("admin", harbor.admin_password), timeout=30
    )


# -- declaration ---------------------------------------------------------------------------------


def test_declared_capabilities_are_harbors() -> None:
    caps = HarborAdapter.capabilities
    assert get("harbor") is HarborAdapter
    assert (caps.delete_tag, caps.delete_manifest, caps.create_namespace) == (True, True, True)
    assert caps.min_path_components == 2 and caps.catalog and caps.blob_mount
    assert HarborAdapter.probed == {"referrers_api"}  # Harbor 2.8+ has it
    assert "event_based" in HarborAdapter.info()["supported_triggers"]


# -- projects on push ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_push_creates_the_project_with_the_endpoints_settings(harbor: FakeHarbor) -> None:
    options = {
        "project_public": "true",
        "project_storage_limit_bytes": "10737418240",
        "project_auto_scan": "true",
        "project_prevent_vul": "true",
        "project_severity": "high",
    }
    project = namespace()
    async with HarborAdapter(admin_config(harbor, **options), **FAST) as adapter:
        digest, _ = await push_image(adapter, f"{project}/app/web", "v1")
        await adapter.prepare_repository(f"{project}/other")  # known: no request
    with _api(harbor) as api:
        got = api.get(f"/projects/{project}", headers={"X-Is-Resource-Name": "true"}).json()
        quota = api.get("/quotas", params={"reference_id": got["project_id"]}).json()
        listed = api.get(f"/projects/{project}/repositories/app%252Fweb/artifacts").json()
    assert got["metadata"] == {
        "public": "true",
        "auto_scan": "true",
        "prevent_vul": "true",
        "severity": "high",
    }
    assert quota[0]["hard"]["storage"] == 10737418240
    assert [(a["digest"], [t["name"] for t in a["tags"]]) for a in listed] == [(digest, ["v1"])]
    assert harbor.count("POST /api/v2.0/projects") >= 1
    assert harbor.count("HEAD /api/v2.0/projects") >= 1


@pytest.mark.anyio
async def test_concurrent_creators_of_one_project_both_succeed(harbor: FakeHarbor) -> None:
    project = namespace()
    adapters = [HarborAdapter(admin_config(harbor), **FAST) for _ in range(4)]
    try:
        await asyncio.gather(*(a.prepare_repository(f"{project}/app") for a in adapters))
    finally:
        await asyncio.gather(*(a.close() for a in adapters))
    assert harbor.project(project) is not None
    assert sum(p.name == project for p in harbor.all_projects()) == 1


@pytest.mark.anyio
async def test_a_project_robot_cannot_create_projects_and_says_what_to_do(
    harbor: FakeHarbor,
) -> None:
    project = namespace()
    async with HarborAdapter(admin_config(harbor), **FAST) as admin:
        await push_image(admin, f"{project}/app", "v1")
    reader = create_robot(harbor, PROJECT_ROBOT(project))
    assert reader[0] == f"robot${project}+reader"
    async with HarborAdapter(robot_config(harbor, reader), **FAST) as adapter:
        with pytest.raises(Denied, match=r"create it in Harbor, or log in as .* system robot"):
            await adapter.prepare_repository(f"{namespace()}/app")
        await adapter.prepare_repository(f"{project}/app")  # it exists: nothing to create
        names, _ = await adapter.catalog_listings()
        tags, refs = await adapter.list_tag_refs(f"{project}/app")
    assert f"{project}/app" in names
    assert tags == ["v1"] and refs["v1"].media_type == mt.OCI_MANIFEST


# -- listings ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_listing_costs_no_manifest_request_per_tag(harbor: FakeHarbor) -> None:
    project = namespace()
    repo = f"{project}/app"
    async with HarborAdapter(admin_config(harbor), **FAST) as adapter:
        digest, data = await push_image(adapter, repo, "v1")
        for i in range(2, 8):
            await adapter.client().put_manifest(repo, f"v{i}", data, mt.OCI_MANIFEST)
        other, _ = await push_image(adapter, repo, "other")
        adapter.client().api.page_size = 1  # two artifacts: two pages, Link followed
        harbor.reset_counts()
        tags, refs = await adapter.list_tag_refs(repo)
    counts = harbor.counts()
    assert tags == sorted(["other", *(f"v{i}" for i in range(1, 8))])
    assert {refs[t].digest for t in tags if t != "other"} == {digest}
    assert refs["other"].digest == other
    assert counts.get(ARTIFACTS) == 2
    assert not any(MANIFEST in route for route in counts), counts


@pytest.mark.anyio
async def test_discovery_pages_through_projects_and_repositories(harbor: FakeHarbor) -> None:
    projects = [namespace() for _ in range(3)]
    async with HarborAdapter(admin_config(harbor), **FAST) as adapter:
        for project in projects:
            for name in ("a", "b/c"):
                await push_image(adapter, f"{project}/{name}", "v1")
        adapter.client().api.page_size = 2
        harbor.reset_counts()
        everything, listings = await adapter.catalog_listings()
        one, _ = await adapter.catalog_listings(f"{projects[1]}/")
    assert listings is None
    for project in projects:
        assert {f"{project}/a", f"{project}/b/c"} <= set(everything)
    assert one == [f"{projects[1]}/a", f"{projects[1]}/b/c"]
    assert harbor.count("GET /api/v2.0/projects") >= 2  # paged: more than 2 projects
    only = {"projects": projects[0]}
    async with HarborAdapter(admin_config(harbor, **only), **FAST) as adapter:
        harbor.reset_counts()
        names, _ = await adapter.catalog_listings()
    assert names == [f"{projects[0]}/a", f"{projects[0]}/b/c"]
    assert harbor.count("GET /api/v2.0/projects") == 0


@pytest.mark.anyio
async def test_an_unknown_repository_is_not_found(harbor: FakeHarbor) -> None:
    async with HarborAdapter(admin_config(harbor), **FAST) as adapter:
        with pytest.raises(NotFound):
            await adapter.list_tag_refs(f"{namespace()}/nothing")
        with pytest.raises(NotFound):
            await adapter.list_tag_refs("library/nothing-here")


# -- tags ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_harbors_registry_refuses_tag_deletes_so_the_api_deletes_them(
    harbor: FakeHarbor,
) -> None:
    repo = f"{namespace()}/app"
    async with HarborAdapter(admin_config(harbor), **FAST) as adapter:
        digest, data = await push_image(adapter, repo, "v1")
        await adapter.client().put_manifest(repo, "v2", data, mt.OCI_MANIFEST)
        plain = OciClient(harbor.url, username="admin", password=harbor.admin_password, **FAST)
        async with plain:
            with pytest.raises(Unsupported):
                await plain.delete_tag(repo, "v1")  # DELETE /v2/.../manifests/v1: 400
        await adapter.client().delete_tag(repo, "v1")
        with pytest.raises(NotFound):
            await adapter.client().delete_tag(repo, "v1")
        tags, refs = await adapter.list_tag_refs(repo)
    assert tags == ["v2"] and refs["v2"].digest == digest
    route = f"DELETE {ARTIFACTS[4:]}/{{reference}}/tags/{{tag_name}}"
    assert harbor.count(route) == 2


# -- webhooks ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ensure_webhook_registers_one_policy_and_harbor_delivers_to_it(
    harbor: FakeHarbor, robot: tuple[str, str]
) -> None:
    project = namespace()
    address = f"{harbor.url}/nowhere"  # the fake answers 404: the delivery is still recorded
    async with HarborAdapter(robot_config(harbor, robot), **FAST) as adapter:
        await adapter.prepare_repository(f"{project}/app")
        await adapter.ensure_webhook(project, WebhookTarget(address, auth_header="s3cret-x"))
        await adapter.ensure_webhook(project, WebhookTarget(address, auth_header="s3cret-y"))
        digest, _ = await push_image(adapter, f"{project}/app", "v7")
        referrer, _ = await push_image(adapter, f"{project}/app", None, subject=digest)
    policies = harbor.webhooks.of_project(project)
    assert len(policies) == 1 and policies[0].event_types == list(WEBHOOK_EVENTS)
    assert policies[0].targets[0]["auth_header"] == "s3cret-y"  # replaced, not added
    for _ in range(500):  # deliveries run in the background, after the push's answer
        if len([d for d in harbor.deliveries() if d.address == address]) >= 2:
            break
        await asyncio.sleep(0.02)
    sent = {
        d.payload["event_data"]["resources"][0]["digest"]: d
        for d in harbor.deliveries()
        if d.address == address
    }
    assert sent[digest].authorization == "s3cret-y"
    assert sent[digest].payload["type"] == "PUSH_ARTIFACT"
    data = sent[digest].payload["event_data"]
    assert data["resources"][0]["tag"] == "v7"
    assert data["resources"][0]["resource_url"] == f"127.0.0.1:{harbor.port}/{project}/app:v7"
    assert data["repository"]["repo_full_name"] == f"{project}/app"
    assert data["repository"]["namespace"] == project and data["repository"]["name"] == "app"
    untagged = sent[referrer].payload["event_data"]["resources"][0]
    assert untagged["tag"] == referrer  # Harbor names an untagged artifact by its digest
    assert untagged["resource_url"].endswith(f"/{project}/app@{referrer}")


@pytest.mark.anyio
async def test_a_robot_without_webhook_rights_is_told_what_it_needs(harbor: FakeHarbor) -> None:
    project = namespace()
    async with HarborAdapter(admin_config(harbor), **FAST) as admin:
        await admin.prepare_repository(f"{project}/app")
    reader = create_robot(harbor, PROJECT_ROBOT(project))
    async with HarborAdapter(robot_config(harbor, reader), **FAST) as adapter:
        with pytest.raises(Denied, match="notification-policy"):
            await adapter.ensure_webhook(project, WebhookTarget("http://127.0.0.1:9/hook"))


# -- bad input is refused before anything is sent ------------------------------------------------

HARBOR = "https://harbor.example.com"


def config(user: str | None = "robot$seawall", password: str | None = "s", **options: str):
    return EndpointConfig(
        HARBOR, username=user, password=password, options=tuple(sorted(options.items()))
    )


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (dataclasses.replace(config(), url="ftp://harbor"), "use http:// or https://"),
        (config(project_public="yes"), "use one of true, false"),
        (config(project_storage_limit_bytes="10GB"), "is not valid"),
        (config(project_storage_limit_bytes="-2"), "is not valid"),
        (config(project_severity="high"), "only with --project-prevent-vul true"),
        (config(project_severity="extreme", project_prevent_vul="true"), "use one of none"),
        (config(projects="Team,ok"), "--projects 'Team,ok' is not valid"),
        (config(projects="a" * 256), "not a Harbor project name"),
        (config(no_such="x"), "no option 'no_such'"),
        (config(None, "secret"), "a password without a username"),
        (EndpointConfig(HARBOR, token="abc"), "not a bearer token"),
    ],
)
def test_bad_endpoints_are_refused_before_anything_is_sent(
    cfg: EndpointConfig, message: str
) -> None:
    with pytest.raises(InvalidEndpoint, match=message):
        HarborAdapter.check_config(cfg)
    with pytest.raises(InvalidEndpoint):
        HarborAdapter(cfg)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("app", r"has 1 path component\(s\); harbor registries need at least 2"),
        ("Team/app", "is not valid"),
        ("team__x/app", "is not a Harbor project name"),
        ("te--am/app", "is not a Harbor project name"),
        (f"{'p' * 256}/app", "not valid|not a Harbor project name"),
    ],
)
def test_names_harbor_cannot_hold_are_refused(name: str, message: str) -> None:
    adapter = HarborAdapter(config())
    with pytest.raises(InvalidRepositoryName, match=message):
        adapter.check_name(name)


def test_good_endpoints_and_names() -> None:
    adapter = HarborAdapter(config(projects="library,team-a,library"))
    assert adapter.settings.projects == ("library", "team-a")
    assert adapter.settings.project_request("p") == {
        "project_name": "p",
        "metadata": {"public": "false"},
    }
    for name in ("library/nginx", "team-a/app/web", "a.b_c-d/x"):
        adapter.check_name(name)
    HarborAdapter.check_config(EndpointConfig(HARBOR))  # anonymous: public projects
    assert "s3cret" not in repr(WebhookTarget("http://x", auth_header="s3cret"))
