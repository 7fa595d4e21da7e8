"""A local fake of Harbor 2.x in front of a real registry (a Seawall or a CNCF distribution).

``FakeHarbor(upstream_url, ...)`` serves on 127.0.0.1 what Harbor publishes:

- ``/v2/...``: the OCI API, proxied to the real registry after checking Harbor's registry
  tokens: ``401`` with ``Bearer realm="<url>/service/token",service="harbor-registry"`` unless
  the token allows it; ``DELETE /v2/<name>/manifests/<tag>`` is ``400 UNSUPPORTED`` (Harbor
  deletes artifacts by digest only); ``/v2/_catalog`` for administrators only; a push into a
  project that does not exist gets a token without ``push`` (so ``401``), as in Harbor;
- ``GET /service/token`` (Basic: a user or a robot account, or anonymous) →
  ``{"token", "access_token", "expires_in", "issued_at"}`` (:mod:`tests.support.fake_harbor_auth`);
- ``/api/v2.0/...``: projects, repositories, artifacts with tags, tag deletes, robot accounts,
  quotas and webhook policies (:mod:`tests.support.fake_harbor_api`,
  :mod:`tests.support.fake_harbor_hooks_api`);
- webhooks: a manifest pushed (``PUT`` answered ``201``) fires ``PUSH_ARTIFACT``, a manifest
  deleted by digest ``DELETE_ARTIFACT``, to the targets of the project's enabled policies,
  in Harbor's payload formats (:mod:`tests.support.fake_harbor_webhooks`).

The fake starts with Harbor's ``admin`` user and its public ``library`` project. Every request
is counted by route (``"GET /api/v2.0/projects"``, ``"HEAD /v2/{name}/manifests/{ref}"``):
:meth:`FakeHarbor.counts`.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from adapters.oci.urls import is_digest
from tests.support import fake_harbor_api
from tests.support.fake_acr_auth import FakeClock
from tests.support.fake_acr_metadata import listed_tags
from tests.support.fake_acr_upstream import Upstream
from tests.support.fake_front import V2, RoutedFake, v2_needs, v2_route
from tests.support.fake_harbor_auth import Account, Accounts, robot_permissions, token_subject
from tests.support.fake_harbor_http import Project, harbor_error
from tests.support.fake_harbor_webhooks import ArtifactEvent, Delivery, Webhooks
from tests.support.server import free_port

__all__ = ["SERVICE", "FakeHarbor"]

SERVICE = "harbor-registry"
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')


class Ids:
    """A stable integer id per key (artifacts, tags, repositories of the fake)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, ...], int] = {}
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> int:
        with self._lock:
            if key not in self._ids:
                self._ids[key] = next(self._next)
            return self._ids[key]


