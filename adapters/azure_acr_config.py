"""The settings of an ``azure-acr`` endpoint, parsed and checked before anything is sent.

An endpoint is a registry's login server (``https://NAME.azurecr.io``; ``azurecr.cn`` and
``azurecr.us`` for the sovereign clouds; any other ``http(s)://host[:port]`` for a test data
plane or a private DNS name) and one way of logging in (option ``auth``):

==================  =====================================================================
``admin``           the registry's admin user: username and password
``token``           a repository-scoped ACR token: its name and one of its passwords
``aad-secret``      a Microsoft Entra ID service principal: tenant, client id, client secret
``aad-certificate`` a service principal with a certificate: tenant, client id, a PEM file
``managed-identity`` the host's managed identity (a client id picks a user-assigned one)
``workload-identity`` a Kubernetes workload identity (tenant, client id, federated token file)
``default``         azure-identity's DefaultAzureCredential chain
==================  =====================================================================

Without ``auth``, a username and password log in as ``admin`` does (the admin user, an ACR
token, or a service principal's id and secret all work that way); nothing is anonymous pull.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from adapters.base import EndpointConfig, InvalidEndpoint

__all__ = [
    "AAD_MODES",
    "ACR_REFRESH_USERNAME",
    "AUTH_MODES",
    "CLOUDS",
    "GUID_PATTERN",
    "TENANT_PATTERN",
    "AcrSettings",
    "AzureCloud",
    "parse_settings",
]

#: The username that says "the password is an ACR refresh token" (from an AAD exchange).
ACR_REFRESH_USERNAME = "00000000-0000-0000-0000-000000000000"
AUTH_MODES = (
    "admin",
    "token",
    "aad-secret",
    "aad-certificate",
    "managed-identity",
    "workload-identity",
    "default",
)
AAD_MODES = frozenset(AUTH_MODES[2:])
GUID_PATTERN = r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_DOMAIN = r"(?=.{4,253}$)(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}"
TENANT_PATTERN = f"{GUID_PATTERN}|{_DOMAIN}"
_LOGIN_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_HTTPS_HOST = re.compile(r"^(?:https://)?([a-zA-Z0-9.-]+(?::\d{1,5})?)/?$")


@dataclass(frozen=True, slots=True)
class AzureCloud:
    """Where a cloud's registries, identity authority and token audience are."""

    name: str
    registry_suffix: str  # login servers are NAME.<suffix>
    authority_host: str  # Microsoft Entra ID
    audience: str  # what the AAD token is for; the scope asked is <audience>/.default


CLOUDS: tuple[AzureCloud, ...] = (
    AzureCloud(
        "AzureCloud",
        "azurecr.io",
        "https://login.microsoftonline.com",
        "https://containerregistry.azure.net",
    ),
    AzureCloud(
        "AzureChinaCloud",
        "azurecr.cn",
        "https://login.chinacloudapi.cn",
        "https://management.chinacloudapi.cn",
    ),
    AzureCloud(
        "AzureUSGovernment",
        "azurecr.us",
        "https://login.microsoftonline.us",
        "https://management.usgovcloudapi.net",
    ),
)
_PUBLIC = CLOUDS[0]
KNOWN_AUTHORITY_HOSTS = frozenset(urlsplit(c.authority_host).hostname for c in CLOUDS)


@dataclass(frozen=True, slots=True)
class AcrSettings:
    """One endpoint's login, resolved: what ``auth`` means here and every value it needs.

    ``auth`` is one of :data:`AUTH_MODES` or ``anonymous``. ``service`` is the registry's
    login server (``host[:port]``), the ``service`` of ACR's token requests.
    """

    auth: str
    service: str
    cloud: AzureCloud | None  # None: not an ACR host (a test data plane, a private name)
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)  # or the certificate key passphrase
    certificate_path: str = ""
    federated_token_file: str = ""
    authority_host: str = ""
    audience: str = ""

    @property
    def uses_aad(self) -> bool:
        return self.auth in AAD_MODES

    @property
    def aad_scope(self) -> str:
        """The scope asked of Microsoft Entra ID for the exchange."""
        return self.audience.rstrip("/") + "/.default"

    @property
    def who(self) -> str:
        """The identity, for messages (never a secret)."""
        parts = [self.auth]
        if self.client_id:
            parts.append(f"client {self.client_id}")
        if self.tenant_id:
            parts.append(f"tenant {self.tenant_id}")
        return ", ".join(parts)


