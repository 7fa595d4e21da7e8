"""``azure-acr`` on the ACR fake in front of a real Seawall: the adapter conformance kit with the
admin user and with a service principal logged in through azure-identity and Microsoft Entra
ID (the HTTPS fake), and every bad input refused before anything is sent."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters.azure_acr import AcrAdapter
from adapters.azure_acr_client import ACR_MAX_REQUEST_BYTES
from adapters.base import EndpointConfig, InvalidEndpoint, RegistryAdapter
from adapters.registry import get
from adapters.testing import AdapterConformance, push_image
from registry.oci import mediatypes as mt
from tests.support.acr_world import (
    CLIENT_ID,
    FAST,
    TENANT_ID,
    aad_config,
    admin_config,
    fake_aad,
    fake_acr,
    namespace,
)
from tests.support.fake_aad import FakeAad
from tests.support.fake_acr import FakeAcr
from tests.support.server import SeawallProcess


@pytest.fixture(scope="module")
def aad(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeAad]:
    with fake_aad(tmp_path_factory.mktemp("aad")) as a:
        yield a


@pytest.fixture(scope="module")
def acr(seawall: SeawallProcess, aad: FakeAad) -> Iterator[FakeAcr]:
    with fake_acr(seawall, aad) as fake:
        yield fake


class AcrConformance(AdapterConformance):
    lists_tag_digests = True  # /acr/v1/{name}/_tags: each tag's digest
    lists_media_types = False  # ... and nothing else
    lists_manifest_sizes = False


class TestAcrWithAdminUser(AcrConformance):
    @pytest.fixture
    async def adapter(self, acr: FakeAcr) -> AsyncIterator[RegistryAdapter]:
        async with AcrAdapter(admin_config(acr), **FAST) as adapter:
            yield adapter


class TestAcrWithServicePrincipal(AcrConformance):
    """azure-identity's ClientSecretCredential against the fake authority, then the exchange."""

    @pytest.fixture
    async def adapter(self, acr: FakeAcr, aad: FakeAad) -> AsyncIterator[RegistryAdapter]:
        async with AcrAdapter(aad_config(acr, aad), **FAST) as adapter:
            yield adapter


# -- declaration ---------------------------------------------------------------------------------


def test_declared_capabilities_are_acrs() -> None:
    caps = AcrAdapter.capabilities
    assert get("azure-acr") is AcrAdapter
    assert (caps.referrers_api, caps.blob_mount, caps.chunked_upload) == (True, True, True)
    assert (caps.delete_tag, caps.delete_manifest, caps.catalog) == (True, True, True)
    assert caps.monolithic_max_bytes == ACR_MAX_REQUEST_BYTES < 20_000_000  # ACR 413s above
    client = AcrAdapter(EndpointConfig("https://myregistry.azurecr.io")).client()
    assert client.chunk_bytes == client.monolithic_max_bytes == ACR_MAX_REQUEST_BYTES
    info = AcrAdapter.info()
    assert info["supported_copy_by_chunk"] is True
    assert {o["name"] for o in info["options"]} == {
        "auth",
        "tenant_id",
        "client_id",
        "certificate_path",
        "federated_token_file",
        "authority_host",
        "audience",
    }


# -- bad input is refused before anything is sent -------------------------------------------------

ACR = "https://myregistry.azurecr.io"
SP = {"auth": "aad-secret", "tenant_id": TENANT_ID}