class FakeHarbor(RoutedFake):
    """The fake; ``start()`` it, use :attr:`url`, ``stop()`` it (or ``with``)."""

    def __init__(
        self,
        upstream_url: str,
        *,
        upstream_username: str | None = None,
        upstream_password: str | None = None,
        admin_password: str = "Harbor12345",
        default_storage_limit_bytes: int = -1,
        only_admin_creates_projects: bool = False,
        clock: FakeClock | None = None,
    ) -> None:
        self.port = free_port()
        self.admin_password = admin_password
        self.default_storage_limit_bytes = default_storage_limit_bytes
        self.only_admin_creates_projects = only_admin_creates_projects
        self.clock = clock or FakeClock()
        self.upstream = Upstream(upstream_url, self.url, upstream_username, upstream_password)
        self.accounts = Accounts(SERVICE, self.clock)
        self.accounts.add(Account("admin", admin_password, admin=True))
        self.webhooks = Webhooks(f"127.0.0.1:{self.port}")
        self.ids = Ids()
        self._projects: dict[str, Project] = {}
        self._init_counts()
        self.add_project("library", {"public": "true"}, -1, "admin")

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        await self.upstream.open()

    async def _close(self) -> None:
        await self.webhooks.close()
        await self.upstream.close()

    # -- state -----------------------------------------------------------------------------

    def project(self, ref: str, *, by_name: bool = True) -> Project | None:
        """A project by name (or by id, when ``by_name`` is False and ``ref`` is a number)."""
        with self._lock:
            if not by_name and ref.isdigit():
                return next((p for p in self._projects.values() if p.id == int(ref)), None)
            return self._projects.get(ref)

    def all_projects(self) -> list[Project]:
        with self._lock:
            return sorted(self._projects.values(), key=lambda p: p.id)

    def add_project(
        self, name: str, metadata: dict[str, str], storage_limit: int, owner: str
    ) -> Project | None:
        """A new project; None if the name is taken."""
        with self._lock:
            if name in self._projects:
                return None
            project = Project(len(self._projects) + 1, name, dict(metadata), storage_limit, owner)
            self._projects[name] = project
            return project

    async def repository_names(self, project: str) -> list[str]:
        """The repositories of ``project`` in the registry behind (its catalog)."""
        prefix = f"{project}/"
        path: str | None = "/v2/_catalog"
        params: dict[str, Any] = {"n": 1000, "prefix": prefix}
        names: list[str] = []
        while path is not None:
            status, doc, headers = await self.upstream.json(path, params, "application/json")
            if status != 200 or not isinstance(doc, dict):
                raise RuntimeError(f"upstream catalog answered {status}")
            names += [str(r) for r in doc.get("repositories") or [] if str(r).startswith(prefix)]
            m = _NEXT.search(headers.get("Link", ""))
            path, params = (m.group(1).replace(self.upstream.url, ""), {}) if m else (None, {})
        return sorted(set(names))

    # -- what the test controls and reads --------------------------------------------------

    def add_user(
        self, name: str, password: str, *, admin: bool = False, permissions: Iterable[Any] = ()
    ) -> Account:
        """A user; ``permissions`` as a robot's (``[{"kind", "namespace", "access"}]``)."""
        return self.accounts.add(Account(name, password, admin, "", robot_permissions(permissions)))

    def deliveries(self) -> list[Delivery]:
        return self.webhooks.delivered()

    # -- dispatch --------------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[str, Any]:
        path, method = request.path, request.method
        if path == "/service/token":
            return f"{method} /service/token", self._token
        if path.startswith(fake_harbor_api.PREFIX + "/"):
            return fake_harbor_api.route(self, request)
        route = v2_route(method, path)
        if route is None:
            return f"{method} other", self._not_found
        if route.endswith(" /v2/"):
            return route, self._v2_base
        return route, self._v2  # the catalog too

    async def _not_found(self, request: web.Request) -> web.Response:
        await request.read()
        return harbor_error(404, "NOT_FOUND", f"no route {request.path}")

    # -- tokens ----------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        account = self.accounts.from_basic(request.headers.get("Authorization", ""))
        if account is False:
            return harbor_error(401, "UNAUTHORIZED", "authentication failed")
        scopes = request.query.getall("scope", [])
        token = self.accounts.issue(
            account if isinstance(account, Account) else None,
            scopes,
            lambda name: self.project(name) is not None,
            lambda name: (p := self.project(name)) is not None and p.public,
        )
        issued = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "token": token,
            "access_token": token,
            "expires_in": int(self.accounts.token_seconds),
            "issued_at": issued,
        }
        return web.json_response(body)

    def challenge(self, scope: str = "", error: str = "") -> web.Response:
        params = f'Bearer realm="{self.url}/service/token",service="{SERVICE}"'
        if scope:
            params += f',scope="{scope}"'
        if error:
            params += f',error="{error}"'
        answer = harbor_error(401, "UNAUTHORIZED", "unauthorized to access repository")
        answer.headers["WWW-Authenticate"] = params
        return answer

    def _authorize(
        self, request: web.Request, needs: list[tuple[str, str, str]], scope: str
    ) -> tuple[web.Response | None, str]:
        """``(None, operator)`` if the bearer token allows ``needs``; else the challenge."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return self.challenge(scope), ""
        token = header[7:].strip()
        verdict = self.accounts.tokens.check(token, needs)
        if verdict == "ok":
            return None, token_subject(token)
        error = "insufficient_scope" if verdict != "invalid" else "invalid_token"
        return self.challenge(scope, error), ""

    # -- /v2 -------------------------------------------------------------------------------

    async def _v2_base(self, request: web.Request) -> web.Response:
        refused, _ = self._authorize(request, [], "")
        if refused is not None:
            return refused
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        needs, scope = v2_needs(request)
        refused, operator = self._authorize(request, needs, scope)
        body = await request.read()
        if refused is not None:
            return refused
        m = V2.match(request.path)
        kind = m.group(2) if m else ""
        reference = (m.group(3) or "/")[1:] if m else ""
        if request.method == "DELETE" and kind == "manifests":
            if not is_digest(reference):
                return harbor_error(
                    400, "UNSUPPORTED", f"unsupported digest {reference}: not a digest"
                )
            assert m is not None
            return await self._delete_manifest(request, m.group(1), reference, operator)
        answer = await self.upstream.forward(request, request.method, request.path_qs, body)
        if request.method == "PUT" and kind == "manifests" and answer.status == 201:
            assert m is not None
            digest = answer.headers.get("Docker-Content-Digest", reference)
            tags = () if is_digest(reference) else (reference,)
            self._fire("PUSH_ARTIFACT", m.group(1), digest, tags, operator)
        return answer

    async def _delete_manifest(
        self, request: web.Request, repo: str, digest: str, operator: str
    ) -> web.StreamResponse:
        listed = await listed_tags(self, repo) or []  # type: ignore[arg-type]
        tags = tuple(t.name for t in listed if t.digest == digest)
        answer = await self.upstream.forward(request, "DELETE", request.path_qs, None)
        if answer.status == 202:
            self._fire("DELETE_ARTIFACT", repo, digest, tags, operator)
        return answer

    def _fire(
        self, event_type: str, repo: str, digest: str, tags: tuple[str, ...], operator: str
    ) -> None:
        project = self.project(repo.split("/")[0])
        if project is None:
            return
        event = ArtifactEvent(
            event_type, project.name, project.id, project.public, repo, digest, tags, operator
        )
        self.webhooks.fire(event)
