"""A local fake of Quay (quay.io, Red Hat Quay) in front of a real registry.

``FakeQuay(upstream_url, ...)`` serves on 127.0.0.1 what Quay publishes, and proxies the OCI
API to the real registry behind it (a Seawall or a CNCF distribution) after checking Quay's
tokens:

- ``GET /v2/auth?service=HOST&scope=repository:NS/NAME:pull,push`` (Basic: a robot
  ``NS+NAME`` and its token, or ``$oauthtoken`` and an OAuth token) → ``{"token"}``, a JWT
  granting what of the scopes the login may do. As Quay does, asking ``push`` on a repository
  that does not exist creates it when the login may create repositories in the namespace (a
  robot with the creator role, an OAuth token with ``repo:create``), else grants nothing on it;
- ``GET /v2/`` and every ``/v2/...`` call: ``401`` with
  ``Bearer realm="<url>/v2/auth",service="<host:port>",scope=...`` unless the bearer token
  allows it; ``/v2/_catalog`` lists the repositories the token's login may pull;
  ``DELETE /v2/<name>/manifests/<tag>`` is refused (``405 UNSUPPORTED``, as Quay releases that
  delete by digest only) unless ``v2_tag_delete``; ``/v2/<name>/referrers/<digest>`` is
  ``404`` unless ``referrers_api`` (Quay >= 3.12);
- ``/api/v1/...`` (OAuth ``Bearer``): see :mod:`tests.support.fake_quay_api`.

Every request is counted by route (``"GET /api/v1/repository/{ns}/{repo}/tag/"``):
:meth:`FakeQuay.counts`; and by answer: :meth:`FakeQuay.answers`. Tokens expire by
:attr:`FakeQuay.clock` (a :class:`FakeClock` the test advances).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from tests.support import fake_quay_api
from tests.support.fake_acr_auth import FakeClock, Principal, TokenBook, parse_scope
from tests.support.fake_acr_upstream import Upstream
from tests.support.fake_front import V2, RoutedFake, v2_needs, v2_route
from tests.support.fake_quay_model import OAUTH_USERNAME, WRITE, OAuthGrant, QuayRepository
from tests.support.server import free_port

__all__ = ["OAUTH_USERNAME", "FakeQuay", "OAuthGrant", "QuayRepository"]


class FakeQuay(RoutedFake):
    """The fake; ``start()`` it, use :attr:`url`, ``stop()`` it (or ``with``)."""

    def __init__(
        self,
        upstream_url: str,
        *,
        upstream_username: str | None = None,
        upstream_password: str | None = None,
        repo_page_size: int = 100,
        referrers_api: bool = True,
        v2_tag_delete: bool = False,
        token_seconds: float = 3600.0,
        clock: FakeClock | None = None,
    ) -> None:
        self.repo_page_size = repo_page_size
        self.referrers_api = referrers_api
        self.v2_tag_delete = v2_tag_delete
        self.clock = clock or FakeClock()
        self.port = free_port()
        self.upstream = Upstream(upstream_url, self.url, upstream_username, upstream_password)
        self._upstream_basic = (
            "Basic "
            + base64.b64encode(f"{upstream_username}:{upstream_password}".encode()).decode()
            if upstream_username is not None
            else None
        )
        self.tokens = TokenBook(self.service, self.clock, token_seconds, token_seconds)
        self.repositories: dict[str, QuayRepository] = {}
        self.page_tokens: dict[str, tuple[str, int]] = {}  # next_page -> (namespace, offset)
        self.creators: dict[str, frozenset[str]] = {}  # login -> namespaces it creates in
        self._oauth: dict[str, OAuthGrant] = {}
        self._issued: dict[str, Principal] = {}  # registry token -> its login
        self._init_counts()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def service(self) -> str:
        """Quay's ``SERVER_HOSTNAME``: the ``service`` of token requests."""
        return f"127.0.0.1:{self.port}"

    async def _open(self) -> None:
        await self.upstream.open()

    async def _close(self) -> None:
        await self.upstream.close()

    # -- what the test sets up and reads -----------------------------------------------------

    def add_robot(
        self, namespace: str, short_name: str, *, write: bool = True, creator: bool = False
    ) -> tuple[str, str]:
        """A robot of ``namespace`` with read (or write) on all its repositories, as an
        organization's default permission gives it; ``creator``: the creator role (creates
        repositories on push). ``(username, token)``."""
        username, token = f"{namespace}+{short_name}", secrets.token_hex(32).upper()
        actions = WRITE if write else frozenset({"pull"})
        self.tokens.add_user(
            username, token, Principal(username, "robot", {f"{namespace}/*": actions})
        )
        if creator:
            self.creators[username] = frozenset({namespace})
        return username, token

    def add_oauth_token(
        self, user: str, namespaces: Iterable[str], scopes: Iterable[str] | None = None
    ) -> str:
        """An OAuth application token of ``user`` for its own and the given namespaces."""
        token = secrets.token_urlsafe(30)
        grant = OAuthGrant(user, frozenset({user, *namespaces}))
        if scopes is not None:
            grant = OAuthGrant(grant.user, grant.namespaces, frozenset(scopes))
        with self._lock:
            self._oauth[token] = grant
        return token

    def oauth_grant(self, token: str) -> OAuthGrant | None:
        with self._lock:
            return self._oauth.get(token)

    def add_repository(
        self, namespace: str, name: str, *, public: bool = False, description: str = ""
    ) -> QuayRepository:
        repo = QuayRepository(namespace, name, public, description)
        with self._lock:
            self.repositories.setdefault(f"{namespace}/{name}", repo)
            return self.repositories[f"{namespace}/{name}"]

    async def upstream_delete(self, path: str) -> int:
        """``DELETE`` on the real registry (the API's tag delete): its status."""
        assert self.upstream.http is not None
        headers = {"Authorization": self._upstream_basic} if self._upstream_basic else {}
        async with self.upstream.http.delete(self.upstream.url + path, headers=headers) as up:
            await up.read()
            return up.status

    # -- dispatch --------------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[str, Any]:
        path, method = request.path, request.method
        if path.startswith("/api/v1/"):
            return fake_quay_api.route(self, request)
        if path == "/v2/auth":
            return f"{method} /v2/auth", self._token
        route = v2_route(method, path)
        if route is None:
            return f"{method} other", self._not_found
        if route.endswith(" /v2/"):
            return route, self._v2_base
        if route.endswith(" /v2/_catalog"):
            return route, self._catalog
        return route, self._v2

    async def _not_found(self, request: web.Request) -> web.Response:
        await request.read()
        return _oci_error(404, "NOT_FOUND", "not found")

    # -- the token endpoint ----------------------------------------------------------------

    def _login(self, header: str) -> Principal | bool | None:
        """The Basic login's principal; None for no login; False for a wrong one."""
        if not header.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        if user == OAUTH_USERNAME:
            grant = self.oauth_grant(password)
            return grant.principal() if grant is not None else False
        found = self.tokens.login(user, password)
        return found if found is not None else False

    def _may_create(self, principal: Principal, namespace: str) -> bool:
        if principal.kind == "oauth":
            with self._lock:
                grant = next((g for g in self._oauth.values() if g.user == principal.name), None)
            return (
                grant is not None
                and "repo:create" in grant.scopes
                and namespace in grant.namespaces
            )
        return namespace in self.creators.get(principal.name, frozenset())

    async def _token(self, request: web.Request) -> web.Response:
        login = self._login(request.headers.get("Authorization", ""))
        if login is False:
            return _oci_error(401, "UNAUTHORIZED", "Invalid Username or Password")
        if request.query.get("service") != self.service:
            return _oci_error(400, "INVALID_REQUEST", "Invalid service name")
        principal = login if isinstance(login, Principal) else Principal("", "anonymous", {})
        granted: list[str] = []
        for scope in request.query.getall("scope", []):
            parsed = parse_scope(scope)
            if parsed is None:
                continue
            kind, name, actions = parsed
            if kind == "registry" and name == "catalog":
                granted.append(scope)
                continue
            namespace = name.partition("/")[0]
            creates = name not in self.repositories and "push" in actions
            if creates and self._may_create(principal, namespace):
                self.add_repository(namespace, name.partition("/")[2])
            if name in self.repositories:
                granted.append(scope)
        token = self.tokens.issue_access(principal, granted)
        with self._lock:
            self._issued[token] = principal
        return web.json_response({"token": token})

    # -- /v2 -------------------------------------------------------------------------------

    def _challenge(self, scope: str = "", error: str = "") -> web.Response:
        params = f'Bearer realm="{self.url}/v2/auth",service="{self.service}"'
        if scope:
            params += f',scope="{scope}"'
        if error:
            params += f',error="{error}"'
        return _oci_error(
            401,
            "UNAUTHORIZED",
            "access to the requested resource is not authorized",
            **{"WWW-Authenticate": params},
        )

    def _authorize(
        self, request: web.Request, needs: list[tuple[str, str, str]], scope: str
    ) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return self._challenge(scope)
        verdict = self.tokens.check(header[7:].strip(), needs)
        if verdict == "ok":
            return None
        return self._challenge(
            scope, "insufficient_scope" if verdict != "invalid" else "invalid_token"
        )

    async def _v2_base(self, request: web.Request) -> web.Response:
        refused = self._authorize(request, [], "")
        if refused is not None:
            return refused
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    async def _catalog(self, request: web.Request) -> web.Response:
        refused = self._authorize(request, [("registry", "catalog", "*")], "registry:catalog:*")
        if refused is not None:
            return refused
        with self._lock:
            principal = self._issued.get(request.headers["Authorization"][7:].strip())
        assert principal is not None
        names = sorted(n for n in self.repositories if "pull" in principal.allowed(n))
        return web.json_response({"repositories": names})

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        needs, scope = v2_needs(request)
        refused = self._authorize(request, needs, scope)
        if refused is not None:
            await request.read()
            return refused
        m = V2.match(request.path)
        assert m is not None
        kind, reference = m.group(2), (m.group(3) or "/")[1:]
        tag_delete = request.method == "DELETE" and kind == "manifests" and ":" not in reference
        if tag_delete and not self.v2_tag_delete:
            await request.read()
            return _oci_error(405, "UNSUPPORTED", "The operation is unsupported.")
        if kind == "referrers" and not self.referrers_api:
            await request.read()
            return web.Response(status=404, text="404 page not found")
        body = await request.read()
        accept = "application/json" if kind == "tags" else None  # Quay's plain tag list
        return await self.upstream.forward(request, request.method, request.path_qs, body, accept)


def _oci_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    """Quay's registry errors: the OCI shape (``{"errors": [{"code", "detail", "message"}]}``)."""
    body = {"errors": [{"code": code, "detail": {}, "message": message}]}
    return web.json_response(body, status=status, headers=headers)
