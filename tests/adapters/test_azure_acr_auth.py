"""``azure-acr`` logins against the fakes, with real azure-identity: tokens that expire mid-run
(an injected clock, no sleeping), a refused refresh token exchanged again once (never in a
loop), refused exchanges and identities reported clearly, every AAD mode (service principal
secret and certificate, workload identity, managed identity, DefaultAzureCredential, an
injected credential), and repository-scoped ACR tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from adapters.azure_acr import AcrAdapter
from adapters.base import EndpointConfig
from adapters.oci.credentials import CredentialsUnavailable
from adapters.oci.errors import Unauthorized
from adapters.testing import push_image
from tests.support.acr_world import (
    CLIENT_ID,
    CLIENT_SECRET,
    FAST,
    TENANT_ID,
    aad_config,
    aad_options,
    admin_config,
    fake_aad,
    fake_acr,
    namespace,
)
from tests.support.fake_aad import FakeAad
from tests.support.fake_acr import FakeAcr
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.anyio

CERT_CLIENT = "c0c0c0c0-1111-4222-8333-444455556666"
WORKLOAD_CLIENT = "f0f0f0f0-1111-4222-8333-444455556666"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def aad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAad]:
    with fake_aad(tmp_path_factory.mktemp("aad")) as a:
        yield a


@pytest.fixture
def acr(seawall: SeawallProcess, aad: FakeAad) -> Iterator[FakeAcr]:
    """An ACR fake of the test's own: its clock, its counters, its faults."""
    with fake_acr(seawall, aad) as fake:
        yield fake


# -- expiry and refresh --------------------------------------------------------------------------


async def test_tokens_expire_mid_run_and_are_renewed(acr: FakeAcr, aad: FakeAad) -> None:
    repo = f"{namespace()}/app"
    async with AcrAdapter(aad_config(acr, aad), clock=acr.clock, **FAST) as adapter:
        await push_image(adapter, repo, "v1")
        assert adapter.exchanges == 1

        acr.reset_counts()
        acr.clock.advance(3600 + 1)  # every access token has expired, the refresh token not
        await push_image(adapter, repo, "v2")
        assert adapter.exchanges == 1, "new access tokens come from the same refresh token"
        assert acr.answers("POST /v2/{name}/blobs/uploads/").get(401) == 1
        assert acr.answers("GET /oauth2/token") == {200: 1}

        acr.reset_counts()

        acr.clock.advance(3 * 3600 - 3601 - 100)  # 100 s before the refresh token expires
        tags, refs = await adapter.list_tag_refs(repo)
        assert adapter.exchanges == 2, "exchanged again before the refresh token expired"
        assert acr.answers("GET /acr/v1/{name}/_tags") == {200: 1}, "no 401 on the way"
        assert sorted(tags) == sorted(refs) == ["v1", "v2"]


async def test_admin_access_tokens_expire_mid_run(acr: FakeAcr) -> None:
    repo = f"{namespace()}/app"
    async with AcrAdapter(admin_config(acr), clock=acr.clock, **FAST) as adapter:
        await push_image(adapter, repo, "v1")
        acr.reset_counts()
        acr.clock.advance(3601)  # the cached push token has expired at the registry
        digest, _ = await push_image(adapter, repo, "v2")
        assert acr.answers("POST /v2/{name}/blobs/uploads/").get(401) == 1
        assert acr.answers("GET /oauth2/token") == {200: 1}  # a new one, once
        ref = await adapter.client().head_manifest(repo, "v2")
        assert ref is not None and ref.digest == digest


async def test_a_refused_refresh_token_is_exchanged_again_once(acr: FakeAcr, aad: FakeAad) -> None:
    repo = f"{namespace()}/app"
    async with AcrAdapter(aad_config(acr, aad), clock=acr.clock, **FAST) as adapter:
        await push_image(adapter, repo, "v1")
        acr.revoke_refresh_tokens()  # as when a role assignment or the registry changed
        acr.revoke_access_tokens()
        tags, _ = await adapter.list_tag_refs(repo)
        assert tags == ["v1"]
        assert adapter.exchanges == 2
        assert acr.answers("GET /oauth2/token").get(401) == 1  # the old refresh token, once


async def test_a_refused_exchange_is_not_retried_in_a_loop(acr: FakeAcr, aad: FakeAad) -> None:
    repo = f"{namespace()}/app"
    async with AcrAdapter(aad_config(acr, aad), clock=acr.clock, **FAST) as adapter:
        await push_image(adapter, repo, "v1")
        acr.revoke_refresh_tokens()
        acr.revoke_access_tokens()
        acr.refuse_exchange = True
        with pytest.raises(CredentialsUnavailable, match="refused to exchange"):
            await adapter.client().head_manifest(repo, "v1")
        assert acr.count("POST /oauth2/exchange") == 2  # the first login, then one refresh


# -- what health() says --------------------------------------------------------------------------


async def test_health_reports_a_refused_exchange(acr: FakeAcr, aad: FakeAad) -> None:
    acr.refuse_exchange = True
    async with AcrAdapter(aad_config(acr, aad), **FAST) as adapter:
        ok, detail = await adapter.health()
    assert not ok
    assert f"{acr.service} refused to exchange the Microsoft Entra ID token" in detail
    assert CLIENT_ID in detail and TENANT_ID in detail and "AcrPull" in detail
    assert "Traceback" not in detail


async def test_health_reports_a_refused_service_principal(acr: FakeAcr, aad: FakeAad) -> None:
    async with AcrAdapter(aad_config(acr, aad, secret="wrong"), **FAST) as adapter:
        ok, detail = await adapter.health()
    assert not ok
    assert "Microsoft Entra ID" in detail and "refused" in detail and "AADSTS7000215" in detail
    assert acr.count("POST /oauth2/exchange") == 0  # nothing reached the registry's exchange


