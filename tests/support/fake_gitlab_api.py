"""The GitLab fake's REST API (``/api/v4``), as GitLab publishes it for the container registry.

- ``GET /personal_access_tokens/self`` — the token's record;
- ``GET /projects/:id`` — ``:id`` a number or the URL-encoded full path;
- ``GET /groups/:id/registry/repositories`` (subgroups included) and
  ``GET /projects/:id/registry/repositories`` — ``[{id, name, path, project_id, location,
  created_at, cleanup_policy_started_at, status}]``;
- ``GET /projects/:id/registry/repositories/:repository_id/tags`` — ``[{name, path,
  location}]``; ``GET .../tags/:tag_name`` — ``{name, path, location, revision,
  short_revision, digest, created_at, total_size}``;
- ``DELETE .../tags/:tag_name`` — deletes the tag in the registry behind: as GitLab does for a
  registry without tag deletion, a throwaway manifest is put under the tag and deleted by digest.

Listings are paged (``page``, ``per_page`` ≤ 100, default 20) with ``X-Page``, ``X-Per-Page``,
``X-Next-Page`` (empty on the last page), ``X-Prev-Page``, ``X-Total`` and ``X-Total-Pages``.
The token comes in ``PRIVATE-TOKEN`` or ``Authorization: Bearer``; reads need ``api`` or
``read_api``, deletes ``api``; deploy tokens are refused. Errors are GitLab's
``{"message": "404 Project Not Found"}`` or OAuth's ``{"error", "error_description"}``.
Repositories are what the registry behind lists, each owned by its project.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from tests.support.fake_gitlab_auth import TokenRecord

if TYPE_CHECKING:
    from tests.support.fake_gitlab import FakeGitLab

__all__ = ["dummy_manifest", "gitlab_error", "route"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ID = r"([^/]+)"
_ROUTES: list[tuple[str, str, re.Pattern[str]]] = [
    ("GET", "/personal_access_tokens/self", re.compile(r"^/personal_access_tokens/self$")),
    ("GET", "/projects/:id", re.compile(rf"^/projects/{_ID}$")),
    (
        "GET",
        "/groups/:id/registry/repositories",
        re.compile(rf"^/groups/{_ID}/registry/repositories$"),
    ),
    (
        "GET",
        "/projects/:id/registry/repositories",
        re.compile(rf"^/projects/{_ID}/registry/repositories$"),
    ),
    (
        "GET",
        "/projects/:id/registry/repositories/:repository_id/tags",
        re.compile(rf"^/projects/{_ID}/registry/repositories/(\d+)/tags$"),
    ),
    (
        "GET",
        "/projects/:id/registry/repositories/:repository_id/tags/:tag_name",
        re.compile(rf"^/projects/{_ID}/registry/repositories/(\d+)/tags/{_ID}$"),
    ),
    (
        "DELETE",
        "/projects/:id/registry/repositories/:repository_id/tags/:tag_name",
        re.compile(rf"^/projects/{_ID}/registry/repositories/(\d+)/tags/{_ID}$"),
    ),
]
_MANIFESTS = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def gitlab_error(status: int, message: str, **headers: str) -> web.Response:
    """GitLab's error body: ``{"message": "404 Project Not Found"}``."""
    body = json.dumps({"message": message})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


def _oauth_error(status: int, error: str, description: str, **extra: str) -> web.Response:
    body = json.dumps({"error": error, "error_description": description, **extra})
    return web.Response(status=status, text=body, content_type="application/json")


def route(fake: FakeGitLab, request: web.Request) -> tuple[str, Handler]:
    """``(counting key, handler)`` for an ``/api/v4/...`` request (raw, encoded path)."""
    raw = request.raw_path.split("?", 1)[0][len("/api/v4") :]
    for method, template, pattern in _ROUTES:
        m = pattern.match(raw)
        if m is not None and method == request.method:
            args = [unquote(g) for g in m.groups()]
            key = f"{method} /api/v4{template}"

            async def handler(r: web.Request, t: str = template, a: list[str] = args) -> Any:
                return await Api(fake, r).dispatch(t, a)

            return key, handler

    async def missing(r: web.Request) -> web.Response:
        return gitlab_error(404, "404 Not Found")

    return f"{request.method} /api/v4 other", missing


