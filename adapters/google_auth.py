"""Google credentials for ``google-gar`` / ``google-gcr``: which login an endpoint uses, checked
before anything is sent, and OAuth access tokens from google-auth, refreshed in a worker thread.

How an endpoint logs in (:func:`resolve_auth`)::

    access key          secret                  registry login                API calls
    _json_key           service-account key     Basic _json_key:<key> (static)  tokens from the key
    _json_key_base64    the key, base64         Basic, as given (static)        tokens from the key
    oauth2accesstoken   service-account key     Basic oauth2accesstoken:<token> (refreshed)
    oauth2accesstoken   an access token         Basic, as given (static: expires within the hour)
    (none)              (none), --key-file F    tokens from F (any google-auth credential file)
    (none)              (none)                  tokens from Application Default Credentials

Application Default Credentials are google-auth's ``google.auth.default()``:
``GOOGLE_APPLICATION_CREDENTIALS`` (a key, an external-account / workload identity federation
config, ...), gcloud's user credentials, then the metadata server (GCE, GKE workload
identity, Cloud Run). Only service-account keys are taken from the endpoint's secret;
credential configurations that make google-auth read files or call URLs of their own
(external accounts) come from files the operator placed (``--key-file`` or ADC).

google-auth is blocking (``requests``): every load and refresh runs in a worker thread, one at
a time per endpoint. Its errors are translated here, once, into
:class:`~adapters.oci.credentials.CredentialsUnavailable` (a refusal: a deleted, disabled or
expired key, no ADC), :class:`TokenEndpointUnavailable` (the token endpoint throttled or
failed, ``429``/``5xx``, after google-auth's own retries: google-auth's ``retryable``) or
:class:`~adapters.oci.errors.ConnectionFailed` (the token endpoint or metadata server could not
be reached); the last two are :class:`~adapters.oci.errors.Transient`: tried again later.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import anyio

from adapters.base import AdapterUnavailable, EndpointConfig, InvalidEndpoint
from adapters.oci.auth import Credentials
from adapters.oci.credentials import CredentialProvider, CredentialsUnavailable, IssuedCredentials
from adapters.oci.errors import ConnectionFailed, OciError, Transient

__all__ = [
    "ACCESS_TOKEN_USER",
    "CLOUD_PLATFORM_SCOPE",
    "JSON_KEY_BASE64_USER",
    "JSON_KEY_USER",
    "AccessToken",
    "AuthMode",
    "GoogleAuth",
    "GoogleTokenSource",
    "TokenEndpointUnavailable",
    "check_google_auth_available",
    "parse_service_account_key",
    "resolve_auth",
]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
JSON_KEY_USER = "_json_key"
JSON_KEY_BASE64_USER = "_json_key_base64"
ACCESS_TOKEN_USER = "oauth2accesstoken"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
_FILE_TYPES = (
    "service_account",
    "external_account",
    "external_account_authorized_user",
    "authorized_user",
    "impersonated_service_account",
)
_MAX_KEY_FILE_BYTES = 1 << 20
#: a metadata-server answer google-auth raises as a TransportError that retrying will not fix
_REFUSED_STATUS = re.compile(r"\bStatus: (4(?!29)\d\d)\b")


class TokenEndpointUnavailable(Transient):
    """Google's token endpoint (or the metadata server) throttled or failed: ``429``/``5xx``
    after google-auth's own retries."""

    hint = "Google's token service was busy or failing; the login is tried again later"


class AuthMode(enum.Enum):
    JSON_KEY = "json_key"  # static Basic _json_key / _json_key_base64; API tokens from the key
    KEY = "key"  # access tokens minted from a service-account key in the secret
    ACCESS_TOKEN = "access_token"  # a literal access token (static)
    KEY_FILE = "key_file"  # access tokens from a google-auth credential file
    ADC = "adc"  # access tokens from Application Default Credentials


