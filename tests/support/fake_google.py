"""A local stand-in for Google's own parts of Artifact Registry and Container Registry, in front
of a REAL registry (a ``seawall serve`` or CNCF distribution) that stores the bytes.

Google's published protocols, as the fake answers them (one aiohttp server on 127.0.0.1)::

    POST /token               the OAuth 2.0 JWT-bearer grant (RFC 7523) google-auth's service
                              accounts use: the RS256 JWT is VERIFIED against the key's
                              registered public key (aud = Google's token endpoint or
                              this URL, iss = the account)
                              -> {access_token, expires_in, token_type}; a deleted key gets
                              400 invalid_grant "Invalid JWT Signature."
    GET  /v2/token            the registry's Docker token endpoint: Basic _json_key:<key JSON>,
                              _json_key_base64:<base64 key> or oauth2accesstoken:<access token>
                              -> {token, expires_in}; a bad login 401 UNAUTHORIZED
    /v2/...                   the data plane, proxied to the real registry with Google's ways
                              (fake_google_registry.py)
    /v1/projects/P/locations/L/repositories...   the Artifact Registry API (fake_google_api.py)
    /, /computeMetadata/v1/...  the GCE metadata server ADC uses (fake_google_metadata.py)

Tokens expire by an injectable :class:`FakeClock` (never the wall clock); :meth:`throttle`
answers 429 with ``Retry-After``; :attr:`FakeGoogle.counts` counts requests per route
(``oauth_token``, ``registry_token``, ``ping``, ``catalog``, ``tags_list``, ``manifest``,
``blob``, ``upload``, ``referrers``, ``api_repositories``, ``api_repository``,
``api_create_repository``, ``api_docker_images``, ``api_operation``, ``metadata``). Manifests pushed
through the fake are indexed (digest, media type, tags, image size) to answer the ``manifest``
map and ``dockerImages``: push through the fake only.

    fake = FakeGoogle(seawall.url, ("admin", seawall.admin_password), flavor="gar").start()
    key = fake.new_service_account("replicator@proj-1.iam.gserviceaccount.com")
    fake.create_repository("proj-1", "images")
    ...  # EndpointConfig(fake.url, username="_json_key", password=json.dumps(key), ...)
    fake.stop()
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.fake_google_api import ApiFake, api_error
from tests.support.fake_google_metadata import MetadataFake
from tests.support.fake_google_registry import Image, RegistryFront, registry_error

__all__ = ["FakeClock", "FakeGoogle", "ServiceAccount"]

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: google-auth signs for Google's token endpoint whatever the key's token_uri says
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


class FakeClock:
    """The fake's notion of now (seconds), moved only by :meth:`advance`."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ServiceAccount:
    email: str
    key_id: str
    public_key: rsa.RSAPublicKey
    revoked: bool = False


@dataclass(frozen=True)
class Token:
    """An access token (``key_id`` of the key it was minted for) or a registry token."""

    key_id: str
    expires_at: float
    grants: frozenset[tuple[str, str]] = frozenset()  # registry tokens: (resource, action)


@dataclass
class _Throttle:
    times: int
    retry_after: str


