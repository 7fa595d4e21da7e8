"""``aws-ecr`` on real parts: moto for ECR and STS (IAM checks on for the kit), a Seawall as the
data plane logging in with what ``GetAuthorizationToken`` returns, joined by
:class:`tests.support.ecr.EcrFront`; the engine's round trip through a real ``seawall serve``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import pytest

from adapters.aws_ecr import EcrAdapter
from adapters.aws_ecr_client import ImmutableTag
from adapters.base import RegistryAdapter
from adapters.oci.errors import NotFound
from adapters.testing import AdapterConformance, push_blob, push_image
from engine.listing import list_repositories, list_side
from registry.oci import mediatypes as mt
from tests.replication.roundtrip import round_trip
from tests.replication.support import add_policy, api, dumps, run
from tests.support.client import client
from tests.support.client import push_image as push_image_http
from tests.support.ecr_world import EcrWorld, start_data_plane, start_iam_moto
from tests.support.moto import MOTO_ACCOUNT, MotoServer, require_moto
from tests.support.server import SeawallProcess

FAST = {"backoff_base_seconds": 0.01}
MiB = 1 << 20


@pytest.fixture(scope="module")
def data_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    require_moto()
    proc = start_data_plane(tmp_path_factory.mktemp("ecr-data-plane"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def iam_world(
    tmp_path_factory: pytest.TempPathFactory, data_plane: SeawallProcess
) -> Iterator[EcrWorld]:
    """IAM checks on: the adapter's key may do what the docs' policy allows, nothing else."""
    moto, keys, admin = start_iam_moto(tmp_path_factory.mktemp("moto-iam"))
    world = EcrWorld.open(moto, data_plane, keys, admin)
    yield world
    world.close()
    moto.stop()


@pytest.fixture(scope="module")
def world(moto_server: MotoServer, data_plane: SeawallProcess) -> Iterator[EcrWorld]:
    """The session's moto (no IAM checks, key pair ``testing``)."""
    world = EcrWorld.open(moto_server, data_plane)
    yield world
    world.close()


@pytest.fixture
def ecr(world: EcrWorld, monkeypatch: pytest.MonkeyPatch) -> EcrWorld:
    world.apply(monkeypatch)
    return world


class TestEcrAdapter(AdapterConformance):
    lists_tag_digests = True
    lists_manifest_sizes = False  # DescribeImages gives the image's size, not the manifest's
    repository_prefix: ClassVar[str] = "conformance-ecr"

    @pytest.fixture
    async def adapter(
        self, iam_world: EcrWorld, monkeypatch: pytest.MonkeyPatch
    ) -> AsyncIterator[RegistryAdapter]:
        iam_world.apply(monkeypatch)
        async with EcrAdapter(iam_world.config(), **FAST) as adapter:
            yield adapter


def _uid() -> str:
    return uuid.uuid4().hex[:10]


# -- the engine, through a real seawall serve ------------------------------------------------