def config(
    url: str = ACR, user: str | None = None, password: str | None = None, **options: str
) -> EndpointConfig:
    return EndpointConfig(url, username=user, password=password, options=options)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (config("gopher://myregistry.azurecr.io"), "use http:// or https://"),
        (config("http://myregistry.azurecr.io", "u", "p"), "ACR serves https"),
        (config("https://myregistry.azurecr.io:5000", "u", "p"), "ACR serves https"),
        (config("https://myregistry.azurecr.io/v2/team", "u", "p"), "login server only"),
        (config("https://myregistry.eastus.data.azurecr.io", "u", "p"), "data endpoint"),
        (config("https://-bad-.azurecr.io", "u", "p"), "not a login server"),
        (config(auth="kerberos"), "use one of admin, token, aad-secret"),
        (config(auth="admin"), "needs the admin user's name and password"),
        (config(ACR, "ci-token", None, auth="token"), "needs the ACR token's name and password"),
        (config(ACR, None, "p"), "a password without a username"),
        (config(ACR, CLIENT_ID, "s", auth="aad-secret"), "needs --tenant-id"),
        (config(ACR, CLIENT_ID, "s", auth="aad-secret", tenant_id="not a tenant"), "tenant-id"),
        (config(ACR, "not-a-guid", "s", **SP), "is not a GUID"),
        (config(ACR, None, "s", **SP), "needs the application's client id"),
        (config(ACR, CLIENT_ID, None, **SP), "needs the service principal's client secret"),
        (config(ACR, CLIENT_ID, "s", **SP, client_id=TENANT_ID), "name different clients"),
        (config(ACR, None, "s", auth="managed-identity"), "uses no secret"),
        (config(ACR, "u", "p", tenant_id=TENANT_ID), "--tenant-id is not used with --auth admin"),
        (config(ACR, "u", "p", no_such="x"), "no option 'no_such'"),
        (config(ACR, CLIENT_ID, "s", **SP, authority_host="http://login.example"), "https"),
        (config(ACR, CLIENT_ID, "s", **SP, audience="containerregistry"), "audience"),
        (
            config(ACR, CLIENT_ID, None, **{**SP, "auth": "aad-certificate"}),
            "--certificate-path is required",
        ),
        (
            config(ACR, CLIENT_ID, None, **{**SP, "auth": "aad-certificate"}, certificate_path="x"),
            "absolute path",
        ),
        (
            config(
                ACR, CLIENT_ID, None, **{**SP, "auth": "aad-certificate"}, certificate_path="/no"
            ),
            "not inside SEAWALL_CREDENTIALS_DIR",
        ),
        (config(ACR, CLIENT_ID, "s", **SP, certificate_path="/etc/hosts"), "not inside"),
        (
            config(ACR, None, None, auth="workload-identity", tenant_id=TENANT_ID),
            "client id",
        ),
    ],
)
def test_bad_endpoints_are_refused_before_anything_is_sent(
    cfg: EndpointConfig, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(InvalidEndpoint, match=message):
        AcrAdapter.check_config(cfg)
    with pytest.raises(InvalidEndpoint):
        AcrAdapter(cfg)  # nothing is constructed either


def test_a_bearer_token_is_not_a_login() -> None:
    with pytest.raises(InvalidEndpoint, match="takes no bearer token"):
        AcrAdapter.check_config(EndpointConfig(ACR, token="abc"))


def test_a_certificate_file_must_hold_certificate_and_key(tmp_path: Path) -> None:
    only_cert = tmp_path / "cert.pem"
    only_cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    options = {**SP, "auth": "aad-certificate", "certificate_path": str(only_cert)}
    cfg = config(ACR, CLIENT_ID, None, **options)
    with pytest.raises(InvalidEndpoint, match="certificate and its private key"):
        AcrAdapter.check_config(cfg)


def test_a_certificate_file_over_1_mib_is_refused_unread(tmp_path: Path) -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    pem += b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
    big = tmp_path / "big.pem"
    with big.open("wb") as f:
        f.write(pem)
        f.truncate(64 << 20)  # sparse: a certificate and key, then 64 MiB of nothing
    options = {**SP, "auth": "aad-certificate", "certificate_path": str(big)}
    with pytest.raises(InvalidEndpoint, match=r"not a regular file of at most 1 MiB"):
        AcrAdapter.check_config(config(ACR, CLIENT_ID, None, **options))
    small = tmp_path / "small.pem"
    small.write_bytes(pem)
    options["certificate_path"] = str(small)
    AcrAdapter.check_config(config(ACR, CLIENT_ID, None, **options))


def test_reprs_never_show_the_client_secret() -> None:
    secret = "Q~aad.client-secret_for~reprs"
    cfg = config(ACR, CLIENT_ID, secret, **SP)
    adapter = AcrAdapter(cfg)
    exchange = adapter.credential_provider()
    assert exchange is not None
    for shown in (adapter, adapter.settings, exchange, adapter.client()):
        assert secret not in repr(shown) and secret not in str(shown)
    assert adapter.settings.client_secret == secret


def test_good_endpoints_resolve_their_cloud_and_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = AcrAdapter(config(ACR, "myregistry", "pw")).settings
    assert (admin.auth, admin.service, admin.uses_aad) == ("admin", "myregistry.azurecr.io", False)
    assert AcrAdapter(config(ACR)).settings.auth == "anonymous"
    china = AcrAdapter(config("https://reg.azurecr.cn", CLIENT_ID, "s", **SP)).settings
    assert china.authority_host == "https://login.chinacloudapi.cn"
    assert china.aad_scope == "https://management.chinacloudapi.cn/.default"
    gov = AcrAdapter(config("https://Reg.AzureCR.us", None, None, auth="managed-identity"))
    assert gov.settings.service == "reg.azurecr.us"
    assert gov.settings.authority_host == "https://login.microsoftonline.us"
    domain = {**SP, "tenant_id": "contoso.onmicrosoft.com"}
    public = AcrAdapter(config(ACR, CLIENT_ID, "sp-secret-xyz", **domain))
    assert public.settings.aad_scope == "https://containerregistry.azure.net/.default"
    assert "sp-secret-xyz" not in repr(public.settings)
    test_plane = AcrAdapter(config("http://127.0.0.1:5000", "u", "p")).settings
    assert (test_plane.cloud, test_plane.service) == (None, "127.0.0.1:5000")
    token = tmp_path / "token"
    token.write_text("eyJ...")
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT_ID)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token))
    workload = AcrAdapter(config(ACR, auth="workload-identity")).settings  # AKS's variables
    assert (workload.tenant_id, workload.client_id) == (TENANT_ID, CLIENT_ID)
    assert workload.federated_token_file == str(token)


@pytest.mark.anyio
async def test_a_registry_without_acrs_api_is_listed_through_the_oci_api(
    seawall: SeawallProcess,
) -> None:
    """A test data plane that is not ACR (here: Seawall itself) has no ``/acr/v1``: the
    adapter notices once and lists through the OCI API."""
    config = EndpointConfig(seawall.url, username="admin", password=seawall.admin_password)
    async with AcrAdapter(config, **FAST) as adapter:
        repo = f"{namespace()}/app"
        digest, _ = await push_image(adapter, repo, "v1")
        names, _ = await adapter.catalog_listings(repo.split("/")[0] + "/")
        tags, refs = await adapter.list_tag_refs(repo)
        await adapter.client().put_manifest(
            repo, "v2", (await adapter.client().get_manifest(repo, "v1")).data, mt.OCI_MANIFEST
        )
        await adapter.client().delete_tag(repo, "v2")
        assert adapter.client().metadata_api is False
    assert names == [repo]
    assert tags == ["v1"] and refs["v1"].digest == digest
