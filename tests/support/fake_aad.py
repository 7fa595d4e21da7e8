"""A local fake of Microsoft Entra ID's token endpoints, over HTTPS, for azure-identity.

Serves, on ``https://127.0.0.1:PORT`` with a certificate from a throwaway CA
(:attr:`FakeAad.ca_file`: point ``REQUESTS_CA_BUNDLE`` at it), what azure-identity (MSAL) asks
of an authority when instance discovery is off:

- ``GET /{tenant}/v2.0/.well-known/openid-configuration`` → the tenant's endpoints;
- ``POST /{tenant}/oauth2/v2.0/token`` with ``grant_type=client_credentials``, ``scope``,
  ``client_id`` and ``client_secret`` (a service principal's secret) or ``client_assertion``
  (a JWT signed with a registered certificate's key, or a workload identity's federated token);
- ``GET /msi/token`` as App Service's managed identity endpoint (``IDENTITY_ENDPOINT`` /
  ``IDENTITY_HEADER``: the ``X-IDENTITY-HEADER`` must match).

Errors are AAD's shape (``{"error": "invalid_client", "error_description": "AADSTS…"}``).
Issued access tokens are JWT-shaped and recorded: :meth:`verify` is what the ACR fake trusts.
Every request is counted by route (:meth:`counts`).
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import hashlib
import secrets
import ssl
import threading
import time
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support.fake_acr_auth import unsigned_jwt
from tests.support.server import free_port

__all__ = ["FakeAad", "make_certificate"]

_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def make_certificate(
    common_name: str, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A certificate for ``common_name`` (a CA when ``issuer`` is None; else a server
    certificate for 127.0.0.1/localhost signed by it) and its key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        import ipaddress

        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256()), key


def pem(cert: x509.Certificate, key: rsa.RSAPrivateKey | None = None) -> bytes:
    out = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        out += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    return out


class FakeAad:
    """One fake authority with one tenant. ``start()``, use :attr:`url`, ``stop()``."""

    def __init__(self, directory: Path, tenant_id: str, token_seconds: int = 3600) -> None:
        self.directory = directory
        self.tenant_id = tenant_id
        self.token_seconds = token_seconds
        self.port = free_port()
        self.managed_identity_header = secrets.token_hex(8)
        self.managed_identity_client_id = "99999999-9999-4999-8999-999999999999"
        self._secrets: dict[str, str] = {}  # client id -> secret
        self._certificates: dict[str, x509.Certificate] = {}
        self._federated: dict[str, str] = {}  # client id -> accepted assertion
        self._issued: dict[str, dict[str, Any]] = {}  # access token -> claims
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        ca = make_certificate("seawall test CA")
        server = make_certificate("127.0.0.1", ca)
        directory.mkdir(parents=True, exist_ok=True)
        self.ca_file = directory / "aad-ca.pem"
        self.ca_file.write_bytes(pem(ca[0]))
        (directory / "aad-server.pem").write_bytes(pem(server[0], server[1]))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.url}/{self.tenant_id}/oauth2/v2.0/token"

    @property
    def managed_identity_endpoint(self) -> str:
        return f"{self.url}/msi/token"

    # -- identities ------------------------------------------------------------------------

    def add_secret_client(self, client_id: str, secret: str) -> None:
        self._secrets[client_id] = secret

    def add_certificate_client(self, client_id: str, path: Path) -> Path:
        """Register a new certificate for ``client_id``; its PEM (cert + key) goes to
        ``path``, as ``--certificate-path`` wants it."""
        cert, key = make_certificate(f"sp-{client_id}")
        path.write_bytes(pem(cert, key))
        self._certificates[client_id] = cert
        return path

    def add_federated_client(self, client_id: str, path: Path) -> Path:
        """A workload identity: the projected service-account token goes to ``path``."""
        assertion = unsigned_jwt({"sub": f"system:serviceaccount:default:{client_id}"})
        path.write_text(assertion)
        self._federated[client_id] = assertion
        return path

    def mint(self, client_id: str, audience: str, tenant_id: str | None = None) -> tuple[str, int]:
        """An access token as the token endpoint would issue it: ``(token, expires_on)``."""
        now = int(time.time())
        claims = {
            "aud": audience,
            "tid": tenant_id or self.tenant_id,
            "appid": client_id,
            "oid": hashlib.sha256(client_id.encode()).hexdigest()[:32],
            "iss": f"{self.url}/{self.tenant_id}/v2.0",
            "iat": now,
            "exp": now + self.token_seconds,
        }
        token = unsigned_jwt(claims)
        with self._lock:
            self._issued[token] = claims
        return token, now + self.token_seconds

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this authority issued that has not expired, else None."""
        with self._lock:
            claims = self._issued.get(token)
        if claims is None or claims["exp"] <= time.time():
            return None
        return dict(claims)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeAad:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(30)
        self._loop.close()
        self._loop = None

    async def _start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.directory / "aad-server.pem")
        app = web.Application()
        tenant = self.tenant_id
        app.router.add_get(f"/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_post(f"/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/msi/token", self._managed_identity)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=context).start()

    def _count(self, route: str) -> None:
        with self._lock:
            self._counts[route] += 1

    # -- endpoints -------------------------------------------------------------------------

    async def _unknown(self, request: web.Request) -> web.Response:
        self._count(f"{request.method} other")
        return _aad_error(400, "invalid_tenant", 90002, f"no tenant or route at {request.path}")

    async def _openid(self, request: web.Request) -> web.Response:
        self._count("GET openid-configuration")
        base = f"{self.url}/{self.tenant_id}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_types_supported": ["code", "id_token", "token"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                ],
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        self._count("POST token")
        form = dict(await request.post())
        client_id = str(form.get("client_id", ""))
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "client_credentials only")
        problem = self._client_problem(client_id, form)
        if problem:
            return _aad_error(401, "invalid_client", problem[0], problem[1])
        scope = str(form.get("scope", "")).split()
        if len(scope) != 1 or not scope[0].endswith("/.default"):
            return _aad_error(400, "invalid_scope", 1002012, f"scope {scope!r} is not valid")
        token, _ = self.mint(client_id, scope[0][: -len("/.default")])
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_seconds,
                "ext_expires_in": self.token_seconds,
                "access_token": token,
            }
        )

    def _client_problem(self, client_id: str, form: dict[str, Any]) -> tuple[int, str] | None:
        if "client_secret" in form:
            if self._secrets.get(client_id) != form["client_secret"]:
                return 7000215, "Invalid client secret provided."
            return None
        assertion = str(form.get("client_assertion", ""))
        if form.get("client_assertion_type") != _ASSERTION_TYPE or not assertion:
            return 7000216, "client_assertion or client_secret is required."
        if client_id in self._federated:
            if assertion != self._federated[client_id]:
                return 700213, "No matching federated identity record found."
            return None
        cert = self._certificates.get(client_id)
        if cert is None:
            return 700016, f"Application with identifier '{client_id}' was not found."
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=self.token_endpoint,
            )
        except jwt.PyJWTError as e:
            return 700027, f"Client assertion failed signature validation: {e}"
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            return 700021, "Client assertion issuer/subject is not the application."
        return None

    async def _managed_identity(self, request: web.Request) -> web.Response:
        self._count("GET msi")
        if request.headers.get("X-IDENTITY-HEADER") != self.managed_identity_header:
            return web.json_response({"error": "unauthorized"}, status=401)
        resource = request.query.get("resource", "")
        client_id = request.query.get("client_id") or self.managed_identity_client_id
        token, expires_on = self.mint(client_id, resource.rstrip("/").removesuffix("/.default"))
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
            }
        )


def _aad_error(status: int, error: str, code: int, text: str) -> web.Response:
    description = f"AADSTS{code}: {text} Trace ID: {secrets.token_hex(8)}"
    return web.json_response(
        {"error": error, "error_description": description, "error_codes": [code]},
        status=status,
    )