class FakeGoogle:
    """Google's token exchanges, registry extensions and Artifact Registry API (module doc).

    :param backend_url: the real registry storing the bytes.
    :param backend_login: its username and password (sent as Basic), or None.
    :param flavor: ``"gar"`` (Artifact Registry: ``P/R/IMAGE`` names inside repositories that
        exist, ``timeUploadedMs`` a number, a referrers API) or ``"gcr"`` (``P/IMAGE``, no
        referrers API).
    :param location: the location the API serves (GAR).
    """

    def __init__(
        self,
        backend_url: str,
        backend_login: tuple[str, str] | None = None,
        *,
        flavor: str = "gar",
        location: str = "us-central1",
        clock: FakeClock | None = None,
    ) -> None:
        if flavor not in ("gar", "gcr"):
            raise ValueError("flavor: gar or gcr")
        self.flavor = flavor
        self.location = location
        self.clock = clock or FakeClock()
        self.access_token_seconds = 3600.0
        self.registry_token_seconds = 3600.0
        self.api_max_page_size = 1000
        self.create_operation_polls = 0  # operation GETs before a create is done
        self.referrers_api = flavor == "gar"
        self.metadata_key_id: str | None = None  # the metadata server's account (None: off)
        self.counts: Counter[str] = Counter()
        self.accounts: dict[str, ServiceAccount] = {}  # key id -> account
        self.repositories: dict[tuple[str, str], dict[str, str]] = {}  # (project, id) -> doc
        self.images: dict[str, dict[str, Image]] = {}  # repository -> digest -> image
        self.access_tokens: dict[str, Token] = {}
        self.registry_tokens: dict[str, Token] = {}
        self._throttles: dict[str, _Throttle] = {}
        self._front = RegistryFront(self, backend_url, backend_login)
        self._api = ApiFake(self)
        self._metadata = MetadataFake(self)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeGoogle:
        """Serve on 127.0.0.1 (a free port) from a thread of its own."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._startup(), self._loop).result(30)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        await self._front.open()

    async def _shutdown(self) -> None:
        await self._front.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    # -- what tests set up -------------------------------------------------------------------

    def new_service_account(self, email: str) -> dict[str, str]:
        """A fresh 2048-bit RSA key for ``email``, registered: its key JSON (``token_uri``
        points at the fake)."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        self.accounts[key_id] = ServiceAccount(email, key_id, private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": email.split("@")[-1].split(".")[0],
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": email,
            "client_id": str(int(key_id[:12], 16)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }

    def revoke(self, key_id: str) -> None:
        """Delete a key: the token endpoints refuse it and its access tokens stop working."""
        self.accounts[key_id].revoked = True

    def issue_access_token(self, key_id: str) -> str:
        """An access token for the key's account, as the OAuth endpoint would issue it."""
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        self.access_tokens[token] = Token(key_id, self.clock() + self.access_token_seconds)
        return token

    def create_repository(
        self, project: str, repository_id: str, *, fmt: str = "DOCKER", mode: str = ""
    ) -> None:
        """An Artifact Registry repository in the fake's location."""
        name = f"projects/{project}/locations/{self.location}/repositories/{repository_id}"
        doc = {"name": name, "format": fmt, "mode": mode or "STANDARD_REPOSITORY"}
        self.repositories[(project, repository_id)] = doc

    def throttle(self, route: str, times: int = 1, retry_after: str = "0") -> None:
        """Answer the next ``times`` requests to ``route`` (a :attr:`counts` key) with 429."""
        self._throttles[route] = _Throttle(times, retry_after)

    def reset_counts(self) -> None:
        self.counts.clear()

    def total(self, *prefixes: str) -> int:
        """Requests counted; only routes starting with one of ``prefixes`` if given."""
        return sum(n for r, n in self.counts.items() if not prefixes or r.startswith(prefixes))

    # -- dispatch ----------------------------------------------------------------------------

    @staticmethod
    def route(method: str, path: str) -> str:
        """The :attr:`counts` key of a request."""
        if path == "/token":
            return "oauth_token"
        if path == "/v2/token":
            return "registry_token"
        if path == "/" or path.startswith("/computeMetadata/"):
            return "metadata"
        if path.startswith("/v1/"):
            if path.endswith("/dockerImages"):
                return "api_docker_images"
            if "/operations/" in path:
                return "api_operation"
            if path.endswith("/repositories"):
                return "api_create_repository" if method == "POST" else "api_repositories"
            return "api_repository"
        if path in ("/v2", "/v2/"):
            return "ping"
        if path == "/v2/_catalog":
            return "catalog"
        for part, name in (("/tags/list", "tags_list"), ("/referrers/", "referrers")):
            if part in path:
                return name
        if "/blobs/uploads" in path:
            return "upload"
        return "manifest" if "/manifests/" in path else "blob"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        route = self.route(request.method, request.path)
        self.counts[route] += 1
        throttle = self._throttles.get(route)
        if throttle is not None and throttle.times > 0:
            throttle.times -= 1
            wait = {"Retry-After": throttle.retry_after}
            if route.startswith("api_"):
                return api_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", **wait)
            return registry_error(429, "TOOMANYREQUESTS", "too many requests", **wait)
        if route == "oauth_token":
            return await self._oauth_token(request)
        if route == "registry_token":
            return self._registry_token(request)
        if route == "metadata":
            return self._metadata.handle(request)
        if route.startswith("api_"):
            return await self._api.handle(request, route)
        return await self._front.handle(request, route)

    # -- OAuth 2.0: the JWT-bearer grant -----------------------------------------------------

    async def _oauth_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        assertion = form.get("assertion")
        if form.get("grant_type") != JWT_BEARER or not isinstance(assertion, str):
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        bad = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        try:
            account = self.accounts.get(jwt.get_unverified_header(assertion).get("kid", ""))
        except jwt.PyJWTError:
            account = None
        if account is None or account.revoked:
            return web.json_response(bad, status=400)
        try:
            audience = [GOOGLE_TOKEN_AUDIENCE, self.token_uri]
            claims = jwt.decode(assertion, account.public_key, ["RS256"], audience=audience)
        except jwt.PyJWTError as e:
            return web.json_response({**bad, "error_description": str(e)}, status=400)
        if claims.get("iss") != account.email or "cloud-platform" not in claims.get("scope", ""):
            return web.json_response({**bad, "error_description": "bad iss or scope"}, status=400)
        token = self.issue_access_token(account.key_id)
        body = {
            "access_token": token,
            "expires_in": int(self.access_token_seconds),
            "token_type": "Bearer",
        }
        return web.json_response(body)

    def valid_access_token(self, token: str) -> bool:
        """Issued here, not expired by the fake's clock, its key not deleted."""
        found = self.access_tokens.get(token)
        if found is None or found.expires_at <= self.clock():
            return False
        return not self.accounts[found.key_id].revoked

    # -- the registry's Docker token endpoint ------------------------------------------------

    def _login_refused(self, header: str) -> str | None:
        """Why a Basic login is refused, or None if it is good."""
        try:
            raw = base64.b64decode(header.removeprefix("Basic ").strip(), validate=True)
            user, _, secret = raw.decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "not a Basic login"
        if user == "oauth2accesstoken":
            return None if self.valid_access_token(secret) else "access token invalid or expired"
        if user == "_json_key_base64":
            try:
                secret, user = base64.b64decode(secret).decode(), "_json_key"
            except (binascii.Error, UnicodeDecodeError):
                return "the key is not base64"
        if user != "_json_key":
            return f"unknown user {user[:40]!r}"
        return self._key_refused(secret)

    def _key_refused(self, text: str) -> str | None:
        try:
            key = json.loads(text)
            private = serialization.load_pem_private_key(key["private_key"].encode(), None)
            account = self.accounts[key["private_key_id"]]
        except (ValueError, KeyError, TypeError):
            return "Unable to parse json key."
        if not isinstance(private, rsa.RSAPrivateKey) or account.revoked:
            return "the key is not valid"
        if private.public_key().public_numbers() != account.public_key.public_numbers():
            return "the key is not valid"
        return None if key.get("client_email") == account.email else "the key is not valid"

    def _registry_token(self, request: web.Request) -> web.Response:
        why = self._login_refused(request.headers.get("Authorization", ""))
        if why is not None:
            return registry_error(401, "UNAUTHORIZED", f"authentication failed: {why}")
        grants: set[tuple[str, str]] = set()
        for scope in request.query.getall("scope", []):
            for one in scope.split():
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                resource = name if kind == "repository" else f"{kind}:{name}"
                grants.update((resource, a) for a in actions.split(","))
        token = "reg-" + secrets.token_urlsafe(24)
        expires = self.clock() + self.registry_token_seconds
        self.registry_tokens[token] = Token("", expires, frozenset(grants))
        lifetime = int(self.registry_token_seconds)
        return web.json_response({"token": token, "access_token": token, "expires_in": lifetime})

    def challenge(self, scope: str) -> web.Response:
        """401 with the Bearer challenge naming the fake's token endpoint."""
        params = f'realm="{self.url}/v2/token",service="{self.host}"'
        if scope:
            params += f',scope="{scope}"'
        header = {"WWW-Authenticate": "Bearer " + params}
        return registry_error(401, "UNAUTHORIZED", "authentication required", **header)