def parse_settings(config: EndpointConfig, environ: Mapping[str, str] = os.environ) -> AcrSettings:
    """The endpoint's settings, or :class:`InvalidEndpoint` saying what to fix. Reads only the
    named certificate and token files' metadata and headers: no network.

    ``environ`` supplies workload identity's standard variables (``AZURE_TENANT_ID``,
    ``AZURE_CLIENT_ID``, ``AZURE_FEDERATED_TOKEN_FILE``) and ``AZURE_AUTHORITY_HOST``.
    """
    service, cloud = _login_server(config.url)
    if config.token:
        raise InvalidEndpoint(
            "azure-acr takes no bearer token: give a username and password (the admin user, "
            "an ACR token, or 00000000-0000-0000-0000-000000000000 and an ACR refresh token), "
            "or log in through Microsoft Entra ID with --auth"
        )
    auth = config.option("auth") or ("admin" if config.username else "anonymous")
    if auth not in AUTH_MODES and auth != "anonymous":
        raise InvalidEndpoint(
            f"azure-acr --auth {auth[:100]!r}: use one of {', '.join(AUTH_MODES)}"
        )
    _refuse_options_not_for(auth, config)
    if auth in ("admin", "token"):
        if not config.username or not config.password:
            what = "the admin user's name" if auth == "admin" else "the ACR token's name"
            raise InvalidEndpoint(
                f"azure-acr --auth {auth} needs {what} and password as the endpoint's "
                "credential (access_key and access_secret)"
            )
        return AcrSettings(auth, service, cloud)
    if auth == "anonymous":
        if config.password:
            raise InvalidEndpoint("azure-acr: a password without a username: give both")
        return AcrSettings(auth, service, cloud)
    return _aad_settings(auth, service, cloud, config, environ)


def _login_server(url: str) -> tuple[str, AzureCloud | None]:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise InvalidEndpoint(f"azure-acr endpoint URL {url[:200]!r} is not valid: {e}") from None
    host = (parts.hostname or "").lower()
    if not host or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"azure-acr endpoint URL {url[:200]!r}: give the login server only, "
            "https://NAME.azurecr.io (no path)"
        )
    cloud = next((c for c in CLOUDS if host.endswith("." + c.registry_suffix)), None)
    if cloud is None:
        return parts.netloc.lower(), None  # a test data plane or a private name: any host
    name = host[: -len(cloud.registry_suffix) - 1]
    if parts.scheme != "https" or port not in (None, 443):
        raise InvalidEndpoint(
            f"azure-acr endpoint URL {url[:200]!r}: ACR serves https on port 443 only; "
            f"use https://{host}"
        )
    if not _LOGIN_LABEL.match(name):
        hint = " (a data endpoint serves blobs only)" if ".data" in name or "." in name else ""
        raise InvalidEndpoint(
            f"azure-acr endpoint URL {url[:200]!r}: {host} is not a login server{hint}; "
            f"use https://NAME.{cloud.registry_suffix} as shown by 'az acr show'"
        )
    return host, cloud


_MODE_OPTIONS: dict[str, frozenset[str]] = {
    "aad-secret": frozenset({"tenant_id", "client_id", "authority_host", "audience"}),
    "aad-certificate": frozenset(
        {"tenant_id", "client_id", "certificate_path", "authority_host", "audience"}
    ),
    "managed-identity": frozenset({"tenant_id", "client_id", "audience"}),
    "workload-identity": frozenset(
        {"tenant_id", "client_id", "federated_token_file", "authority_host", "audience"}
    ),
    "default": frozenset({"tenant_id", "client_id", "authority_host", "audience"}),
}


def _refuse_options_not_for(auth: str, config: EndpointConfig) -> None:
    allowed = _MODE_OPTIONS.get(auth, frozenset()) | {"auth"}
    for name, value in config.options:
        if value and name not in allowed:
            flag = "--" + name.replace("_", "-")
            mode = f"--auth {auth}" if auth != "anonymous" else "no --auth"
            users = sorted(m for m, names in _MODE_OPTIONS.items() if name in names)
            raise InvalidEndpoint(
                f"azure-acr {flag} is not used with {mode}; it is for --auth {' or '.join(users)}"
            )


