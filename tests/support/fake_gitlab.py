"""A local fake of GitLab and its container registry, in front of a real registry.

``FakeGitLab(upstream_url)`` serves two ports on 127.0.0.1, as GitLab runs two services:

- the **registry** (:attr:`FakeGitLab.registry_url`): ``/v2/...`` proxied to the real registry
  (a CNCF distribution, as GitLab's registry is one) after checking GitLab's JWTs; without a
  token that allows the request: ``401`` with ``Bearer realm="<gitlab>/jwt/auth",
  service="container_registry",scope=...`` (``error="insufficient_scope"`` when a token was
  sent); ``/v2/_catalog`` needs ``registry:catalog:*``, which GitLab gives administrators
  only (never here);
- the **instance** (:attr:`FakeGitLab.gitlab_url`): ``GET /jwt/auth`` (see
  :mod:`tests.support.fake_gitlab_auth`) and the REST API ``/api/v4`` (see
  :mod:`tests.support.fake_gitlab_api`).

The test adds projects (:meth:`add_project`: their groups come with them) and tokens
(:meth:`add_token`, :meth:`add_deploy_token`) and faults (:meth:`fail`); time is :attr:`clock` (a
:class:`~tests.support.fake_acr_auth.FakeClock` the test advances). Every request is counted
by route (``"GET /api/v4/groups/:id/registry/repositories"``, ``"GET /jwt/auth"``,
``"HEAD /v2/{name}/manifests/{ref}"``): :meth:`counts`, :meth:`count`; and by answer:
:meth:`answers`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from datetime import date
from typing import Any

from aiohttp import web

from tests.support import fake_gitlab_api as api
from tests.support.fake_acr_auth import FakeClock
from tests.support.fake_acr_metadata import acr_error as registry_error
from tests.support.fake_acr_upstream import Upstream
from tests.support.fake_front import RoutedFake, v2_needs, v2_route
from tests.support.fake_gitlab_auth import JwtBook, TokenRecord
from tests.support.server import free_port

__all__ = ["FakeGitLab"]

SERVICE = "container_registry"
_MAX_IMAGE_DEPTH = 3


class FakeGitLab(RoutedFake):
    """The fake; ``start()`` it (or ``with``), use its URLs, ``stop()`` it."""

    def __init__(
        self, upstream_url: str, *, jwt_seconds: float = 300.0, clock: FakeClock | None = None
    ) -> None:
        self.clock = clock or FakeClock()
        self.registry_port, self.gitlab_port = free_port(), free_port()
        self.upstream = Upstream(upstream_url, self.registry_url, None, None)
        self.jwt = JwtBook(self.clock, self.owner_of, jwt_seconds)
        self.max_per_page = 100  # GitLab's; a test lowers it to see paging
        self.projects: dict[str, int] = {}  # lower-case full path -> id
        self.groups: dict[str, int] = {}
        self._repository_ids: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._init_counts()
        self._faults: dict[str, list[int]] = {}  # route -> [times left, status]

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    @property
    def registry_host(self) -> str:
        return f"127.0.0.1:{self.registry_port}"

    @property
    def gitlab_url(self) -> str:
        return f"http://127.0.0.1:{self.gitlab_port}"

    async def _open(self) -> None:
        await self.upstream.open()

    async def _close(self) -> None:
        await self.upstream.close()

    def _ports(self) -> tuple[int, ...]:
        return (self.registry_port, self.gitlab_port)

    # -- what the test controls and reads --------------------------------------------------

    def add_project(self, full_path: str) -> int:
        """A project (and its groups); its id."""
        path = full_path.lower().strip("/")
        parts = path.split("/")
        assert len(parts) >= 2, "a project lives in a group"
        with self._lock:
            for n in range(1, len(parts)):
                self.groups.setdefault("/".join(parts[:n]), next(self._ids))
            return self.projects.setdefault(path, next(self._ids))

    def add_token(
        self, secret: str, *scopes: str, name: str = "seawall", expires_at: date | None = None
    ) -> TokenRecord:
        """A personal/project/group access token with ``scopes``."""
        record = TokenRecord(next(self._ids), name, frozenset(scopes), expires_at)
        self.jwt.add(secret, record)
        return record

    def add_deploy_token(self, username: str, secret: str, *scopes: str) -> TokenRecord:
        record = TokenRecord(next(self._ids), username, frozenset(scopes), None, False, username)
        self.jwt.add(secret, record)
        return record

    def fail(self, route: str, times: int, status: int = 500) -> None:
        """Answer the next ``times`` requests of ``route`` (a :meth:`counts` key) with
        ``status`` and GitLab's error body."""
        with self._lock:
            self._faults[route] = [times, status]

    # -- the model the API reads -----------------------------------------------------------

    def owner_of(self, path: str) -> str | None:
        """The project that owns a registry path (at most three image names below it)."""
        parts = path.lower().split("/")
        for n in range(len(parts), max(2, len(parts) - _MAX_IMAGE_DEPTH) - 1, -1):
            candidate = "/".join(parts[:n])
            if candidate in self.projects:
                return candidate
        return None

    def project_path(self, ident: str) -> str | None:
        """A project's path from its id or full path (any case)."""
        if ident.isdigit():
            return next((p for p, i in self.projects.items() if i == int(ident)), None)
        path = ident.lower().strip("/")
        return path if path in self.projects else None

    def repository_id(self, path: str) -> int:
        with self._lock:
            if path not in self._repository_ids:
                self._repository_ids[path] = next(self._ids)
            return self._repository_ids[path]

    def repository_path(self, rid: int) -> str | None:
        with self._lock:
            return next((p for p, i in self._repository_ids.items() if i == rid), None)

    async def registry_paths(self) -> list[str]:
        """The repositories of the registry behind (its catalog), sorted."""
        names: list[str] = []
        params: dict[str, Any] = {"n": 1000}  # distribution's largest page
        while True:
            status, doc, headers = await self.upstream.json("/v2/_catalog", params, "*/*")
            assert status == 200, f"the registry behind lists no catalog: {status}"
            page = (doc or {}).get("repositories") or []
            names.extend(page)
            if not page or "Link" not in headers:
                break
            params = {"n": 1000, "last": page[-1]}
        names.sort()
        for name in names:
            self.repository_id(name)
        return names

    async def delete_tag_upstream(self, path: str, tag: str) -> None:
        """GitLab's tag deletion on a registry that deletes by digest only: a throwaway
        manifest goes under the tag, then that manifest is deleted by digest."""
        http = self.upstream.http
        assert http is not None
        base = f"{self.upstream.url}/v2/{path}"
        config, manifest = api.dummy_manifest()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        async with http.post(f"{base}/blobs/uploads/") as r:
            assert r.status == 202, await r.text()
            location = r.headers["Location"]
        if location.startswith("/"):
            location = self.upstream.url + location
        separator = "&" if "?" in location else "?"
        async with http.put(f"{location}{separator}digest={config_digest}", data=config) as r:
            assert r.status == 201, await r.text()
        media = "application/vnd.docker.distribution.manifest.v2+json"
        async with http.put(
            f"{base}/manifests/{tag}", data=manifest, headers={"Content-Type": media}
        ) as r:
            assert r.status == 201, await r.text()
            digest = r.headers["Docker-Content-Digest"]
        async with http.delete(f"{base}/manifests/{digest}") as r:
            assert r.status == 202, await r.text()

    # -- dispatch --------------------------------------------------------------------------

    async def _refusal(self, route: str, request: web.Request) -> web.StreamResponse | None:
        with self._lock:
            fault, status = self._faults.get(route), 0
            if fault is not None and fault[0] > 0:
                fault[0] -= 1
                status = fault[1]
        if status:
            await request.read()
            return api.gitlab_error(status, f"{status} Internal Server Error")
        return None

    def _route(self, request: web.Request) -> tuple[str, Any]:
        path, method = request.path, request.method
        port = request.transport.get_extra_info("sockname")[1] if request.transport else 0
        if port == self.gitlab_port:
            if path == "/jwt/auth":
                return f"{method} /jwt/auth", self._jwt_auth
            if path.startswith("/api/v4/"):
                return api.route(self, request)
            return f"{method} other", self._not_found
        route = v2_route(method, path)
        if route is None:
            return f"{method} other", self._not_found
        if route.endswith(" /v2/"):
            return route, self._v2_base
        if route.endswith(" /v2/_catalog"):
            return route, self._v2
        return route, self._v2

    async def _not_found(self, request: web.Request) -> web.Response:
        await request.read()
        return api.gitlab_error(404, "404 Not Found")

    # -- /jwt/auth -------------------------------------------------------------------------

    async def _jwt_auth(self, request: web.Request) -> web.Response:
        if request.query.get("service") != SERVICE:
            return registry_error(400, "UNAUTHORIZED", "invalid service")
        header = request.headers.get("Authorization", "")
        record = None
        if header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(header[6:].strip()).decode()
            except ValueError:
                raw = ":"
            username, _, secret = raw.partition(":")
            record = self.jwt.login(username, secret)
            if record is None:
                return registry_error(
                    401,
                    "UNAUTHORIZED",
                    "HTTP Basic: Access denied. If a password was provided for Git "
                    "authentication, the password was incorrect or you're required to use a "
                    "token instead of a password.",
                )
        token = self.jwt.issue(record, request.query.getall("scope", []))
        return web.json_response({"token": token})

    # -- /v2 -------------------------------------------------------------------------------

    def _challenge(self, scope: str = "", error: str = "") -> web.Response:
        params = f'Bearer realm="{self.gitlab_url}/jwt/auth",service="{SERVICE}"'
        if scope:
            params += f',scope="{scope}"'
        if error:
            params += f',error="{error}"'
        return registry_error(
            401, "UNAUTHORIZED", "authentication required", **{"WWW-Authenticate": params}
        )

    def _authorize(
        self, request: web.Request, needs: list[tuple[str, str, str]], scope: str
    ) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return self._challenge(scope)
        verdict = self.jwt.check(header[7:].strip(), needs)
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

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        needs, scope = v2_needs(request)
        refused = self._authorize(request, needs, scope)
        body = await request.read()
        if refused is not None:
            return refused
        return await self.upstream.forward(request, request.method, request.path_qs, body)
