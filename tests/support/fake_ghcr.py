"""A local fake of GitHub Container Registry and the GitHub Packages API, in front of a real
registry.

``FakeGhcr(upstream_url, ...)`` serves, on 127.0.0.1, what ghcr.io and api.github.com publish,
and proxies the OCI API to the real registry behind it (a Seawall or a CNCF distribution):

- ``GET /token?scope=repository:OWNER/NAME:pull[,push]&service=ghcr.io``: Basic
  ``username:PAT`` (a classic personal access token the test added) → ``{"token"}`` whose
  access is what the PAT's scopes allow (``read:packages``: pull; ``write:packages``: pull and
  push) on the owners it may use; no credentials → pull of public packages only; a wrong PAT
  → ``401``;
- ``/v2/``: ``401`` with ``Bearer realm="<url>/token",service="ghcr.io"`` without a valid
  token; ``403 DENIED`` when the token lacks the action; ``/v2/_catalog`` lists nothing;
  ``DELETE`` of a manifest or blob is ``405 UNSUPPORTED`` (ghcr.io deletes through the
  Packages API only); the referrers API is ``404`` (ghcr.io has none); the rest is proxied,
  and each manifest stored is recorded as a package version (see
  :mod:`tests.support.fake_ghcr_packages`);
- the Packages REST API at the same address (``api_url`` = :attr:`FakeGhcr.url`).

Every request is counted by route (``"GET /v2/{name}/manifests/{ref}"``, ``"DELETE
/{kind}/{owner}/packages/container/{package}/versions/{id}"``): :meth:`counts`, and by answer:
:meth:`answers`. :attr:`FakeGhcr.ignore_deletes` makes the API answer ``204`` to deletes
and change nothing (the failure a delete must detect).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support import fake_ghcr_packages as packages
from tests.support.fake_acr_upstream import Upstream
from tests.support.fake_front import V2, RoutedFake, v2_route
from tests.support.fake_ghcr_packages import PackageBook
from tests.support.server import free_port

__all__ = ["ADMIN_PAT", "ADMIN_USER", "ALL_SCOPES", "FakeGhcr", "Pat"]

ADMIN_USER = "octo-admin"
ADMIN_PAT = "ghp_" + "A" * 36  # the classic token shape: ghp_ and 36 characters
ALL_SCOPES = frozenset({"read:packages", "write:packages", "delete:packages"})
SERVICE = "ghcr.io"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_API_PREFIXES = ("/users/", "/orgs/")


@dataclass(frozen=True)
class Pat:
    """A classic personal access token: whose, its scopes, the owners it may use (None: all)."""

    login: str
    scopes: frozenset[str]
    owners: frozenset[str] | None = None

    def actions(self, owner: str) -> frozenset[str]:
        if self.owners is not None and owner not in self.owners:
            return frozenset()
        out = set()
        if self.scopes & {"read:packages", "write:packages"}:
            out.add("pull")
        if "write:packages" in self.scopes:
            out.add("push")
        return frozenset(out)


def oci_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"errors": [{"code": code, "message": message}]}, status=status, headers=headers
    )


class FakeGhcr(RoutedFake):
    """The fake; ``start()`` it, use :attr:`url` (registry and API), ``stop()`` it (or ``with``)."""

    def __init__(
        self,
        upstream_url: str,
        *,
        upstream_username: str | None = None,
        upstream_password: str | None = None,
        page_cap: int = 100,
    ) -> None:
        self.port = free_port()
        self.upstream = Upstream(upstream_url, self.url, upstream_username, upstream_password)
        self._upstream_auth = ""
        if upstream_username is not None:
            raw = f"{upstream_username}:{upstream_password or ''}".encode()
            self._upstream_auth = "Basic " + base64.b64encode(raw).decode()
        self.page_cap = page_cap  # the most items a page holds, whatever per_page asks
        self.book = PackageBook()
        self.pats: dict[str, Pat] = {ADMIN_PAT: Pat(ADMIN_USER, ALL_SCOPES)}
        self.ignore_deletes = False
        #: (Accept, X-GitHub-Api-Version) of each authenticated REST API request
        self.api_headers: list[tuple[str, str]] = []
        self._grants: dict[str, frozenset[tuple[str, str]]] = {}  # token -> (repo, action)
        self._init_counts()

    # -- lifecycle -------------------------------------------------------------------------

    async def _open(self) -> None:
        await self.upstream.open()

    async def _close(self) -> None:
        await self.upstream.close()

    def _configure(self, app: web.Application) -> None:
        super()._configure(app)
        app[packages.PAGE_CAP] = self.page_cap

    # -- what the test controls and reads --------------------------------------------------

    def add_owner(self, login: str, kind: str = "Organization") -> None:
        """A GitHub organization (or ``kind="User"``) that may own packages."""
        self.book.owners[login] = kind

    def add_pat(
        self, token: str, login: str, scopes: Iterable[str], owners: Iterable[str] | None = None
    ) -> None:
        self.pats[token] = Pat(
            login, frozenset(scopes), None if owners is None else frozenset(owners)
        )

    def set_visibility(self, repository: str, visibility: str) -> None:
        package = self.book.package(repository)
        assert package is not None, f"no package {repository}"
        package.visibility = visibility

    # -- dispatch --------------------------------------------------------------------------

    def _route(self, request: web.Request) -> tuple[str, Any]:
        path, method = request.path, request.method
        if path == "/token":
            return f"{method} /token", self._token
        if path.startswith(_API_PREFIXES):
            return packages.route(self, request)
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
        return oci_error(404, "NOT_FOUND", f"no route {request.path}")

    # -- the token service -----------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        if request.query.get("service") != SERVICE:
            return oci_error(400, "UNSUPPORTED", f"service must be {SERVICE}")
        pat = self._basic_login(request.headers.get("Authorization", ""))
        if pat is False:
            return oci_error(401, "UNAUTHORIZED", "authentication required")
        access: set[tuple[str, str]] = set()
        for scope in request.query.getall("scope", []):
            for one in scope.split():
                access |= self._granted(one, pat if isinstance(pat, Pat) else None)
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[token] = frozenset(access)
        return web.json_response({"token": token})

    def _basic_login(self, header: str) -> Pat | bool | None:
        """The PAT of a Basic header; None without one; False for a wrong one."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, token = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        pat = self.pats.get(token)
        return pat if user and pat is not None else False

    def _granted(self, scope: str, pat: Pat | None) -> set[tuple[str, str]]:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind != "repository" or not name:
            return set()
        owner = name.partition("/")[0]
        if owner not in self.book.owners:
            return set()
        if pat is not None:
            allowed = pat.actions(owner)
        else:
            package = self.book.package(name)
            allowed = (
                frozenset({"pull"}) if package and package.visibility == "public" else frozenset()
            )
        return {(name, a) for a in actions.split(",") if a in allowed}

    # -- /v2 -------------------------------------------------------------------------------

    def _challenge(self, scope: str = "") -> web.Response:
        params = f'Bearer realm="{self.url}/token",service="{SERVICE}"'
        if scope:
            params += f',scope="{scope}"'
        return oci_error(
            401, "UNAUTHORIZED", "authentication required", **{"WWW-Authenticate": params}
        )

    def _grant(self, request: web.Request) -> frozenset[tuple[str, str]] | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        with self._lock:
            return self._grants.get(header[7:].strip())

    async def _v2_base(self, request: web.Request) -> web.Response:
        if self._grant(request) is None:
            return self._challenge()
        return web.json_response({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})

    async def _catalog(self, request: web.Request) -> web.Response:
        if self._grant(request) is None:
            return self._challenge("registry:catalog:*")
        return web.json_response({"repositories": []})  # ghcr.io lists nothing here

    async def _v2(self, request: web.Request) -> web.StreamResponse:
        m = V2.match(request.path)
        assert m is not None
        name, kind = m.group(1), m.group(2)
        actions = ["pull"] if request.method in ("GET", "HEAD") else ["pull", "push"]
        if kind == "blobs/uploads":
            actions = ["pull", "push"]
        if request.method == "DELETE":
            actions = ["delete"]
        scope = f"repository:{name}:{','.join(actions)}"
        grant = self._grant(request)
        body = await request.read()
        if grant is None:
            return self._challenge(scope)
        if request.method == "DELETE":  # whatever the token: deletes go through the API
            return oci_error(405, "UNSUPPORTED", "The operation is unsupported.")
        if not all((name, a) in grant for a in actions):
            return oci_error(
                403,
                "DENIED",
                f"permission_denied: {'write' if 'push' in actions else 'read'}_package",
            )
        if kind == "referrers":
            return oci_error(404, "NOT_FOUND", "404 page not found")
        path_qs = request.path_qs
        source = request.query.get("from")
        if kind == "blobs/uploads" and source and (source, "pull") not in grant:
            path_qs = request.path  # no right to read the source: a plain upload, as registries do
        accept = "application/json" if kind == "tags" else None
        out = await self.upstream.forward(request, request.method, path_qs, body, accept=accept)
        if kind == "manifests" and request.method == "PUT" and out.status == 201:
            reference = (m.group(3) or "/")[1:]
            digest = out.headers.get("Docker-Content-Digest", "")
            if _DIGEST.match(digest):
                self.book.recorded(name, digest, None if _DIGEST.match(reference) else reference)
        return out

    async def delete_upstream(self, repository: str, digest: str) -> None:
        """Delete a manifest in the registry behind (what deleting a version does)."""
        assert self.upstream.http is not None
        headers = {"Authorization": self._upstream_auth} if self._upstream_auth else {}
        url = f"{self.upstream.url}/v2/{repository}/manifests/{digest}"
        async with self.upstream.http.delete(url, headers=headers) as up:
            if up.status not in (202, 404):
                raise web.HTTPInternalServerError(text=f"upstream delete: {up.status}")
