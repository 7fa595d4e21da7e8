"""Microsoft Entra ID (AAD) logins to ACR: the credential provider of an AAD endpoint.

ACR's published flow: an AAD access token for the registry's audience is exchanged at the
registry for an ACR refresh token, which then logs in to the registry's ordinary Docker token
flow with the well-known username ``00000000-0000-0000-0000-000000000000``::

    azure-identity get_token("<audience>/.default")          (blocking: in a worker thread)
      └─► POST /oauth2/exchange  grant_type=access_token&service=S&tenant=T&access_token=A
            └─► {"refresh_token": R}            (a JWT; its ``exp`` says when to exchange again)
                  └─► login 00000000-…/R ─► GET /oauth2/token?service=S&scope=repository:a:pull

:class:`AadExchange` is that provider: :class:`~adapters.oci.credentials.RefreshingCredentials`
calls it before the first request, before the refresh token expires and once after a ``401``.
azure-identity caches and renews the AAD token by itself. Every azure-identity or azure-core
exception is translated here, once, into :mod:`adapters.oci.errors`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import anyio

from adapters.azure_acr_config import ACR_REFRESH_USERNAME, KNOWN_AUTHORITY_HOSTS, AcrSettings
from adapters.base import AdapterUnavailable
from adapters.oci.auth import Credentials, jwt_expiry
from adapters.oci.credentials import CredentialsUnavailable, IssuedCredentials
from adapters.oci.errors import ConnectionFailed, OciError, ProtocolError, Transient
from adapters.oci.session import RegistrySession
from adapters.oci.transport import Request

__all__ = [
    "AadExchange",
    "AadToken",
    "AadUnavailable",
    "TokenCredential",
    "build_credential",
]

_MAX_ANSWER_BYTES = 256 * 1024
_HTTP_ERROR = re.compile(r"\bHTTP Error: (\d{3})\b")  # MSAL's text for a 5xx it gave up on


class AadUnavailable(Transient):
    """Microsoft Entra ID (or the managed identity endpoint) throttled (429) or failed (5xx)."""

    hint = "the identity service was busy or failing; the login is tried again later"


class AadToken(Protocol):
    """What azure-identity's ``get_token`` returns (``azure.core.credentials.AccessToken``)."""

    token: str
    expires_on: int  # seconds since the epoch


