"""``azure-acr``: Azure Container Registry.

Logins (option ``auth``, see :mod:`adapters.azure_acr_config`): the admin user or a
repository-scoped ACR token (a username and password through ACR's Docker token flow), or
Microsoft Entra ID through azure-identity (service principal with a secret or a certificate,
managed identity, workload identity, or the DefaultAzureCredential chain), whose token is
exchanged at ``/oauth2/exchange`` for an ACR refresh token (:mod:`adapters.azure_acr_aad`),
cached and exchanged again before it expires and once after a ``401``.

Beyond the OCI API (:mod:`adapters.azure_acr_client`): listings through ``/acr/v1/`` (each tag
with its digest: one request per repository per page), tag deletes through ``/acr/v1``, and
uploads chunked above :data:`~adapters.azure_acr_client.ACR_MAX_REQUEST_BYTES` (ACR answers
413 to larger request bodies). ACR has the OCI 1.1 referrers API, cross-repository mounts and
creates repositories on push.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from adapters.azure_acr_aad import AadExchange, TokenCredential
from adapters.azure_acr_client import ACR_MAX_REQUEST_BYTES, AcrClient
from adapters.azure_acr_config import (
    AUTH_MODES,
    GUID_PATTERN,
    TENANT_PATTERN,
    AcrSettings,
    parse_settings,
)
from adapters.base import AdapterOption, Capabilities, EndpointConfig, RegistryAdapter
from adapters.oci.credentials import CredentialProvider
from adapters.oci.types import ManifestRef
from adapters.protocol import CatalogListings

__all__ = ["AcrAdapter"]


class AcrAdapter(RegistryAdapter):
    """One Azure container registry (see the module).

    :param clock: what credentials' expiry is read against (``time.time``; tests inject the
        fake registry's clock).
    :param aad_credential: an azure-identity credential (any object with
        ``get_token(*scopes)``) to use instead of the one ``auth`` names.
    Other keyword arguments are :class:`~adapters.oci.client.OciClient` options.
    """

    type: ClassVar[str] = "azure-acr"
    description: ClassVar[str] = (
        "Azure Container Registry (admin user, repository-scoped tokens, Microsoft Entra ID)"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,
        referrers_api=True,
        blob_mount=True,
        chunked_upload=True,
        delete_tag=True,
        delete_manifest=True,
        create_namespace=False,  # repositories appear on push
        monolithic_max_bytes=ACR_MAX_REQUEST_BYTES,
    )
    options_spec: ClassVar[tuple[AdapterOption, ...]] = (
        AdapterOption(
            name="auth",
            help="how to log in: admin, token (a repository-scoped ACR token), aad-secret, "
            "aad-certificate, managed-identity, workload-identity or default "
            "(DefaultAzureCredential); without it a username/password logs in as admin does",
            choices=AUTH_MODES,
            example="aad-secret",
        ),
        AdapterOption(
            name="tenant_id",
            help="the Microsoft Entra tenant (GUID or domain) of the registry",
            pattern=TENANT_PATTERN,
            example="72f988bf-86f1-41af-91ab-2d7cd011db47",
        ),
        AdapterOption(
            name="client_id",
            help="the application (service principal, user-assigned or workload identity) "
            "client id; the access_key may hold it instead",
            pattern=GUID_PATTERN,
            example="00001111-aaaa-2222-bbbb-3333cccc4444",
        ),
        AdapterOption(
            name="certificate_path",
            help="aad-certificate: absolute path of a PEM file with the certificate and its "
            "private key (the access_secret is the key's passphrase, if any)",
            example="/etc/seawall/acr-sp.pem",
        ),
        AdapterOption(
            name="federated_token_file",
            help="workload-identity: the projected service-account token "
            "(default $AZURE_FEDERATED_TOKEN_FILE)",
            example="/var/run/secrets/azure/tokens/azure-identity-token",
        ),
        AdapterOption(
            name="authority_host",
            help="Microsoft Entra ID host (default: the registry's cloud, or "
            "$AZURE_AUTHORITY_HOST)",
            example="https://login.microsoftonline.us",
        ),
        AdapterOption(
            name="audience",
            help="what the AAD token is asked for (default https://containerregistry.azure.net;"
            " the sovereign clouds' Resource Manager for azurecr.cn/azurecr.us)",
            example="https://management.azure.com",
        ),
    )

    def __init__(
        self,
        config: EndpointConfig,
        *,
        clock: Callable[[], float] | None = None,
        aad_credential: TokenCredential | None = None,
        **client_options: Any,
    ) -> None:
        super().__init__(config, **client_options)
        self.settings: AcrSettings = parse_settings(config)
        self._clock = clock or time.time
        self._aad_credential = aad_credential
        self._exchange: AadExchange | None = None

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """The base checks, then ACR's: the login server URL, the auth mode and what it
        needs (tenant, client id, secret, certificate file, token file). No network."""
        super().check_config(config)
        parse_settings(config)

    # -- the client ------------------------------------------------------------------------

    def client(self) -> AcrClient:
        if self._client is None:
            self._client = AcrClient(
                self.registry_url(),
                acr_host=self.settings.cloud is not None,
                clock=self._clock,
                **self.client_kwargs(),
            )
        assert isinstance(self._client, AcrClient)
        return self._client

    def client_kwargs(self) -> dict[str, Any]:
        kwargs = super().client_kwargs()
        if self.settings.uses_aad:  # the login is the exchange's, never the AAD secret
            kwargs["username"] = kwargs["password"] = None
        return kwargs

    def credential_provider(self) -> CredentialProvider | None:
        """AAD endpoints: the exchange (one per adapter; the credential it holds caches the
        AAD token). Logins with a username and password need none."""
        if not self.settings.uses_aad:
            return None
        if self._exchange is None:
            self._exchange = AadExchange(
                self.settings,
                self.registry_url(),
                lambda: self.client().anonymous_session(),
                credential=self._aad_credential,
            )
        return self._exchange

    @property
    def exchanges(self) -> int:
        """AAD exchanges made so far (0 for other logins)."""
        return self._exchange.exchanges if self._exchange is not None else 0

    async def close(self) -> None:
        await super().close()
        if self._exchange is not None:
            await self._exchange.close()

    # -- listings --------------------------------------------------------------------------

    async def catalog_listings(self, prefix: str = "") -> CatalogListings:
        """Repositories from ``/acr/v1/_catalog`` (tags are listed per repository)."""
        return await self.client().acr_catalog(prefix), None

    async def list_tag_refs(self, repo: str) -> tuple[list[str], dict[str, ManifestRef]]:
        """Tags and their digests from ``/acr/v1/{repo}/_tags``: one request per page. The
        refs' media type is ``""`` and their size ``UNKNOWN_SIZE`` (-1): ACR's tag list does
        not say them."""
        return await self.client().acr_tag_refs(repo)