async def test_a_token_from_another_tenant_is_refused(acr: FakeAcr, aad: FakeAad) -> None:
    acr.tenant_id = "99999999-8888-4777-8666-555544443333"  # the registry's tenant is another
    async with AcrAdapter(aad_config(acr, aad), **FAST) as adapter:
        ok, detail = await adapter.health()
    assert not ok and "--tenant-id" in detail and "tenant" in detail


# -- every AAD mode through azure-identity -------------------------------------------------------


async def _works(adapter: AcrAdapter) -> None:
    ok, detail = await adapter.health()
    assert ok, detail
    repo = f"{namespace()}/app"
    digest, _ = await push_image(adapter, repo, "v1")
    tags, refs = await adapter.list_tag_refs(repo)
    assert tags == ["v1"] and refs["v1"].digest == digest
    assert adapter.exchanges == 1


async def test_service_principal_with_a_certificate(
    acr: FakeAcr, aad: FakeAad, tmp_path: Path
) -> None:
    pem = aad.add_certificate_client(CERT_CLIENT, tmp_path / "sp.pem")
    options = aad_options(aad, auth="aad-certificate", certificate_path=str(pem))
    config = EndpointConfig(acr.url, username=CERT_CLIENT, options=options)
    before = aad.counts().get("POST token", 0)
    async with AcrAdapter(config, **FAST) as adapter:
        await _works(adapter)
    assert aad.counts()["POST token"] == before + 1  # a signed client assertion was accepted


async def test_workload_identity(acr: FakeAcr, aad: FakeAad, tmp_path: Path) -> None:
    token_file = aad.add_federated_client(WORKLOAD_CLIENT, tmp_path / "sa-token")
    options = aad_options(
        aad,
        auth="workload-identity",
        client_id=WORKLOAD_CLIENT,
        federated_token_file=str(token_file),
    )
    async with AcrAdapter(EndpointConfig(acr.url, options=options), **FAST) as adapter:
        await _works(adapter)


async def test_managed_identity(
    acr: FakeAcr, aad: FakeAad, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", aad.managed_identity_endpoint)  # App Service's
    monkeypatch.setenv("IDENTITY_HEADER", aad.managed_identity_header)
    before = aad.counts().get("GET msi", 0)
    config = EndpointConfig(acr.url, options={"auth": "managed-identity"})
    async with AcrAdapter(config, **FAST) as adapter:
        await _works(adapter)
    assert aad.counts()["GET msi"] == before + 1


async def test_default_azure_credential_from_the_environment(
    acr: FakeAcr, aad: FakeAad, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_CLIENT_ID": CLIENT_ID,
        "AZURE_CLIENT_SECRET": CLIENT_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    config = EndpointConfig(acr.url, options=aad_options(aad, auth="default"))
    async with AcrAdapter(config, **FAST) as adapter:
        await _works(adapter)


class MintingCredential:
    """An azure-identity-compatible credential (``get_token``) handed to the adapter."""

    def __init__(self, aad: FakeAad) -> None:
        self.aad, self.scopes = aad, list[str]()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes += scopes
        token, expires_on = self.aad.mint(CLIENT_ID, scopes[0].removesuffix("/.default"))
        return AccessToken(token, expires_on)


async def test_an_injected_credential_is_used(acr: FakeAcr, aad: FakeAad) -> None:
    credential = MintingCredential(aad)
    config = EndpointConfig(acr.url, options={"auth": "default", "tenant_id": TENANT_ID})
    async with AcrAdapter(config, aad_credential=credential, **FAST) as adapter:
        await _works(adapter)
    assert credential.scopes == ["https://containerregistry.azure.net/.default"]


# -- repository-scoped ACR tokens ----------------------------------------------------------------


async def test_repository_scoped_token(acr: FakeAcr) -> None:
    ns = namespace()
    acr.add_token(
        "ci", "ci-password", {f"{ns}/*": ["content/read", "content/write", "metadata/read"]}
    )
    config = EndpointConfig(acr.url, "ci", "ci-password", options={"auth": "token"})
    async with AcrAdapter(config, **FAST) as adapter:
        digest, _ = await push_image(adapter, f"{ns}/app", "v1")
        tags, refs = await adapter.list_tag_refs(f"{ns}/app")
        assert tags == ["v1"] and refs["v1"].digest == digest
        with pytest.raises(Unauthorized):
            await push_image(adapter, f"other{ns}/app", "v1")  # outside its scope map
        with pytest.raises(Unauthorized):
            await adapter.catalog_listings()  # a repository-scoped token lists no catalog


async def test_a_token_without_metadata_read_lists_through_the_oci_api(acr: FakeAcr) -> None:
    ns = namespace()
    async with AcrAdapter(admin_config(acr), **FAST) as admin:
        digest, _ = await push_image(admin, f"{ns}/app", "v1")
    acr.add_token("reader", "reader-password", {f"{ns}/*": ["content/read"]})
    config = EndpointConfig(acr.url, "reader", "reader-password", options={"auth": "token"})
    async with AcrAdapter(config, **FAST) as adapter:
        for _ in range(2):
            tags, refs = await adapter.list_tag_refs(f"{ns}/app")
            assert tags == ["v1"] and refs == {}  # the engine HEADs these
        ref = await adapter.client().head_manifest(f"{ns}/app", "v1")
        assert ref is not None and ref.digest == digest
    # one try (the challenge, then a token without metadata_read), then remembered
    assert acr.answers("GET /acr/v1/{name}/_tags") == {401: 2}
    assert acr.count("GET /v2/{name}/tags/list") == 2
