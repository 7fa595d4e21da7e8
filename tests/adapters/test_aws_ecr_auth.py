"""``aws-ecr`` credentials end to end: ECR's authorization token (used though moto dates it 2015,
fetched again after a 401, never in a loop), assume-role through STS (cross-account, external
id), the default credential chain, and health that says what is wrong. moto for ECR and STS (IAM
checks on where keys and roles are refused), a Seawall data plane behind
:class:`tests.support.ecr.EcrFront`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from adapters.aws_ecr import EcrAdapter
from adapters.oci.credentials import RefreshingCredentials
from adapters.oci.errors import Unauthorized
from adapters.testing import push_image
from tests.support.ecr_world import (
    LOCKED_ROLE,
    ROLE,
    ROLE_EXTERNAL_ID,
    EcrWorld,
    start_data_plane,
    start_iam_moto,
)
from tests.support.moto import MOTO_ACCOUNT, MotoServer, require_moto
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.anyio
FAST = {"backoff_base_seconds": 0.01}
TOKENS = "ecr:GetAuthorizationToken"
OTHER_ACCOUNT = "210987654321"


@pytest.fixture(scope="module")
def data_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeawallProcess]:
    require_moto()
    proc = start_data_plane(tmp_path_factory.mktemp("ecr-data-plane"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def world(moto_server: MotoServer, data_plane: SeawallProcess) -> Iterator[EcrWorld]:
    world = EcrWorld.open(moto_server, data_plane)
    yield world
    world.close()


@pytest.fixture(scope="module")
def iam_world(
    tmp_path_factory: pytest.TempPathFactory, data_plane: SeawallProcess
) -> Iterator[EcrWorld]:
    moto, keys, admin = start_iam_moto(tmp_path_factory.mktemp("moto-iam"))
    world = EcrWorld.open(moto, data_plane, keys, admin)
    yield world
    world.close()
    moto.stop()


@pytest.fixture
def ecr(world: EcrWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[EcrWorld]:
    world.apply(monkeypatch)
    yield world
    world.front.stale_tokens = 0


@pytest.fixture
def iam(iam_world: EcrWorld, monkeypatch: pytest.MonkeyPatch) -> EcrWorld:
    iam_world.apply(monkeypatch)
    return iam_world


def _repo() -> str:
    return f"auth/t{uuid.uuid4().hex[:10]}"


# -- the authorization token ------------------------------------------------------------------


async def test_the_token_is_used_though_it_expired_in_2015_and_fetched_once(ecr: EcrWorld) -> None:
    async with EcrAdapter(ecr.config(), **FAST) as adapter:
        issued = await adapter.credential_provider()()
        assert issued.credentials.username == "AWS"
        assert issued.credentials.password == f"{MOTO_ACCOUNT}-auth-token"
        assert issued.expires_at == datetime(2015, 1, 1, tzinfo=UTC).timestamp()
        mark = ecr.front.mark()
        repo = _repo()
        digest, _ = await push_image(adapter, repo, "v1")
        assert (await adapter.client().head_manifest(repo, "v1")).digest == digest
        assert (await adapter.health())[0]
    assert ecr.front.count(TOKENS, mark) == 1
    calls = [c for c in ecr.front.since(mark)[0] if c.action == TOKENS]
    assert calls[0].params == {"registryIds": [MOTO_ACCOUNT]}


async def test_a_token_the_registry_refuses_is_fetched_again_once(ecr: EcrWorld) -> None:
    ecr.front.stale_tokens = 1  # the first token is one ECR has rotated away
    mark = ecr.front.mark()
    async with EcrAdapter(ecr.config(), **FAST) as adapter:
        repo = _repo()
        await push_image(adapter, repo, "v1")
        assert ecr.front.count(TOKENS, mark) == 2
        await push_image(adapter, repo, "v2")
    assert ecr.front.count(TOKENS, mark) == 2


async def test_a_token_that_never_works_is_not_fetched_in_a_loop(ecr: EcrWorld) -> None:
    ecr.front.stale_tokens = 1000
    mark = ecr.front.mark()
    async with EcrAdapter(ecr.config(), **FAST) as adapter:
        with pytest.raises(Unauthorized):
            await adapter.client().head_manifest(_repo(), "v1")
        assert ecr.front.count(TOKENS, mark) == 2  # the first and one more after the 401
        ok, detail = await adapter.health()
    assert not ok and "401" in detail
    assert ecr.front.count(TOKENS, mark) == 3  # health: one more after its own 401


async def test_an_expired_token_is_fetched_again_after_the_least_reuse_time(ecr: EcrWorld) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC).timestamp()]  # a clock of our own, past 2015
    async with EcrAdapter(ecr.config(), **FAST) as adapter:
        credentials = RefreshingCredentials(
            adapter.credential_provider(), min_reuse_seconds=60.0, clock=lambda: now[0]
        )
        mark = ecr.front.mark()
        first = await credentials.get()
        now[0] += 59.0
        assert await credentials.get() == first
        assert ecr.front.count(TOKENS, mark) == 1
        now[0] += 2.0  # moto's token says 2015: past its least reuse, it is fetched again
        await credentials.get()
        assert ecr.front.count(TOKENS, mark) == 2


# -- assume-role and the default chain --------------------------------------------------------


async def test_a_role_in_another_account_is_assumed_and_its_registry_used(ecr: EcrWorld) -> None:
    role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/seawall-push"
    options = {"role_arn": role, "external_id": "ext-42", "role_session_name": "dr-sync"}
    repo = _repo()
    mark = ecr.front.mark()
    async with EcrAdapter(ecr.config(keys=False, **options), **FAST) as adapter:  # the chain
        await adapter.prepare_repository(repo)
        issued = await adapter.credential_provider()()
        ok, detail = await adapter.health()
    assert issued.credentials.password == f"{OTHER_ACCOUNT}-auth-token"
    calls = ecr.front.since(mark)[0]
    assume = [c.params for c in calls if c.action == "sts:AssumeRole"]
    assert len(assume) == 1
    assert (assume[0]["RoleArn"], assume[0]["ExternalId"]) == (role, "ext-42")
    assert assume[0]["RoleSessionName"] == "dr-sync"
    ecr_calls = [c for c in calls if c.action.startswith("ecr:")]
    assert {c.params.get("registryId") or c.params["registryIds"][0] for c in ecr_calls} == {
        OTHER_ACCOUNT
    }
    assert ecr.registry(repo) is None, "created in the role's account, not the caller's"
    creds = ecr.aws("sts").assume_role(RoleArn=role, RoleSessionName="check")["Credentials"]
    other = boto3.client(
        "ecr",
        endpoint_url=ecr.moto.url,
        region_name=ecr.moto.region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    found = other.describe_repositories(registryId=OTHER_ACCOUNT, repositoryNames=[repo])
    assert found["repositories"][0]["registryId"] == OTHER_ACCOUNT
    assert "assumed-role/seawall-push/dr-sync" in detail  # the data plane refuses that login
    assert not ok


async def test_the_role_works_end_to_end_with_iam_checks(iam: EcrWorld) -> None:
    options = {"role_arn": ROLE, "external_id": ROLE_EXTERNAL_ID}
    async with EcrAdapter(iam.config(keys=False, **options), **FAST) as adapter:
        ok, detail = await adapter.health()
        assert ok, detail
        assert "assumed-role/seawall-replication/seawall" in detail
        repo = _repo()
        digest, _ = await push_image(adapter, repo, "v1")
        tags, refs = await adapter.list_tag_refs(repo)
    assert tags == ["v1"] and refs["v1"].digest == digest == iam.digest(repo, "v1")


# -- health says what is wrong ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "keys", "says"),
    [
        ({"role_arn": LOCKED_ROLE}, None, f"STS AssumeRole of {LOCKED_ROLE}"),
        ({"role_arn": ROLE, "external_id": "wrong"}, None, "the role cannot be assumed"),
        ({}, ("AKIAUNKNOWNUNKNOWN00", "secret"), "InvalidClientTokenId"),
        ({}, ("AKIAUNKNOWNUNKNOWN00", "secret"), "does not accept this access key"),
    ],
)
async def test_health_says_what_is_wrong(
    iam: EcrWorld, options: dict[str, str], keys: tuple[str, str] | None, says: str
) -> None:
    config = iam.config(**options)
    if keys is not None:
        config = replace(config, username=keys[0], password=keys[1])
    async with EcrAdapter(config, **FAST) as adapter:
        ok, detail = await adapter.health()
    assert not ok
    assert says in detail


async def test_a_key_without_the_needed_permission_is_denied(iam: EcrWorld) -> None:
    iam_api = iam.aws("iam")
    iam_api.create_user(UserName="reader")  # no policy: may do nothing
    key = iam_api.create_access_key(UserName="reader")["AccessKey"]
    config = replace(iam.config(), username=key["AccessKeyId"], password=key["SecretAccessKey"])
    async with EcrAdapter(config, **FAST) as adapter:
        ok, detail = await adapter.health()
    assert not ok
    assert "not authorized to perform: ecr:DescribeRepositories" in detail


# -- boto3's connection pools -------------------------------------------------------------------


async def test_the_boto3_clients_are_closed_with_the_adapter(
    ecr: EcrWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every client the adapter made (STS for the role, then STS and ECR as the role) is
    closed by the time ``async with`` ends: no connection pool waits for the GC."""
    made: list[BaseClient] = []
    closed: list[BaseClient] = []
    make, close = boto3.session.Session.client, BaseClient.close

    def making(self: boto3.session.Session, *args: Any, **kwargs: Any) -> BaseClient:
        made.append(make(self, *args, **kwargs))
        return made[-1]

    def closing(self: BaseClient) -> None:
        closed.append(self)
        close(self)

    monkeypatch.setattr(boto3.session.Session, "client", making)
    monkeypatch.setattr(BaseClient, "close", closing)
    role = f"arn:aws:iam::{OTHER_ACCOUNT}:role/seawall-push"
    async with EcrAdapter(ecr.config(keys=False, role_arn=role), **FAST) as adapter:
        await adapter.api.caller()
        await adapter.api.repositories()
        assert len(made) == 3  # STS (AssumeRole), then STS and ECR with the role's keys
        assert made[0] in closed and len(closed) == 1  # the one for AssumeRole: at once
        pools = [c._endpoint.http_session._manager.pools for c in made[1:]]
        assert all(len(p) for p in pools)  # connections are open
    assert set(map(id, closed)) == set(map(id, made))
    assert not any(len(p) for p in pools)
    async with adapter:  # usable again: new clients
        await adapter.api.caller()
    assert len(made) == 5 and set(map(id, closed)) == set(map(id, made))