@pytest.fixture(scope="module")
def engine(world: EcrWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    """A Seawall whose engine reaches ECR (the world) through boto3's standard settings."""
    with pytest.MonkeyPatch.context() as mp:
        world.apply(mp)  # the child starts with this environment, AWS_CA_BUNDLE removed
        proc = SeawallProcess(
            tmp_path_factory.mktemp("ecr-engine") / "data", extra_env=world.env()
        ).start()
    yield proc
    proc.stop()


def _endpoint(world: EcrWorld, name: str, **options: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "aws-ecr",
        "url": world.url,
        "insecure": True,
        "credential": {"type": "basic", "access_key": "testing", "access_secret": "testing"},
        "options": options,
    }


def test_round_trip_through_the_engine(world: EcrWorld, engine: SeawallProcess) -> None:
    namespace = f"rt-{_uid()}"
    round_trip(
        engine,
        _endpoint(world, f"ecr-{namespace}", scan_on_push="true"),
        remote_namespace=namespace,
        remote_digest=world.digest,
    )
    made = world.registry(f"{namespace}/signed")
    assert made is not None and made["imageScanningConfiguration"] == {"scanOnPush": True}


def test_moving_an_immutable_tag_fails_the_task_with_the_reason(
    world: EcrWorld, engine: SeawallProcess
) -> None:
    namespace = f"imm-{_uid()}"
    with (
        client(engine.url, "admin", engine.admin_password) as c,
        api(engine.url, engine.admin_password) as a,
    ):
        first, _ = push_image_http(c, f"{namespace}-src/app", "v1", seed="first")
        r = a.post("/registries", json=_endpoint(world, namespace, tag_mutability="IMMUTABLE"))
        assert r.status_code == 201, r.text
        ecr_id = int(r.headers["Location"].rsplit("/", 1)[1])
        policy = add_policy(
            a,
            f"{namespace}-push",
            dest=ecr_id,
            filters=[{"type": "name", "value": f"{namespace}-src/**"}],
            dest_namespace=namespace,
            dest_namespace_replace_count=1,
        )
        ex, tasks = run(a, policy)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert world.registry(f"{namespace}/app")["imageTagMutability"] == "IMMUTABLE"
        second, _ = push_image_http(c, f"{namespace}-src/app", "v1", seed="second")
        ex, tasks = run(a, policy)
    assert ex["status"] == "Failed", dumps([ex, tasks])
    reasons = [t["reason"] for t in tasks if t["status"] == "Failed"]
    assert len(reasons) == 1, dumps(tasks)
    assert f"ECR repository {namespace}/app" in reasons[0]
    assert f"has immutable tags; tag v1 already names {first}" in reasons[0]
    assert second in reasons[0]
    assert world.digest(f"{namespace}/app", "v1") == first


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"options": {"role_arn": "arn:aws:iam::12345:role/x"}}, "--role-arn"),
        ({"options": {"external_id": "abc"}}, "need --role-arn"),
        ({"options": {"region": "us-east-7"}}, "not an AWS region"),
        ({"options": {"endpoint_url": "http://elsewhere"}}, "no option 'endpoint_url'"),
        ({"url": "https://12345.dkr.ecr.us-east-1.amazonaws.com"}, "looks like an ECR registry"),
        ({"credential": {"type": "basic", "access_key": "AKIAX", "access_secret": ""}}, "both"),
    ],
)
def test_the_api_refuses_bad_endpoints_before_storing_them(
    world: EcrWorld, engine: SeawallProcess, change: dict[str, Any], says: str
) -> None:
    body = _endpoint(world, f"bad-{_uid()}") | change
    with api(engine.url, engine.admin_password) as a:
        r = a.post("/registries", json=body)
        assert r.status_code == 400, r.text
        assert says in r.text
        assert all(e["name"] != body["name"] for e in a.get("/registries").json())


# -- listing -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_no_op_listing_costs_one_describe_images_per_repository(ecr: EcrWorld) -> None:
    prefix = f"noop-{_uid()}"
    repos = [f"{prefix}/r{i}" for i in range(4)]
    want: dict[str, dict[str, str]] = {}
    async with EcrAdapter(ecr.config(), **FAST) as adapter:
        for repo in repos:
            want[repo] = {}
            for image in range(2):  # two images, three tags each
                digest, data = await push_image(adapter, repo, f"i{image}t0")
                for tag in (f"i{image}t0", f"i{image}t1", f"i{image}t2"):
                    await adapter.client().put_manifest(repo, tag, data, mt.OCI_MANIFEST)
                    want[repo][tag] = digest

        async def listing() -> tuple[list[str], list[tuple[str, str]]]:
            mark, before = ecr.front.mark(), adapter.client().stats().requests
            names, preloaded = await list_repositories(adapter, lambda r: True, prefix)
            found = await list_side(adapter, names, preloaded=preloaded)
            assert found.complete and found.tags == want
            assert set(found.media_types.values()) == {mt.OCI_MANIFEST}
            assert adapter.client().stats().requests == before, "no data-plane request"
            calls, data_plane = ecr.front.since(mark)
            return sorted(c.action for c in calls), data_plane

        want_calls = ["ecr:DescribeImages"] * len(repos) + ["ecr:DescribeRepositories"]
        for _ in range(2):  # a first listing and a no-op re-sync cost the same
            calls, data_plane = await listing()
            assert calls == want_calls and data_plane == []


