"""The Quay fake's REST API (``/api/v1``), following Quay's published API reference:

    GET    /api/v1/user/                                 (user:read)  {username, organizations}
    GET    /api/v1/repository?namespace=NS[&next_page=T] (repo:read)  {repositories, next_page}
    GET    /api/v1/repository/NS/NAME                    (repo:read)  the repository
    POST   /api/v1/repository                            (repo:create) 201 {namespace, name, kind}
    GET    /api/v1/repository/NS/NAME/tag/?onlyActiveTags&limit&page   (repo:read)
                                                         {tags:[{name, manifest_digest, ...}],
                                                          page, has_additional}
    DELETE /api/v1/repository/NS/NAME/tag/TAG            (repo:write) 204

Requests carry an OAuth token (``Authorization: Bearer``); errors are Quay's ``ApiError``
(``{"detail", "error_message", "error_type", "title", "type", "status"}``). Tags and digests
are read from the real registry behind the fake (its tag list, then a ``HEAD`` per tag of the
page: the fake's cost, not the client's).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from registry.oci import mediatypes as mt
from tests.support.fake_quay_model import OAuthGrant

if TYPE_CHECKING:
    from tests.support.fake_quay import FakeQuay

__all__ = ["quay_error", "route"]

_REPO_NAME = re.compile(r"^[a-z0-9][.a-z0-9_-]{0,254}$")
_ACCEPT = ", ".join((mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST))
_TAGS = re.compile(r"^/api/v1/repository/([^/]+)/([^/]+)/tag/?$")
_TAG = re.compile(r"^/api/v1/repository/([^/]+)/([^/]+)/tag/([^/]+)$")
_REPO = re.compile(r"^/api/v1/repository/([^/]+)/([^/]+)$")


def quay_error(status: int, error_type: str, message: str, base_url: str = "") -> web.Response:
    """Quay's ``ApiError`` body."""
    body = {
        "detail": message,
        "error_message": message,
        "error_type": error_type,
        "title": error_type,
        "type": f"{base_url}/api/v1/error/{error_type}",
        "status": status,
    }
    return web.json_response(body, status=status)


def route(fake: FakeQuay, request: web.Request) -> tuple[str, Any]:
    """``(counting key, handler)`` for an ``/api/v1/...`` request."""
    path, method = request.path, request.method
    api = _Api(fake)
    if path == "/api/v1/user/":
        return f"{method} /api/v1/user/", api.user
    if path in ("/api/v1/repository", "/api/v1/repository/"):
        handler = api.create if method == "POST" else api.list_repositories
        return f"{method} /api/v1/repository", handler
    if _TAGS.match(path):
        return f"{method} /api/v1/repository/{{ns}}/{{repo}}/tag/", api.tags
    if _TAG.match(path):
        return f"{method} /api/v1/repository/{{ns}}/{{repo}}/tag/{{tag}}", api.delete_tag
    if _REPO.match(path):
        return f"{method} /api/v1/repository/{{ns}}/{{repo}}", api.repository
    return f"{method} /api/v1/other", api.not_found