@dataclass(frozen=True, slots=True)
class GoogleAuth:
    """An endpoint's Google login, checked. ``registry_login`` is the static registry login
    (None: access tokens, refreshed); ``key`` the service-account key the tokens come from."""

    mode: AuthMode
    registry_login: tuple[str, str] | None = field(default=None, repr=False)
    key: dict[str, str] | None = field(default=None, repr=False)
    key_file: str = ""
    access_token: str = field(default="", repr=False)

    @property
    def refreshes(self) -> bool:
        """Whether access tokens are minted (and refreshed) through google-auth."""
        return self.mode is not AuthMode.ACCESS_TOKEN

    def describe(self) -> str:
        """Which identity, for messages (never a secret)."""
        if self.key is not None:
            return f"service account {self.key['client_email']}"
        if self.mode is AuthMode.KEY_FILE:
            return f"the credentials in {self.key_file}"
        if self.mode is AuthMode.ADC:
            return "Application Default Credentials"
        return "the access token given"


def check_google_auth_available() -> None:
    """:raises AdapterUnavailable: google-auth or its ``requests`` transport is missing."""
    try:
        import google.auth
        import google.auth.transport.requests  # noqa: F401
    except ImportError as e:
        raise AdapterUnavailable(
            f"google-gar/google-gcr need google-auth with its requests transport ({e}): "
            "pip install 'google-auth[requests]'"
        ) from None


def parse_service_account_key(text: str, where: str) -> dict[str, str]:
    """The service-account key JSON ``text`` as a dict, checked without I/O: type
    ``service_account``, ``client_email``, a PEM ``private_key`` (``token_uri`` defaults to
    Google's). ``where`` names the source in messages; the key is never echoed."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidEndpoint(
            f"{where} is not a service-account key (JSON: {e.msg} at char {e.pos}): paste "
            "the key file's JSON (IAM > Service accounts > Keys > Add key > JSON)"
        ) from None
    if not isinstance(doc, dict) or doc.get("type") != "service_account":
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise InvalidEndpoint(
            f"{where} is a {str(kind)[:60]!r} document, not a service-account key (type "
            "service_account): other credential files go in --key-file"
        )
    missing = [k for k in ("client_email", "private_key") if not isinstance(doc.get(k), str)]
    if missing:
        raise InvalidEndpoint(f"{where}: the service-account key has no {', '.join(missing)}")
    if "PRIVATE KEY-----" not in doc["private_key"]:
        raise InvalidEndpoint(f"{where}: the key's private_key is not a PEM private key")
    key = {k: v for k, v in doc.items() if isinstance(v, str)}
    key.setdefault("token_uri", DEFAULT_TOKEN_URI)
    return key


def _check_key_file(path: str, adapter_type: str) -> None:
    where = f"{adapter_type} --key-file {path[:300]!r}"
    if not os.path.isabs(path):
        raise InvalidEndpoint(f"{where}: give an absolute path")
    try:
        if os.path.getsize(path) > _MAX_KEY_FILE_BYTES:
            raise InvalidEndpoint(f"{where}: larger than {_MAX_KEY_FILE_BYTES} bytes")
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidEndpoint(f"{where} cannot be read: {getattr(e, 'strerror', e)}") from None
    try:
        kind = json.loads(text).get("type")
    except (ValueError, AttributeError):
        raise InvalidEndpoint(f"{where} is not a JSON credential file") from None
    if kind == "service_account":
        parse_service_account_key(text, where)
    elif kind not in _FILE_TYPES:
        raise InvalidEndpoint(f"{where}: type {str(kind)[:60]!r}: use one of {_FILE_TYPES}")


def resolve_auth(config: EndpointConfig, adapter_type: str) -> GoogleAuth:
    """The endpoint's login (see the module's table), checked before anything is sent.

    :raises InvalidEndpoint: an unknown username, a secret that is not a service-account key
        where one is needed, a credential and ``--key-file`` both given, an unreadable file.
    """
    key_file = config.option("key_file")
    user, secret = config.username, config.password or ""
    if config.token and not user:  # Harbor's "oauth" credential: a bearer (access) token
        user, secret = ACCESS_TOKEN_USER, config.token
    if user and key_file:
        raise InvalidEndpoint(f"{adapter_type}: give either a credential or --key-file, not both")
    where = f"{adapter_type} credential {user}"
    if user == JSON_KEY_USER:
        key = parse_service_account_key(secret, where)
        return GoogleAuth(AuthMode.JSON_KEY, (user, secret), key=key)
    if user == JSON_KEY_BASE64_USER:
        try:
            text = base64.b64decode(secret, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidEndpoint(f"{where}: the secret is not base64 of a key") from None
        key = parse_service_account_key(text, where)
        return GoogleAuth(AuthMode.JSON_KEY, (user, secret), key=key)
    if user == ACCESS_TOKEN_USER:
        if not secret.strip():
            raise InvalidEndpoint(f"{where}: give an access token or a service-account key")
        if secret.lstrip().startswith("{"):
            return GoogleAuth(AuthMode.KEY, key=parse_service_account_key(secret, where))
        return GoogleAuth(
            AuthMode.ACCESS_TOKEN, (user, secret.strip()), access_token=secret.strip()
        )
    if user:
        raise InvalidEndpoint(
            f"{adapter_type}: access key {user[:60]!r} is not a Google login: use "
            f"{JSON_KEY_USER} (secret: a service-account key JSON), {ACCESS_TOKEN_USER} "
            "(secret: a key JSON or an access token), or none (--key-file, or Application "
            "Default Credentials)"
        )
    if key_file:
        _check_key_file(key_file, adapter_type)
        return GoogleAuth(AuthMode.KEY_FILE, key_file=key_file)
    return GoogleAuth(AuthMode.ADC)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """An OAuth access token and when it expires: seconds since the epoch, from google-auth's
    expiry (None: the credentials said nothing), compared against the source's clock."""

    value: str = field(repr=False)
    expires_at: float | None