class Api:
    """One API request: who asks, then the route's answer."""

    def __init__(self, fake: FakeGitLab, request: web.Request) -> None:
        self.fake = fake
        self.request = request

    async def dispatch(self, template: str, args: list[str]) -> web.StreamResponse:
        token, refused = self._who()
        if refused is not None:
            return refused
        if template == "/personal_access_tokens/self":
            return self._token_self(token)
        if token is None:
            return gitlab_error(404, "404 Project Not Found")  # every project is private
        needs_write = self.request.method == "DELETE"
        if not (token.scopes & ({"api"} if needs_write else {"api", "read_api"})):
            return _oauth_error(
                403,
                "insufficient_scope",
                "The request requires higher privileges than provided by the access token.",
                scope="api" if needs_write else "api read_api",
            )
        if template == "/projects/:id":
            return self._project(args[0])
        if template == "/groups/:id/registry/repositories":
            return await self._repositories(group=args[0])
        if template == "/projects/:id/registry/repositories":
            return await self._repositories(project=args[0])
        if template.endswith("/tags"):
            return await self._tags(args[0], int(args[1]))
        if self.request.method == "DELETE":
            return await self._delete_tag(args[0], int(args[1]), args[2])
        return await self._tag(args[0], int(args[1]), args[2])

    def _who(self) -> tuple[TokenRecord | None, web.Response | None]:
        headers = self.request.headers
        secret = headers.get("PRIVATE-TOKEN", "")
        auth = headers.get("Authorization", "")
        if not secret and auth.lower().startswith("bearer "):
            secret = auth[7:].strip()
        if not secret:
            return None, None
        record, why = self.fake.jwt.lookup(secret)
        if why == "expired":
            return None, _oauth_error(401, "invalid_token", "Token has expired.")
        if why == "revoked":
            return None, _oauth_error(401, "invalid_token", "Token was revoked.")
        if record is None or record.deploy_username:
            return None, gitlab_error(401, "401 Unauthorized")
        return record, None

    def _token_self(self, token: TokenRecord | None) -> web.Response:
        if token is None:
            return gitlab_error(401, "401 Unauthorized")
        return web.json_response(
            {
                "id": token.id,
                "name": token.name,
                "revoked": token.revoked,
                "created_at": token.created_at,
                "scopes": sorted(token.scopes),
                "user_id": 1,
                "active": not token.revoked,
                "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            }
        )

    def _project(self, ident: str) -> web.Response:
        path = self.fake.project_path(ident)
        if path is None:
            return gitlab_error(404, "404 Project Not Found")
        pid = self.fake.projects[path]
        namespace, _, name = path.rpartition("/")
        return web.json_response(
            {
                "id": pid,
                "name": name,
                "path": name,
                "path_with_namespace": path,
                "namespace": {"full_path": namespace, "kind": "group"},
                "container_registry_access_level": "enabled",
            }
        )

    async def _repositories(self, *, group: str = "", project: str = "") -> web.Response:
        if project:
            owner = self.fake.project_path(project)
            if owner is None:
                return gitlab_error(404, "404 Project Not Found")
            keep: Callable[[str], bool] = lambda p: p == owner  # noqa: E731
        else:
            wanted = group.lower()
            if wanted not in self.fake.groups:
                return gitlab_error(404, "404 Group Not Found")
            keep = lambda p: p.startswith(wanted + "/")  # noqa: E731
        items = []
        for path in await self.fake.registry_paths():
            owner_path = self.fake.owner_of(path)
            if owner_path is None or not keep(owner_path):
                continue
            items.append(
                {
                    "id": self.fake.repository_id(path),
                    "name": path[len(owner_path) :].lstrip("/"),
                    "path": path,
                    "project_id": self.fake.projects[owner_path],
                    "location": f"{self.fake.registry_host}/{path}",
                    "created_at": "2026-01-01T00:00:00.000Z",
                    "cleanup_policy_started_at": None,
                    "status": None,
                }
            )
        return self._paged(items)

    def _repository(self, ident: str, rid: int) -> tuple[str, web.Response | None]:
        owner = self.fake.project_path(ident)
        if owner is None:
            return "", gitlab_error(404, "404 Project Not Found")
        path = self.fake.repository_path(rid)
        if path is None or self.fake.owner_of(path) != owner:
            return "", gitlab_error(404, "404 Repository Not Found")
        return path, None

    async def _tags(self, ident: str, rid: int) -> web.Response:
        path, refused = self._repository(ident, rid)
        if refused is not None:
            return refused
        status, doc, _ = await self.fake.upstream.json(f"/v2/{path}/tags/list", {}, "*/*")
        names = sorted((doc or {}).get("tags") or []) if status == 200 else []
        host = self.fake.registry_host
        items = [
            {"name": t, "path": f"{path}:{t}", "location": f"{host}/{path}:{t}"} for t in names
        ]
        return self._paged(items)

    async def _tag(self, ident: str, rid: int, tag: str) -> web.Response:
        path, refused = self._repository(ident, rid)
        if refused is not None:
            return refused
        status, doc, headers = await self.fake.upstream.json(
            f"/v2/{path}/manifests/{tag}", {}, _MANIFESTS
        )
        if status != 200 or not isinstance(doc, dict):
            return gitlab_error(404, "404 Tag Not Found")
        config = (doc.get("config") or {}).get("digest", "")
        revision = config.partition(":")[2]
        sizes = [d.get("size", 0) for d in [doc.get("config") or {}, *(doc.get("layers") or [])]]
        host = self.fake.registry_host
        return web.json_response(
            {
                "name": tag,
                "path": f"{path}:{tag}",
                "location": f"{host}/{path}:{tag}",
                "revision": revision,
                "short_revision": revision[:9],
                "digest": headers.get("Docker-Content-Digest"),
                "created_at": "2026-01-01T00:00:00.000+00:00",
                "total_size": sum(s for s in sizes if isinstance(s, int)),
            }
        )

    async def _delete_tag(self, ident: str, rid: int, tag: str) -> web.Response:
        path, refused = self._repository(ident, rid)
        if refused is not None:
            return refused
        if await self.fake.upstream.head(f"/v2/{path}/manifests/{tag}", _MANIFESTS) is None:
            return gitlab_error(404, "404 Tag Not Found")
        await self.fake.delete_tag_upstream(path, tag)
        return web.Response(status=200)

    def _paged(self, items: list[dict[str, Any]]) -> web.Response:
        query = self.request.query
        per_page = min(max(_int(query.get("per_page"), 20), 1), self.fake.max_per_page)
        page = max(_int(query.get("page"), 1), 1)
        pages = max(math.ceil(len(items) / per_page), 1)
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(pages),
            "X-Next-Page": str(page + 1) if page < pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        return web.json_response(chunk, headers=headers)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


def dummy_manifest() -> tuple[bytes, bytes]:
    """A throwaway config blob and an image manifest naming it (GitLab's way to delete a tag
    on a registry that deletes manifests by digest only)."""
    config = json.dumps({"deleted-tag": secrets.token_hex(16)}).encode()  # one per deletion
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": digest,
        },
        "layers": [],
    }
    return config, json.dumps(manifest).encode()
