"""``azure-acr`` logins against the fakes, with real azure-identity: tokens that expire mid-run
(an injected clock, no sleeping), a refused refresh token exchanged again once (never in a
loop), refused exchanges and identities reported clearly, every AAD mode (service principal
secret and certificate, workload identity, managed identity, DefaultAzureCredential, an
injected credential), and repository-scoped ACR tokens."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from azure.core.credentials import AccessToken

from adapters.azure_acr import AcrAdapter
from adapters.azure_acr_aad import AadExchange, AadUnavailable
from adapters.azure_acr_client import METADATA_REFUSAL_SECONDS
from adapters.azure_acr_config import AcrSettings, parse_settings
from adapters.base import EndpointConfig
from adapters.oci.credentials import CredentialsUnavailable
from adapters.oci.errors import ConnectionFailed, OciError, Transient, Unauthorized
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
from tests.support.server import SeawallProcess, free_port

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


async def test_a_repository_without_metadata_read_falls_back_alone_for_a_while(
    acr: FakeAcr,
) -> None:
    """One repository the token may not read metadata of is listed through ``/v2`` for
    ``METADATA_REFUSAL_SECONDS``; the token's other repositories keep ``/acr/v1``."""
    ns = namespace()
    async with AcrAdapter(admin_config(acr), **FAST) as admin:
        digest, _ = await push_image(admin, f"{ns}/open", "v1")
        await push_image(admin, f"{ns}/closed", "v1")
    scope_map = {f"{ns}/open": ["content/read", "metadata/read"], f"{ns}/closed": ["content/read"]}
    acr.add_token("mixed", "mixed-password", scope_map)
    config = EndpointConfig(acr.url, "mixed", "mixed-password", options={"auth": "token"})
    tags_route, oci_route = "GET /acr/v1/{name}/_tags", "GET /v2/{name}/tags/list"
    async with AcrAdapter(config, clock=acr.clock, **FAST) as adapter:
        tags, refs = await adapter.list_tag_refs(f"{ns}/closed")
        assert tags == ["v1"] and refs == {}  # through /v2: the engine HEADs these
        tags, refs = await adapter.list_tag_refs(f"{ns}/open")
        assert tags == ["v1"] and refs["v1"].digest == digest  # still /acr/v1
        refused = acr.answers(tags_route).get(401, 0)
        for _ in range(2):
            assert (await adapter.list_tag_refs(f"{ns}/open"))[1]["v1"].digest == digest
            assert (await adapter.list_tag_refs(f"{ns}/closed"))[1] == {}
        assert acr.answers(tags_route).get(200) == 3
        assert acr.answers(tags_route).get(401) == refused  # the refusal was remembered
        assert acr.count(oci_route) == 3
        acr.clock.advance(METADATA_REFUSAL_SECONDS + 1)  # scope maps change: asked again
        assert (await adapter.list_tag_refs(f"{ns}/closed"))[1] == {}
        assert acr.answers(tags_route).get(401, 0) > refused
        assert acr.count(oci_route) == 4


# -- Microsoft Entra ID busy, failing or unreachable: transient, not a refusal ------------------


class BusyAuthority:
    """A Microsoft Entra ID (and App Service managed identity endpoint) stand-in over HTTPS
    (the fake AAD's certificate) whose token endpoints answer ``status``."""

    def __init__(self, aad: FakeAad) -> None:
        self.aad, self.port, self.status = aad, free_port(), 429
        self.requests = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> BusyAuthority:
        app = web.Application()
        app.router.add_get(f"/{TENANT_ID}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_post(f"/{TENANT_ID}/oauth2/v2.0/token", self._token)
        app.router.add_get("/msi/token", self._token)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.aad.directory / "aad-server.pem")
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _openid(self, request: web.Request) -> web.Response:
        base = f"{self.url}/{TENANT_ID}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{base}/v2.0",
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        self.requests += 1
        error = {
            429: ("temporarily_unavailable", "AADSTS50196: too many requests."),
            503: ("temporarily_unavailable", "AADSTS90033: service unavailable."),
            401: ("invalid_client", "AADSTS7000215: Invalid client secret provided."),
        }[self.status]
        body = {"error": error[0], "error_description": error[1]}
        # azure-core waits 0.01 s before each of its retries; MSAL (which reads whole
        # seconds only) replays the answer for 5 s without asking again
        headers = {"Retry-After": "0.01"} if self.status != 401 else {}
        return web.json_response(body, status=self.status, headers=headers)


def _busy_config(authority: BusyAuthority) -> EndpointConfig:
    options = {"auth": "aad-secret", "tenant_id": TENANT_ID, "authority_host": authority.url}
    return EndpointConfig(
        "https://myregistry.azurecr.io", CLIENT_ID, CLIENT_SECRET, options=options
    )


