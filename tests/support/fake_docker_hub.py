"""A local fake of Docker Hub, in front of a real registry, following Docker's published docs.

``FakeDockerHub(upstream_url, ...)`` serves on 127.0.0.1, in one server:

- Hub's **token service** (``auth.docker.io``): ``GET /token?service=registry.docker.io&
  scope=repository:NAME:pull[,push]`` with Basic (a Docker ID and its password or access
  token) or none (anonymous: pulls only) → ``{"token", "access_token", "expires_in": 300,
  "issued_at"}``; JWT-shaped tokens with ``exp`` and Docker ``access`` claims, expiring by the
  fake's clock; a wrong login → ``401``.
- the **registry** (``registry-1.docker.io``): ``/v2/...`` with Bearer checks (``401`` +
  ``WWW-Authenticate: Bearer realm="<url>/token",service="registry.docker.io",scope=…``),
  proxied to the real registry; manifest ``DELETE`` → ``405 UNSUPPORTED``; no catalog, no
  referrers API (404); tag lists as plain JSON.
- the **pull limit**: every manifest ``HEAD``/``GET`` answer carries ``ratelimit-limit:
  N;w=W``, ``ratelimit-remaining: R;w=W`` and ``docker-ratelimit-source``; a ``GET`` answered
  200 spends one pull of the caller (a Docker ID, or the anonymous address), a ``HEAD`` none;
  with nothing left a ``GET`` is answered ``429 {"errors":[{"code":"TOOMANYREQUESTS"}]}``
  with ``Retry-After`` (seconds until the oldest pull leaves the sliding window). The window
  runs on :attr:`FakeDockerHub.clock` (a :class:`FakeClock` the test advances); the
  accounting is :mod:`tests.support.fake_docker_hub_limits`'s.
- the **Hub API** (``hub.docker.com``): :mod:`tests.support.fake_docker_hub_api`.

Every request is counted by method and route (``"GET /v2/{name}/manifests/{ref}"``):
:meth:`counts`, :meth:`count`; and by answer: :meth:`answers`.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.support.fake_acr_auth import (
    ALL_ACTIONS,
    FakeClock,
    Principal,
    TokenBook,
    unsigned_jwt,
)
from tests.support.fake_acr_metadata import acr_error as oci_error
from tests.support.fake_docker_hub_api import hub_route
from tests.support.fake_docker_hub_limits import PullLedger
from tests.support.fake_docker_hub_upstream import HubUpstream
from tests.support.fake_front import V2, RoutedFake, v2_needs, v2_route
from tests.support.server import free_port

__all__ = ["SERVICE", "FakeDockerHub"]

SERVICE = "registry.docker.io"
_ANONYMOUS = Principal("anonymous", "anonymous", {"*": frozenset({"pull"})}, catalog=False)
_LIMIT_MESSAGE = (
    "You have reached your pull rate limit. You may increase the limit by authenticating "
    "and upgrading: https://www.docker.com/increase-rate-limit"
)


class FakeDockerHub(RoutedFake):
    """The fake; ``start()`` it, use :attr:`url` (registry, token service and Hub API),
    ``stop()`` it (or ``with``).

    :param pull_limit: pulls per window for each caller (None: no limit and no headers).
    :param window_seconds: the sliding window of the pull limit.
    """

    def __init__(
        self,
        upstream_url: str,
        *,
        upstream_username: str | None = None,
        upstream_password: str | None = None,
        pull_limit: int | None = 10_000,
        window_seconds: float = 21600.0,
        registry_token_seconds: float = 300.0,
        hub_token_seconds: float = 600.0,
        clock: FakeClock | None = None,
    ) -> None:
        self.clock = clock or FakeClock()
        self.port = free_port()
        self.upstream = HubUpstream(upstream_url, self.url, upstream_username, upstream_password)
        self.tokens = TokenBook(SERVICE, self.clock, 0.0, registry_token_seconds)
        self.ledger = PullLedger(pull_limit, window_seconds, self.clock)
        self.hub_token_seconds = hub_token_seconds  # Hub's access tokens: 10 minutes
        self.auth_token_route = True  # False: an older Hub, POST /v2/users/login only
        self.throttled = 0  # manifest GETs still to answer 429 as request-rate throttling
        self.throttle_retry_after_seconds = 3600
        self._users: dict[str, tuple[str, frozenset[str]]] = {}  # name -> (password, namespaces)
        self._hub_tokens: dict[str, tuple[str, float]] = {}  # JWT -> (user, expiry)
        self._init_counts()

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        await self.upstream.open()

    async def _close(self) -> None:
        await self.upstream.close()

    # -- accounts, tokens, pulls (the test's controls, and the routes' helpers) --------------

    def add_user(
        self,
        username: str,
        password: str,
        namespaces: tuple[str, ...] = (),
        *,
        limit: int | None = -1,
    ) -> None:
        """A Docker ID owning its own namespace and ``namespaces`` (organizations);
        ``limit``: its pulls per window (-1: the fake's ``pull_limit``; None: unlimited)."""
        owned = frozenset({username, *namespaces})
        repos = {"*": frozenset({"pull"}), **{f"{ns}/*": ALL_ACTIONS for ns in owned}}
        self.tokens.add_user(username, password, Principal(username, "user", repos, False))
        with self._lock:
            self._users[username] = (password, owned)
        if limit != -1:
            self.ledger.limits[username] = limit

    def owns_namespace(self, namespace: str) -> bool:
        with self._lock:
            return any(namespace in owned for _, owned in self._users.values())

    def may_write(self, user: str, namespace: str) -> bool:
        with self._lock:
            known = self._users.get(user)
        return known is not None and namespace in known[1]

    def hub_login(self, username: str, password: str) -> str | None:
        """A Hub API JWT for a right login, else None."""
        with self._lock:
            known = self._users.get(username)
        if known is None or not secrets.compare_digest(known[0], password):
            return None
        now = self.clock()
        exp = now + self.hub_token_seconds
        token = unsigned_jwt({"sub": username, "iat": int(now), "exp": int(exp)})
        with self._lock:
            self._hub_tokens[token] = (username, exp)
        return token

    def hub_user(self, token: str) -> str | None:
        with self._lock:
            found = self._hub_tokens.get(token)
        if found is None or found[1] <= self.clock():
            return None
        return found[0]

    def remaining(self, caller: str) -> int | None:
        """Pulls ``caller`` has left in the window now (None: unlimited)."""
        return self.ledger.remaining(caller)

    def pulls(self, caller: str) -> int:
        """Pulls ``caller`` spent in the current window."""
        return self.ledger.pulls(caller)

    def throttle(self, gets: int, retry_after_seconds: int = 3600) -> None:
        """Answer the next ``gets`` manifest GETs ``429`` as Hub's request-rate throttling
        (no pull spent, no ``ratelimit-*`` headers)."""
        with self._lock:
            self.throttled, self.throttle_retry_after_seconds = gets, retry_after_seconds

    def _throttle(self) -> bool:
        with self._lock:
            if self.throttled <= 0:
                return False
            self.throttled -= 1
            return True

    # -- what the test reads ---------------------------------------------------------------

    # -- the upstream --------------------------------------------------------------------

    async def upstream_repositories(self) -> list[str]:
        return await self.upstream.repositories()

    async def upstream_delete(self, path: str) -> int:
        return await self.upstream.delete(path)

    # -- dispatch --------------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[str, Any]:
        path, method = request.path, request.method
        if path == "/token":
            return f"{method} /token", self._token
        hub = hub_route(self, request)
        if hub is not None:
            return hub
        route = v2_route(method, path)
        if route is None:
            return f"{method} other", self._not_found
        if route.endswith(" /v2/"):
            return route, self._v2_base
        if route.endswith(" /v2/_catalog"):
            return route, self._no_catalog
        return route, self._v2

    async def _not_found(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=404, text="404 page not found\n")

    # -- token service ---------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        if request.method != "GET":
            return web.json_response({"details": "method not allowed"}, status=405)
        if request.query.get("service") != SERVICE:
            return web.json_response({"details": "invalid service"}, status=400)
        principal = _ANONYMOUS
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(header[6:].strip()).decode()
            except ValueError:
                raw = ":"
            username, _, password = raw.partition(":")
            found = self.tokens.login(username, password)
            if found is None:
                return web.json_response({"details": "incorrect username or password"}, status=401)
            principal = found
        token = self.tokens.issue_access(principal, request.query.getall("scope", []))
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        expires = int(self.tokens.access_token_seconds)
        body = {"token": token, "access_token": token, "expires_in": expires, "issued_at": issued}
        return web.json_response(body)

    # -- registry --------------------------------------------------------------------------

    def _challenge(self, scope: str = "", error: str = "") -> web.Response:
        params = f'Bearer realm="{self.url}/token",service="{SERVICE}"'
        if scope:
            params += f',scope="{scope}"'
        if error:
            params += f',error="{error}"'
        return oci_error(
            401, "UNAUTHORIZED", "authentication required", **{"WWW-Authenticate": params}
        )

    def _caller(self, request: web.Request, needs: list[tuple[str, str, str]], scope: str) -> Any:
        """The token's subject, or the 401 to answer."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return self._challenge(scope)
        token = header[7:].strip()
        verdict = self.tokens.check(token, needs)
        if verdict != "ok":
            error = "insufficient_scope" if verdict != "invalid" else "invalid_token"
            return self._challenge(scope, error)
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return str(claims.get("sub") or "anonymous")

    async def _v2_base(self, request: web.Request) -> web.Response:
        caller = self._caller(request, [], "")
        if isinstance(caller, web.Response):
            return caller
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    async def _no_catalog(self, request: web.Request) -> web.Response:
        caller = self._caller(request, [("registry", "catalog", "*")], "registry:catalog:*")
        if isinstance(caller, web.Response):
            return caller
        return oci_error(401, "UNAUTHORIZED", "authentication required")

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        m = V2.match(request.path)
        assert m is not None
        kind, method = m.group(2), request.method
        if kind == "referrers":
            await request.read()
            return web.Response(status=404, text="404 page not found\n")
        caller = self._caller(request, *v2_needs(request))
        if isinstance(caller, web.Response):
            await request.read()
            return caller
        if kind == "manifests" and method == "DELETE":
            await request.read()
            return oci_error(405, "UNSUPPORTED", "The operation is unsupported.")
        if kind == "manifests" and method in ("GET", "HEAD"):
            return await self._manifest(request, caller)
        accept = "application/json" if kind == "tags" else None
        return await self.upstream.forward_with(request, lambda status: {}, accept=accept)

    async def _manifest(self, request: web.Request, caller: str) -> web.StreamResponse:
        """A manifest HEAD or GET, with the pull limit's headers; a GET spends a pull."""
        ledger = self.ledger
        limit = ledger.limit_of(caller)
        if limit is None:
            return await self.upstream.forward_with(request, lambda status: {})
        left = ledger.remaining(caller) or 0
        if request.method == "GET" and self._throttle():
            await request.read()
            retry = {"Retry-After": str(self.throttle_retry_after_seconds)}
            return oci_error(429, "TOOMANYREQUESTS", "Too Many Requests", **retry)
        if request.method == "GET" and left <= 0:
            await request.read()
            return oci_error(
                429,
                "TOOMANYREQUESTS",
                _LIMIT_MESSAGE,
                **ledger.headers(caller, limit, 0),
                **{"Retry-After": str(ledger.frees_in_seconds(caller))},
            )

        def headers(status: int) -> Mapping[str, str]:
            spent = request.method == "GET" and status == 200
            if spent:
                ledger.spend(caller)
            return ledger.headers(caller, limit, left - 1 if spent else left)

        return await self.upstream.forward_with(request, headers)