class _Api:
    def __init__(self, fake: FakeQuay) -> None:
        self.fake = fake

    def error(self, status: int, error_type: str, message: str) -> web.Response:
        return quay_error(status, error_type, message, self.fake.url)

    def grant(self, request: web.Request, scope: str) -> OAuthGrant | web.Response:
        """The request's OAuth grant if it has ``scope``; else Quay's 401/403."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return self.error(401, "invalid_token", "Requires authentication")
        grant = self.fake.oauth_grant(header[7:].strip())
        if grant is None:
            return self.error(401, "invalid_token", "The access token provided is invalid")
        if scope not in grant.scopes:
            return self.error(403, "insufficient_scope", "Unauthorized")
        return grant

    async def not_found(self, request: web.Request) -> web.Response:
        await request.read()
        return self.error(404, "not_found", "Not Found")

    async def user(self, request: web.Request) -> web.Response:
        grant = self.grant(request, "user:read")
        if isinstance(grant, web.Response):
            return grant
        orgs = sorted(n for n in grant.namespaces if n != grant.user)
        return web.json_response(
            {
                "username": grant.user,
                "anonymous": False,
                "organizations": [{"name": n, "is_org_admin": False} for n in orgs],
            }
        )

    async def list_repositories(self, request: web.Request) -> web.Response:
        grant = self.grant(request, "repo:read")
        if isinstance(grant, web.Response):
            return grant
        namespace = request.query.get("namespace", "")
        if not namespace:
            return self.error(
                400,
                "invalid_request",
                "namespace, starred or public are required for this API call",
            )
        offset = 0
        token = request.query.get("next_page")
        if token:
            saved = self.fake.page_tokens.get(token)
            if saved is None or saved[0] != namespace:
                return self.error(400, "invalid_request", "Invalid next page token")
            offset = saved[1]
        visible = sorted(
            r
            for r in self.fake.repositories.values()
            if r.namespace == namespace and (namespace in grant.namespaces or r.public)
        )
        page = visible[offset : offset + self.fake.repo_page_size]
        body: dict[str, Any] = {"repositories": [r.describe() for r in page]}
        if offset + len(page) < len(visible):
            token = secrets.token_urlsafe(24)  # Quay's are encrypted page tokens: opaque
            self.fake.page_tokens[token] = (namespace, offset + len(page))
            body["next_page"] = token
        return web.json_response(body)

    async def repository(self, request: web.Request) -> web.Response:
        grant = self.grant(request, "repo:read")
        if isinstance(grant, web.Response):
            return grant
        m = _REPO.match(request.path)
        assert m is not None
        repo = self.fake.repositories.get(f"{m.group(1)}/{m.group(2)}")
        if repo is None or not (repo.namespace in grant.namespaces or repo.public):
            return self.error(404, "not_found", "Not Found")
        return web.json_response(repo.describe())

    async def create(self, request: web.Request) -> web.Response:
        grant = self.grant(request, "repo:create")
        if isinstance(grant, web.Response):
            return grant
        try:
            body = json.loads(await request.read())
        except ValueError:
            return self.error(400, "invalid_request", "Invalid JSON body")
        if not isinstance(body, dict):
            return self.error(400, "invalid_request", "Invalid JSON body")
        namespace, name = body.get("namespace"), body.get("repository")
        visibility = body.get("visibility")
        if not isinstance(name, str) or not _REPO_NAME.match(name):
            return self.error(400, "invalid_request", "Invalid repository name")
        if visibility not in ("public", "private"):
            return self.error(400, "invalid_request", f"'{visibility}' is not one of the enum")
        if body.get("repo_kind", "image") != "image":
            return self.error(400, "invalid_request", "Invalid repository kind")
        if not isinstance(namespace, str) or namespace not in grant.namespaces:
            return self.error(403, "insufficient_scope", "Unauthorized")
        if f"{namespace}/{name}" in self.fake.repositories:
            return self.error(400, "invalid_request", "Repository already exists")
        description = body.get("description")
        self.fake.add_repository(
            namespace, name, public=visibility == "public", description=str(description or "")
        )
        return web.json_response(
            {"namespace": namespace, "name": name, "kind": "image"}, status=201
        )

    async def tags(self, request: web.Request) -> web.Response:
        grant = self.grant(request, "repo:read")
        if isinstance(grant, web.Response):
            return grant
        m = _TAGS.match(request.path)
        assert m is not None
        name = f"{m.group(1)}/{m.group(2)}"
        repo = self.fake.repositories.get(name)
        if repo is None or not (repo.namespace in grant.namespaces or repo.public):
            return self.error(404, "not_found", "Not Found")
        try:
            page = max(1, int(request.query.get("page", "1")))
            limit = min(100, max(1, int(request.query.get("limit", "50"))))
        except ValueError:
            return self.error(400, "invalid_request", "page and limit must be integers")
        status, doc, _ = await self.fake.upstream.json(
            f"/v2/{name}/tags/list", {}, "application/json"
        )
        names = sorted(doc.get("tags") or []) if status == 200 and doc else []
        chosen = names[(page - 1) * limit : page * limit]
        tags = []
        for tag in chosen:
            headers = await self.fake.upstream.head(f"/v2/{name}/manifests/{tag}", _ACCEPT)
            if headers is None:
                continue
            headers = {k.lower(): v for k, v in headers.items()}
            media_type = headers.get("content-type", "")
            tags.append(
                {
                    "name": tag,
                    "reversion": False,
                    "start_ts": 0,
                    "manifest_digest": headers.get("docker-content-digest", ""),
                    "is_manifest_list": media_type in (mt.OCI_INDEX, mt.DOCKER_MANIFEST_LIST),
                    "size": None,
                    "last_modified": "Sat, 05 Dec 2026 00:00:00 -0000",
                }
            )
        has_more = len(names) > page * limit
        return web.json_response({"tags": tags, "page": page, "has_additional": has_more})

    async def delete_tag(self, request: web.Request) -> web.Response:
        if request.method != "DELETE":
            return await self.not_found(request)
        grant = self.grant(request, "repo:write")
        if isinstance(grant, web.Response):
            return grant
        m = _TAG.match(request.path)
        assert m is not None
        name, tag = f"{m.group(1)}/{m.group(2)}", m.group(3)
        repo = self.fake.repositories.get(name)
        if repo is None or repo.namespace not in grant.namespaces:
            return self.error(404, "not_found", "Not Found")
        status = await self.fake.upstream_delete(f"/v2/{name}/manifests/{tag}")
        if status == 404:
            return self.error(404, "not_found", "Not Found")
        if status not in (200, 202, 204):
            return self.error(500, "downstream_issue", f"storage answered {status}")
        return web.Response(status=204)