@pytest.mark.parametrize(("status", "says"), [(429, "throttling"), (503, "failing (503)")])
async def test_entra_id_throttling_or_failing_is_transient(
    aad: FakeAad, status: int, says: str
) -> None:
    async with BusyAuthority(aad) as authority:
        authority.status = status
        async with AcrAdapter(_busy_config(authority), **FAST) as adapter:
            provider = adapter.credential_provider()
            assert provider is not None
            with pytest.raises(AadUnavailable) as caught:
                await provider()
            asked = authority.requests
            assert asked >= 2  # azure-core retried first
            ok, detail = await adapter.health()
    assert isinstance(caught.value, Transient) and caught.value.status == status
    assert f"{status}: Microsoft Entra ID ({authority.url}) is {says}" in str(caught.value)
    assert not ok and says in detail and "tried again later" in detail
    assert authority.requests == asked  # MSAL answered from its cache: still transient


async def test_entra_id_refusing_the_secret_is_not_transient(aad: FakeAad) -> None:
    async with BusyAuthority(aad) as authority:
        authority.status = 401
        async with AcrAdapter(_busy_config(authority), **FAST) as adapter:
            provider = adapter.credential_provider()
            assert provider is not None
            with pytest.raises(CredentialsUnavailable, match=r"refused.*AADSTS7000215"):
                await provider()


async def test_a_managed_identity_endpoint_failing_is_transient(
    aad: FakeAad, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with BusyAuthority(aad) as authority:
        authority.status = 503
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{authority.url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", "header")
        config = EndpointConfig(
            "https://myregistry.azurecr.io", options={"auth": "managed-identity"}
        )
        async with AcrAdapter(config, **FAST) as adapter:
            provider = adapter.credential_provider()
            assert provider is not None
            with pytest.raises(AadUnavailable, match="the managed identity endpoint is failing"):
                await provider()


class _Refusing:
    """A credential whose ``get_token`` raises ``error`` (no HTTP of its own)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise self.error


def _settings() -> AcrSettings:
    config = EndpointConfig(
        "https://myregistry.azurecr.io",
        CLIENT_ID,
        CLIENT_SECRET,
        options={"tenant_id": TENANT_ID, "auth": "aad-secret"},
    )
    return parse_settings(config)


def _exchange(error: Exception) -> AadExchange:
    def no_session() -> Any:
        raise AssertionError("no exchange expected")

    return AadExchange(_settings(), "https://myregistry.azurecr.io", no_session, _Refusing(error))


class _Answer:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.http_response = SimpleNamespace(status_code=status, headers=headers)


def test_azure_errors_are_translated_by_what_happened() -> None:
    from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
    from azure.identity import CredentialUnavailableError
    from msal.exceptions import MsalServiceError

    def raised_from(cause: Exception) -> ClientAuthenticationError:
        error = ClientAuthenticationError(message=f"Authentication failed: {cause}")
        error.__cause__ = cause
        return error

    down = raised_from(ServiceRequestError("Failed to establish a new connection"))
    failed = raised_from(MsalServiceError("HTTP Error: 503", error=None, error_description=None))
    refused = ClientAuthenticationError(message="Authentication failed: AADSTS7000215: bad")
    for error, status, kind in [
        (refused, 429, AadUnavailable),
        (refused, 502, AadUnavailable),
        (refused, 401, CredentialsUnavailable),
        (refused, 400, CredentialsUnavailable),
        (refused, None, CredentialsUnavailable),
        (down, None, ConnectionFailed),
        (failed, None, AadUnavailable),
        (CredentialUnavailableError("no managed identity endpoint"), None, CredentialsUnavailable),
        (CredentialUnavailableError("no managed identity endpoint"), 503, AadUnavailable),
    ]:
        exchange = _exchange(error)
        if status is not None:
            exchange._record(_Answer(status, {}))  # as azure-core's response hook would
            exchange._answers.status = status
        with pytest.raises(OciError) as caught:
            exchange._aad_token()
        assert type(caught.value) is kind, (error, status)
        assert isinstance(caught.value, Transient) is (kind is not CredentialsUnavailable)


def test_a_throttled_answer_msal_replays_without_a_request_stays_transient() -> None:
    """MSAL answers a 429 again from its cache for the Retry-After, with no HTTP request
    (no status recorded): still transient then, not a refusal."""
    from azure.core.exceptions import ClientAuthenticationError

    exchange = _exchange(ClientAuthenticationError(message="Authentication failed: busy"))
    exchange._record(_Answer(429, {"Retry-After": "30"}))
    with pytest.raises(AadUnavailable):
        exchange._aad_token()  # the replay: the hook was not called this time
    exchange._busy = (429, 0.0)  # the Retry-After is over: MSAL would ask again
    with pytest.raises(CredentialsUnavailable):
        exchange._aad_token()