class TokenCredential(Protocol):
    """An azure-identity credential (any ``azure.core.credentials.TokenCredential``)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AadToken: ...


def build_credential(
    settings: AcrSettings, on_response: Callable[[Any], None] | None = None
) -> TokenCredential:
    """The azure-identity credential ``settings.auth`` names. Blocking (it may read files):
    call it in a worker thread. ``on_response`` is called with every HTTP answer the
    credential gets (azure-core's ``raw_response_hook``).

    :raises AdapterUnavailable: azure-identity is not installed.
    """
    try:
        import azure.identity as identity
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise AdapterUnavailable(
            f"azure-acr AAD logins need azure-identity ({e}): pip install 'azure-identity>=1.17'"
        ) from None
    host = urlsplit(settings.authority_host).hostname
    authority: dict[str, Any] = {
        "authority": settings.authority_host,
        # an authority outside Azure's clouds (Azure Stack, a test's) is not in AAD's list
        "disable_instance_discovery": host not in KNOWN_AUTHORITY_HOSTS,
    }
    hook: dict[str, Any] = {"raw_response_hook": on_response} if on_response else {}
    authority |= hook
    client_id = settings.client_id or None
    match settings.auth:
        case "aad-secret":
            return identity.ClientSecretCredential(
                settings.tenant_id, settings.client_id, settings.client_secret, **authority
            )
        case "aad-certificate":
            return identity.CertificateCredential(
                settings.tenant_id,
                settings.client_id,
                certificate_path=settings.certificate_path,
                password=settings.client_secret.encode() or None,
                **authority,
            )
        case "managed-identity":
            return identity.ManagedIdentityCredential(client_id=client_id, **hook)
        case "workload-identity":
            return identity.WorkloadIdentityCredential(
                tenant_id=settings.tenant_id,
                client_id=settings.client_id,
                token_file_path=settings.federated_token_file,
                **authority,
            )
        case _:
            return identity.DefaultAzureCredential(
                managed_identity_client_id=client_id,
                workload_identity_client_id=client_id,
                **authority,
            )


class AadExchange:
    """Fetches ACR login credentials for an AAD endpoint (see the module).

    :param settings: the endpoint's AAD settings (``settings.uses_aad``).
    :param registry_url: the registry's base URL (``https://NAME.azurecr.io``).
    :param session: returns the session the exchange is sent through: a session *without*
        a credential provider (the exchange needs no login), sharing the client's transport.
    :param credential: an azure-identity credential to use instead of building one from
        ``settings`` (embedding, tests).
    """

    def __init__(
        self,
        settings: AcrSettings,
        registry_url: str,
        session: Callable[[], RegistrySession],
        credential: TokenCredential | None = None,
    ) -> None:
        self.settings = settings
        self._url = registry_url.rstrip("/") + "/oauth2/exchange"
        self._session = session
        self._credential = credential
        self._own_credential = credential is None
        self._answers = threading.local()  # .status: the identity service's last HTTP status
        #: (status, time.monotonic() until): MSAL answers again from its cache, without a
        #: request, a 429/5xx (or an answer with Retry-After) for its Retry-After (5 s if none)
        self._busy: tuple[int, float] | None = None
        self.exchanges = 0  # refresh tokens obtained (for tests and stats)

    async def __call__(self) -> IssuedCredentials:
        aad = await anyio.to_thread.run_sync(self._aad_token, abandon_on_cancel=True)
        refresh_token = await self._exchange(aad.token)
        self.exchanges += 1
        expires_at = jwt_expiry(refresh_token)
        if expires_at is None:
            expires_at = float(aad.expires_on)
        return IssuedCredentials(Credentials(ACR_REFRESH_USERNAME, refresh_token), expires_at)

    async def close(self) -> None:
        """Close a credential this provider built (its HTTP sessions); the next call builds
        another. A credential given to the constructor is the caller's to close."""
        if not self._own_credential:
            return
        credential, self._credential = self._credential, None
        close = getattr(credential, "close", None)
        if callable(close):
            await anyio.to_thread.run_sync(close)

    def _aad_token(self) -> AadToken:
        """AAD's token for the registry's audience; in a worker thread (azure-identity
        blocks). Raises only :mod:`adapters.oci.errors`."""
        self._answers.status = None
        try:
            if self._credential is None:
                self._credential = build_credential(self.settings, self._record)
            return self._credential.get_token(self.settings.aad_scope)
        except (OciError, AdapterUnavailable):
            raise
        except Exception as e:
            status, busy = self._answers.status, self._busy
            replayed = status is None or status < 400  # the failed answer made no request
            if replayed and busy is not None and time.monotonic() < busy[1]:
                status = busy[0]  # MSAL replayed the throttled answer: no request was made
            raise _translate(e, self.settings, status) from e

    def _record(self, response: Any) -> None:
        """azure-core's response hook: remember the status (in the calling thread)."""
        http = getattr(response, "http_response", None)
        status = getattr(http, "status_code", None)
        if not isinstance(status, int):
            return
        self._answers.status = status
        headers = getattr(http, "headers", None) or {}
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        if status == 429 or status >= 500 or retry_after is not None:
            try:
                seconds = min(3600, int(retry_after or 5))
            except ValueError:
                seconds = 5
            self._busy = (status, time.monotonic() + seconds)

    async def _exchange(self, aad_token: str) -> str:
        s = self.settings
        form = {"grant_type": "access_token", "service": s.service, "access_token": aad_token}
        if s.tenant_id:
            form["tenant"] = s.tenant_id
        request = Request(
            "POST",
            self._url,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            content=urlencode(form).encode(),
            buffered=True,
        )
        try:
            async with self._session().request(request, expect=(200,)) as response:
                body = await response.read(_MAX_ANSWER_BYTES)
        except Transient:
            raise
        except OciError as e:
            what = " ".join(str(p) for p in (e.status, e.code) if p)
            raise CredentialsUnavailable(
                f"the registry {s.service} refused to exchange the Microsoft Entra ID token "
                f"of {s.who} for an ACR refresh token ({what}: {e.message}); give the identity "
                "a role on the registry (AcrPull to pull, AcrPush to push) and check that "
                "--tenant-id is the registry's tenant",
                status=e.status,
                code=e.code,
            ) from e
        try:
            token = json.loads(body).get("refresh_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise ProtocolError(
                "the AAD exchange answered without a refresh_token", method="POST", url=self._url
            )
        return token


def _status(error: BaseException) -> int | None:
    """The HTTP status an azure-core/MSAL error (or one it was raised from) carries."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        status = getattr(seen, "status_code", None)
        if isinstance(status, int):
            return status
        found = _HTTP_ERROR.search(str(seen))
        if found:
            return int(found.group(1))
        seen = seen.__cause__
    return None


def _unreachable(error: BaseException) -> bool:
    """Whether ``error`` was raised from a connection failure (azure-core's own errors)."""
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError

    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ServiceRequestError | ServiceResponseError):
            return True
        seen = seen.__cause__
    return False


def _translate(error: Exception, settings: AcrSettings, status: int | None = None) -> OciError:
    """An azure-identity/azure-core failure as one of our errors, saying what to fix.
    ``status``: the HTTP status of the identity service's last answer, if one came."""
    from azure.core.exceptions import ClientAuthenticationError

    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = " ".join(lines[:3])[:600] or type(error).__name__
    authority = settings.authority_host
    if settings.auth == "managed-identity":
        service = "the managed identity endpoint"
    else:
        service = f"Microsoft Entra ID ({authority})"
    status = status if status is not None and status >= 400 else _status(error)
    if status == 429 or (status is not None and status >= 500):
        what = "is throttling token requests" if status == 429 else f"is failing ({status})"
        return AadUnavailable(
            f"{service} {what} for azure-acr ({settings.who}): {text}", status=status
        )
    unavailable = type(error).__name__ == "CredentialUnavailableError"
    if not unavailable and _unreachable(error):
        return ConnectionFailed(f"could not reach {service}: {text}")
    if unavailable:
        return CredentialsUnavailable(
            f"no Microsoft Entra identity for azure-acr ({settings.who}) on this host: {text}"
        )
    if isinstance(error, ClientAuthenticationError):
        return CredentialsUnavailable(
            f"Microsoft Entra ID ({authority}) refused {settings.who}: {text}"
        )
    return CredentialsUnavailable(
        f"azure-identity could not log in as {settings.who} "
        f"({type(error).__name__}: {text}); check the endpoint's AAD settings"
    )