def _aad_settings(
    auth: str,
    service: str,
    cloud: AzureCloud | None,
    config: EndpointConfig,
    environ: Mapping[str, str],
) -> AcrSettings:
    workload = auth == "workload-identity"
    tenant = config.option("tenant_id") or (environ.get("AZURE_TENANT_ID", "") if workload else "")
    client_id = _client_id(auth, config, environ.get("AZURE_CLIENT_ID", "") if workload else "")
    if auth in ("aad-secret", "aad-certificate", "workload-identity") and not tenant:
        raise InvalidEndpoint(
            f"azure-acr --auth {auth} needs --tenant-id: the registry's Microsoft Entra "
            "tenant (a GUID or a domain such as contoso.onmicrosoft.com)"
        )
    if tenant and not re.fullmatch(TENANT_PATTERN, tenant):
        raise InvalidEndpoint(
            f"azure-acr --tenant-id {tenant[:100]!r}: use the tenant's GUID or its domain "
            "(contoso.onmicrosoft.com)"
        )
    secret = config.password or ""
    if auth == "aad-secret" and not secret:
        raise InvalidEndpoint(
            "azure-acr --auth aad-secret needs the service principal's client secret as the "
            "endpoint's access_secret"
        )
    if auth not in ("aad-secret", "aad-certificate") and secret:
        raise InvalidEndpoint(f"azure-acr --auth {auth} uses no secret: leave access_secret empty")
    certificate = (
        _certificate(config.option("certificate_path")) if auth == "aad-certificate" else ""
    )
    token_file = ""
    if workload:
        token_file = config.option("federated_token_file") or environ.get(
            "AZURE_FEDERATED_TOKEN_FILE", ""
        )
        token_file = _readable_file(token_file, "--federated-token-file", "the projected token")
    base = cloud or _PUBLIC
    authority = _authority(
        config.option("authority_host") or environ.get("AZURE_AUTHORITY_HOST", "")
    )
    return AcrSettings(
        auth,
        service,
        cloud,
        tenant_id=tenant,
        client_id=client_id,
        client_secret=secret,
        certificate_path=certificate,
        federated_token_file=token_file,
        authority_host=authority or base.authority_host,
        audience=_audience(config.option("audience")) or base.audience,
    )


def _client_id(auth: str, config: EndpointConfig, from_env: str) -> str:
    option, key = config.option("client_id"), config.username or ""
    if option and key and option.lower() != key.lower():
        raise InvalidEndpoint(
            "azure-acr: --client-id and the access_key name different clients: give one"
        )
    client_id = option or key or from_env
    if not client_id and auth in ("aad-secret", "aad-certificate", "workload-identity"):
        raise InvalidEndpoint(
            f"azure-acr --auth {auth} needs the application's client id (--client-id or the "
            "access_key): a GUID, the 'appId' of 'az ad sp show'"
        )
    if client_id and not re.fullmatch(GUID_PATTERN, client_id):
        raise InvalidEndpoint(
            f"azure-acr client id {client_id[:100]!r} is not a GUID: use the application's "
            "client id (appId)"
        )
    return client_id


def _readable_file(path: str, flag: str, what: str) -> str:
    if not path:
        raise InvalidEndpoint(f"azure-acr {flag} is required: the path of {what}")
    p = Path(path)
    if not p.is_absolute():
        raise InvalidEndpoint(f"azure-acr {flag} {path[:200]!r}: give an absolute path")
    if not p.is_file():
        raise InvalidEndpoint(f"azure-acr {flag} {path[:200]!r}: no such file")
    if not os.access(p, os.R_OK):
        raise InvalidEndpoint(f"azure-acr {flag} {path[:200]!r}: the file is not readable")
    return str(p)


_MAX_CERTIFICATE_BYTES = 1 << 20  # a PEM certificate and key: a few KiB


def _certificate(path: str) -> str:
    path = _readable_file(path, "--certificate-path", "a PEM file with certificate and key")
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > _MAX_CERTIFICATE_BYTES:
                raise InvalidEndpoint(
                    f"azure-acr --certificate-path {path!r}: {size} bytes is not a PEM "
                    f"certificate and key (at most {_MAX_CERTIFICATE_BYTES} bytes)"
                )
            text = f.read(_MAX_CERTIFICATE_BYTES)
    except OSError as e:
        raise InvalidEndpoint(f"azure-acr --certificate-path {path!r}: {e.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in text or b"PRIVATE KEY-----" not in text:
        raise InvalidEndpoint(
            f"azure-acr --certificate-path {path!r}: needs a PEM file holding the certificate "
            "and its private key (cat cert.pem key.pem > both.pem)"
        )
    return path


def _authority(value: str) -> str:
    if not value:
        return ""
    m = _HTTPS_HOST.match(value.strip())
    if m is None:
        raise InvalidEndpoint(
            f"azure-acr --authority-host {value[:200]!r}: give the Microsoft Entra host, e.g. "
            "https://login.microsoftonline.com (https, no path)"
        )
    return "https://" + m.group(1).lower()


def _audience(value: str) -> str:
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise InvalidEndpoint(
            f"azure-acr --audience {value[:200]!r}: give an https URL such as "
            "https://containerregistry.azure.net"
        )
    return value.rstrip("/")