class GoogleTokenSource:
    """Access tokens for one endpoint, shared by its consumers (the registry login, the
    Artifact Registry API client).

    A consumer that asks again has seen its token expire or refused (that is when
    :class:`~adapters.oci.credentials.RefreshingCredentials` calls a provider): it gets a
    newly fetched one. A consumer asking for the first time gets the current token while it
    has more than ``refresh_margin_seconds`` left. One google-auth refresh at a time.

    :param auth: the endpoint's login (not :attr:`AuthMode.ACCESS_TOKEN`).
    :param clock: what ``expires_at`` is read against (tests inject one).
    :param timeout_seconds: bound of each HTTP request google-auth makes.
    """

    def __init__(
        self,
        auth: GoogleAuth,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin_seconds: float = 300.0,
        timeout_seconds: float = 30.0,
    ) -> None:
        if not auth.refreshes:
            raise ValueError("a static access token has no token source")
        self.auth = auth
        self.fetches = 0  # google-auth refreshes made (tests, stats)
        self._clock = clock
        self._margin = refresh_margin_seconds
        self._timeout = timeout_seconds
        self._lock = anyio.Lock()
        self._thread_lock = threading.Lock()
        self._google: Any = None  # google.auth.credentials.Credentials, built on first use
        self._session: Any = None  # requests.Session
        self._current: AccessToken | None = None
        self._handed: dict[str, str] = {}  # consumer -> the token value it was given last

    async def token(self, consumer: str) -> AccessToken:
        """A token for ``consumer`` (see the class docstring).

        :raises CredentialsUnavailable: google-auth refused (key deleted, no ADC, ...).
        :raises TokenEndpointUnavailable: the token endpoint throttled or failed (429, 5xx).
        :raises ConnectionFailed: the token endpoint could not be reached.
        """
        async with self._lock:
            current = self._current
            if (
                current is None
                or self._handed.get(consumer) == current.value
                or (
                    current.expires_at is not None
                    and current.expires_at - self._clock() < self._margin
                )
            ):
                current = await self._refresh()
            self._handed[consumer] = current.value
            return current

    def provider(self, consumer: str, login: Callable[[str], Credentials]) -> CredentialProvider:
        """A credential provider for :class:`~adapters.oci.client.OciClient` (or any
        :class:`~adapters.oci.credentials.RefreshingCredentials`): ``login(token)`` is what
        the consumer sends."""

        async def provide() -> IssuedCredentials:
            token = await self.token(consumer)
            return IssuedCredentials(login(token.value), token.expires_at)

        return provide

    async def _refresh(self) -> AccessToken:
        try:
            value, expiry = await anyio.to_thread.run_sync(self._refresh_blocking)
        except OciError:
            raise
        except Exception as e:  # google-auth's errors, translated once, here
            raise self._translate(e) from None
        self.fetches += 1
        expires_at = None if expiry is None else expiry.replace(tzinfo=UTC).timestamp()
        self._current = AccessToken(value, expires_at)
        return self._current

    def _refresh_blocking(self) -> tuple[str, Any]:
        """In a worker thread: build the google-auth credentials once, then refresh them."""
        import google.auth.transport.requests
        import requests

        class Bounded(google.auth.transport.requests.Request):
            """google-auth's transport with our timeout on every request it makes."""

            def __call__(self, url: str, method: str = "GET", body: Any = None,
                         headers: Any = None, timeout: float | None = None,
                         **kwargs: Any) -> Any:  # fmt: skip
                return super().__call__(url, method, body, headers, timeout or bound, **kwargs)

        bound = self._timeout
        with self._thread_lock:
            if self._session is None:
                self._session = requests.Session()
            request = Bounded(self._session)
            if self._google is None:
                self._google = self._load(request)
            self._google.refresh(request)
            token = self._google.token
            if not isinstance(token, str) or not token:
                raise CredentialsUnavailable(f"{self.auth.describe()} gave no access token")
            return token, self._google.expiry

    def _load(self, request: Any) -> Any:
        import google.auth
        from google.oauth2 import service_account

        scopes = [CLOUD_PLATFORM_SCOPE]
        if self.auth.key is not None:
            return service_account.Credentials.from_service_account_info(
                self.auth.key, scopes=scopes
            )
        if self.auth.mode is AuthMode.KEY_FILE:
            creds, _ = google.auth.load_credentials_from_file(self.auth.key_file, scopes=scopes)
            return creds
        creds, _ = google.auth.default(scopes=scopes, request=request)
        return creds

    def _translate(self, error: Exception) -> OciError:
        from google.auth import exceptions as gexc

        who = self.auth.describe()
        first = error.args[0] if error.args else ""
        text = (first if isinstance(first, str) and first else str(error))[:500]
        uri = (self.auth.key or {}).get("token_uri", "the token endpoint")
        if isinstance(error, gexc.DefaultCredentialsError) and self.auth.mode is AuthMode.ADC:
            return CredentialsUnavailable(
                "no Google credentials: the endpoint has none and Application Default "
                "Credentials found none (give a service-account key as the credential, "
                "--key-file, or set GOOGLE_APPLICATION_CREDENTIALS / run with a service "
                f"account); google-auth: {text}"
            )
        if isinstance(error, gexc.GoogleAuthError) and error.retryable:
            return TokenEndpointUnavailable(
                f"{who}: {uri} throttled or failed (429 or 5xx, after google-auth's retries): "
                f"{text}"
            )
        transport = _transport_error(error)
        if transport is not None:
            detail = str(transport)[:500]
            if _REFUSED_STATUS.search(detail):  # the metadata server said no (404, 403)
                return CredentialsUnavailable(f"{who}: no access token: {detail}")
            return ConnectionFailed(f"{who}: the token endpoint could not be reached: {detail}")
        if isinstance(error, gexc.RefreshError) and "invalid_grant" in text:
            return CredentialsUnavailable(
                f"{who} was refused by {uri}: {text}. The key was deleted, disabled or has "
                "expired, or the service account is gone: create a new key and update "
                "the endpoint's credential"
            )
        if isinstance(error, gexc.GoogleAuthError | ValueError | OSError):
            return CredentialsUnavailable(f"{who}: no access token: {text}")
        return CredentialsUnavailable(f"{who}: google-auth failed: {type(error).__name__}: {text}")

    def close(self) -> None:
        """Close google-auth's HTTP session (the source may be used again afterwards)."""
        session, self._session = self._session, None
        if session is not None:
            session.close()


def _transport_error(error: BaseException) -> BaseException | None:
    """The google-auth ``TransportError`` ``error`` is or was raised from (google-auth wraps
    the metadata server's in a ``RefreshError``), else None."""
    from google.auth import exceptions as gexc

    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, gexc.TransportError):
            return seen
        seen = seen.__cause__
    return None