@pytest.mark.anyio
async def test_listing_an_unknown_repository_is_not_found(ecr: EcrWorld) -> None:
    async with EcrAdapter(ecr.config(), **FAST) as adapter:
        with pytest.raises(NotFound, match="RepositoryNotFoundException"):
            await adapter.list_tag_refs(f"missing-{_uid()}/app")
        assert await adapter.catalog_listings(f"missing-{_uid()}") == ([], None)


# -- repositories created on push ------------------------------------------------------------


@pytest.mark.anyio
async def test_a_push_creates_the_repository_with_the_endpoints_settings(ecr: EcrWorld) -> None:
    key = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    settings = {"tag_mutability": "IMMUTABLE", "scan_on_push": "true", "kms_key": key}
    repo = f"made/{_uid()}"
    async with EcrAdapter(ecr.config(encryption="KMS", **settings), **FAST) as adapter:
        with pytest.raises(NotFound, match="NAME_UNKNOWN"):  # ECR: no repository, no push
            await push_blob(adapter, repo + "-not-prepared", b"layer")
        mark = ecr.front.mark()
        await adapter.prepare_repository(repo)
        await adapter.prepare_repository(repo)  # once per adapter
        calls = ecr.front.since(mark)[0]
        assert [c.action for c in calls] == ["ecr:DescribeRepositories", "ecr:CreateRepository"]
        assert calls[1].params == {
            "registryId": MOTO_ACCOUNT,
            "repositoryName": repo,
            "imageTagMutability": "IMMUTABLE",
            "imageScanningConfiguration": {"scanOnPush": True},
            "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": key},
        }
        await push_image(adapter, repo, "v1")
    made = ecr.registry(repo)
    assert made is not None and made["registryId"] == MOTO_ACCOUNT
    assert made["imageTagMutability"] == "IMMUTABLE"
    assert made["imageScanningConfiguration"] == {"scanOnPush": True}
    assert made["encryptionConfiguration"] == {"encryptionType": "KMS", "kmsKey": key}
    async with EcrAdapter(ecr.config(), **FAST) as other:  # exists: left as it is
        mark = ecr.front.mark()
        await other.prepare_repository(repo)
        calls = [c.action for c in ecr.front.since(mark)[0]]
        assert calls == ["sts:GetCallerIdentity", "ecr:DescribeRepositories"]  # account, once
    assert ecr.registry(repo) == made


@pytest.mark.anyio
async def test_a_large_blob_goes_in_one_patch_that_ecr_answers_with_201(ecr: EcrWorld) -> None:
    repo = f"big/{_uid()}"
    data = os.urandom(3 * MiB + 5)
    async with EcrAdapter(ecr.config(), monolithic_max_bytes=MiB, **FAST) as adapter:
        await adapter.prepare_repository(repo)
        mark = ecr.front.mark()
        digest = await push_blob(adapter, repo, data)
        assert await adapter.client().head_blob(repo, digest) == len(data)
    sent = [method for method, _ in ecr.front.since(mark)[1]]
    assert sent.count("PATCH") == 1, sent  # the front answered it 201, as ECR does


@pytest.mark.anyio
async def test_moving_an_immutable_tag_says_which_image_holds_it(ecr: EcrWorld) -> None:
    repo = f"frozen/{_uid()}"
    async with EcrAdapter(ecr.config(tag_mutability="IMMUTABLE"), **FAST) as adapter:
        first, data = await push_image(adapter, repo, "v1")
        mark = ecr.front.mark()
        assert await adapter.client().put_manifest(repo, "v1", data, mt.OCI_MANIFEST) == first
        assert ecr.front.since(mark)[1] == [], "the same bytes again: nothing sent"
        second, other = await push_image(adapter, repo, None)
        with pytest.raises(ImmutableTag) as raised:
            await adapter.client().put_manifest(repo, "v1", other, mt.OCI_MANIFEST)
    text = str(raised.value)
    assert f"ECR repository {repo} (registry {MOTO_ACCOUNT}) has immutable tags" in text
    assert f"tag v1 already names {first}, so it cannot move to {second}" in text
    assert ecr.digest(repo, "v1") == first
