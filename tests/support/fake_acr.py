"""A local fake of Azure Container Registry's own API, in front of a real registry.

``FakeAcr(upstream_url, ...)`` serves, on 127.0.0.1, what ACR publishes beyond the OCI API
(Azure REST API specs, ``containerregistry`` data plane 2021-07-01) and proxies ``/v2/...`` to
the real registry (a Seawall or a CNCF distribution) after checking ACR's tokens:

- ``GET /v2/`` and every ``/v2/...`` call: ``401`` with
  ``Bearer realm="<url>/oauth2/token",service="<host:port>",scope=...`` unless the bearer
  access token allows it; ``/v2`` deletes by digest only (a tag: 400 ``UNSUPPORTED``);
- ``GET /oauth2/token`` (Basic: admin user, ACR token, or ``00000000-…``/refresh token) and
  ``POST /oauth2/token`` (``grant_type=refresh_token`` or ``password``) → ``{"access_token"}``;
- ``POST /oauth2/exchange`` (``grant_type=access_token``, ``service``, ``tenant``,
  ``access_token`` = an AAD token the ``aad_verifier`` accepts) → ``{"refresh_token"}``;
- ``/acr/v1/_catalog``, ``/acr/v1/{name}/_tags[/{tag}]``, ``/acr/v1/{name}/_manifests``
  (see :mod:`tests.support.fake_acr_metadata`).

Limits and faults the test controls: request bodies over ``max_body_bytes`` (20 MB, as ACR)
get ``413``; PATCH/PUT/POST bodies without Content-Length get ``400 CONTENT_LENGTH_INVALID``;
:meth:`FakeAcr.throttle` answers ``429`` + ``Retry-After`` to the next N requests of a route;
tokens expire by :attr:`FakeAcr.clock` (a :class:`FakeClock` the test advances) and can be
revoked. ``/acr/v1`` pages hold at most ``page_size`` items. Every request is counted by route
(``"GET /acr/v1/{name}/_tags"``): :meth:`counts`; and by answer: :meth:`answers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from tests.support import fake_acr_metadata as metadata
from tests.support import fake_acr_oauth as oauth
from tests.support.fake_acr_auth import FakeClock, Principal, TokenBook
from tests.support.fake_acr_metadata import acr_error
from tests.support.fake_acr_upstream import Upstream
from tests.support.fake_front import V2, RoutedFake, v2_needs, v2_route
from tests.support.server import free_port

__all__ = ["AadVerifier", "FakeAcr"]

#: checks an AAD access token: its claims (``tid``, ``aud``, ``oid``/``appid``) or None
AadVerifier = Callable[[str], Mapping[str, Any] | None]

_UNAUTHORIZED = (
    "authentication required, visit https://aka.ms/acr/authorization for more information."
)


class FakeAcr(RoutedFake):
    """The fake registry; ``start()`` it, use :attr:`url`, ``stop()`` it (or ``with``)."""

    def __init__(
        self,
        upstream_url: str,
        *,
        upstream_username: str | None = None,
        upstream_password: str | None = None,
        admin_username: str = "acradmin",
        admin_password: str = "acr-admin-password",
        aad_verifier: AadVerifier | None = None,
        tenant_id: str = "",
        max_body_bytes: int = 20_000_000,
        refresh_token_seconds: float = 3 * 3600.0,
        access_token_seconds: float = 3600.0,
        page_size: int = 100,
        clock: FakeClock | None = None,
    ) -> None:
        self.admin_username, self.admin_password = admin_username, admin_password
        self.aad_verifier = aad_verifier
        self.tenant_id = tenant_id
        self.max_body_bytes = max_body_bytes
        self.page_size = page_size
        self.clock = clock or FakeClock()
        self.port = free_port()
        self.upstream = Upstream(upstream_url, self.url, upstream_username, upstream_password)
        self.tokens = TokenBook(
            self.service, self.clock, refresh_token_seconds, access_token_seconds
        )
        self.tokens.add_user(admin_username, admin_password, Principal("admin", "admin"))
        self.aad_roles: dict[str, frozenset[str]] = {}  # AAD principal -> actions (default all)
        self.refuse_exchange = False  # answer every exchange 401 (a tenant mismatch, say)
        self.refused_bodies: list[tuple[str, int]] = []  # (route, bytes) answered 413
        self._init_counts()
        self._throttles: dict[str, list[Any]] = {}  # route -> [times left, retry-after]

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def service(self) -> str:
        """The login server name (``service`` of token requests): ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    async def _open(self) -> None:
        await self.upstream.open()

    async def _close(self) -> None:
        await self.upstream.close()

    # -- what the test controls and reads --------------------------------------------------

    def add_token(
        self,
        name: str,
        password: str,
        scope_map: Mapping[str, Iterable[str]],
        *,
        catalog: bool = False,
    ) -> None:
        """A repository-scoped ACR token: ``{"team/*": ["content/read", "metadata/read"]}``."""
        self.tokens.add_user(name, password, Principal.from_scope_map(name, scope_map, catalog))

    def throttle(self, route: str, times: int, retry_after_seconds: float = 1.0) -> None:
        """Answer the next ``times`` requests of ``route`` (a :meth:`counts` key) with 429."""
        with self._lock:
            self._throttles[route] = [times, retry_after_seconds]

    def revoke_refresh_tokens(self) -> None:
        self.tokens.revoke_refresh_tokens()

    def revoke_access_tokens(self) -> None:
        self.tokens.revoke_access_tokens()

    # -- dispatch --------------------------------------------------------------------------

    async def _refusal(self, route: str, request: web.Request) -> web.StreamResponse | None:
        with self._lock:
            throttle = self._throttles.get(route)
            if throttle is not None and throttle[0] > 0:
                throttle[0] -= 1
                retry_after = f"{throttle[1]:g}"
            else:
                retry_after = ""
        if retry_after:
            await request.read()
            return acr_error(
                429, "TOOMANYREQUESTS", "too many requests", **{"Retry-After": retry_after}
            )
        return None

    def _route(self, request: web.Request) -> tuple[str, Any]:
        path, method = request.path, request.method
        if path == "/oauth2/token":
            return f"{method} /oauth2/token", lambda r: oauth.token(self, r)
        if path == "/oauth2/exchange":
            return f"{method} /oauth2/exchange", lambda r: oauth.exchange(self, r)
        if path.startswith("/acr/v1/"):
            return metadata.route(self, request)
        route = v2_route(method, path)
        if route is None:
            return f"{method} other", self._not_found
        if route.endswith(" /v2/"):
            return route, self._v2_base
        return route, self._v2  # the catalog too

    async def _not_found(self, request: web.Request) -> web.Response:
        await request.read()
        return acr_error(404, "NOT_FOUND", f"no route {request.path}")

    # -- authorization ---------------------------------------------------------------------

    def challenge(self, scope: str = "", error: str = "") -> web.Response:
        params = f'Bearer realm="{self.url}/oauth2/token",service="{self.service}"'
        if scope:
            params += f',scope="{scope}"'
        if error:
            params += f',error="{error}"'
        return acr_error(401, "UNAUTHORIZED", _UNAUTHORIZED, **{"WWW-Authenticate": params})

    def authorize(
        self, request: web.Request, needs: list[tuple[str, str, str]], scope: str
    ) -> web.Response | None:
        """None if the bearer token allows ``needs``; else the 401 challenge to send."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return self.challenge(scope)
        verdict = self.tokens.check(header[7:].strip(), needs)
        if verdict == "ok":
            return None
        return self.challenge(
            scope, "insufficient_scope" if verdict != "invalid" else "invalid_token"
        )

    # -- /v2 -------------------------------------------------------------------------------

    async def _v2_base(self, request: web.Request) -> web.Response:
        refused = self.authorize(request, [], "")
        if refused is not None:
            return refused
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        needs, scope = v2_needs(request)
        refused = self.authorize(request, needs, scope)
        if refused is not None:
            await request.read()
            return refused
        m = V2.match(request.path)
        if request.method == "DELETE" and m and m.group(2) == "manifests":
            reference = (m.group(3) or "/")[1:]
            if ":" not in reference:
                return acr_error(
                    400,
                    "UNSUPPORTED",
                    "ACR deletes manifests by digest only; DELETE /acr/v1/{name}/_tags/{tag} "
                    "deletes a tag",
                )
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        # ACR's listings are the OCI ones: plain JSON whatever else the client accepts
        listing = request.path == "/v2/_catalog" or (m is not None and m.group(2) == "tags")
        accept = "application/json" if listing else None
        return await self.upstream.forward(
            request, request.method, request.path_qs, body, accept=accept
        )

    async def _body(self, request: web.Request) -> bytes | web.Response:
        """The request body, or the answer refusing it (413 over the limit, 400 chunked)."""
        if request.method not in ("PUT", "POST", "PATCH"):
            return await request.read()
        length = request.content_length
        if length is None and request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            await self._drain(request)
            return acr_error(400, "CONTENT_LENGTH_INVALID", "a Content-Length is required")
        if length is not None and length > self.max_body_bytes:
            await self._drain(request)
            self.refused_bodies.append((f"{request.method} {request.path}", length))
            return web.Response(
                status=413,
                text="<html><head><title>413 Request Entity Too Large</title></head>"
                "<body>413 Request Entity Too Large - AzureContainerRegistry</body></html>",
                content_type="text/html",
            )
        return await request.read()

    @staticmethod
    async def _drain(request: web.Request) -> None:
        while await request.content.readany():
            pass
