"""The Docker Hub fake's Hub API routes (``hub.docker.com``), as Docker publishes them:

    POST   /v2/auth/token                            {"identifier","secret"} -> {"access_token"}
    POST   /v2/users/login                           {"username","password"} -> {"token": JWT}
                                                      (deprecated; the only one if
                                                      ``hub.auth_token_route`` is False)
    GET    /v2/repositories/{namespace}/              ?page_size=&page= -> {count,next,previous,
                                                      results: [{name, namespace, ...}]}
    GET    /v2/repositories/{namespace}/{repository}/tags/   -> {count,next,previous,
                                                      results: [{name, digest, media_type, ...}]}
    DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/  -> 204 (owner's JWT)

The JWT is sent as ``Authorization: Bearer`` (``JWT`` is accepted too, as Hub does); listings
are public here (every repository of the fake is public). Errors are Hub's ``{"detail"}`` /
``{"message", "errinfo"}`` bodies. What the listings say comes from the real registry behind
the fake (its catalog, tag list and a ``HEAD`` per tag).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.fake_docker_hub import FakeDockerHub

__all__ = ["MAX_PAGE_SIZE", "hub_route"]

MAX_PAGE_SIZE = 100
_REPOS = re.compile(r"^/v2/repositories/([^/]+)/?$")
_TAGS = re.compile(r"^/v2/repositories/([^/]+)/([^/]+)/tags/?$")
_TAG = re.compile(r"^/v2/repositories/([^/]+)/([^/]+)/tags/([^/]+)/?$")
_ACCEPT = (
    "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json"
)
Handler = Callable[[web.Request], Any]


def _detail(status: int, detail: str) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


def _not_found() -> web.Response:
    return web.json_response({"message": "object not found", "errinfo": {}}, status=404)


def hub_route(hub: FakeDockerHub, request: web.Request) -> tuple[str, Handler] | None:
    """``(route for the counts, handler)`` of a Hub API request, or None if it is not one."""
    path, method = request.path, request.method
    if path in ("/v2/users/login", "/v2/users/login/"):
        return f"{method} /v2/users/login", lambda r: _login(hub, r, "username", "password")
    if path == "/v2/auth/token":
        return f"{method} /v2/auth/token", lambda r: _login(hub, r, "identifier", "secret")
    if m := _TAG.match(path):
        ns, repo, tag = m.groups()
        return (
            f"{method} /v2/repositories/{{namespace}}/{{repository}}/tags/{{tag}}/",
            lambda r: _delete_tag(hub, r, ns, repo, tag),
        )
    if m := _TAGS.match(path):
        ns, repo = m.groups()
        return (
            f"{method} /v2/repositories/{{namespace}}/{{repository}}/tags/",
            lambda r: _tags(hub, r, ns, repo),
        )
    if m := _REPOS.match(path):
        ns = m.group(1)
        return f"{method} /v2/repositories/{{namespace}}/", lambda r: _repositories(hub, r, ns)
    return None


async def _login(
    hub: FakeDockerHub, request: web.Request, user_field: str, secret_field: str
) -> web.Response:
    if user_field == "identifier" and not hub.auth_token_route:
        await request.read()
        return _not_found()
    if request.method != "POST":
        return _detail(405, f'Method "{request.method}" not allowed.')
    try:
        doc = json.loads(await request.read())
        username, password = str(doc[user_field]), str(doc[secret_field])
    except (ValueError, KeyError, TypeError):
        return _detail(400, f"{user_field} and {secret_field} are required")
    token = hub.hub_login(username, password)
    if token is None:
        return _detail(401, "Incorrect authentication credentials")
    return web.json_response({"access_token" if user_field == "identifier" else "token": token})


def _caller(hub: FakeDockerHub, request: web.Request) -> str | web.Response | None:
    """The JWT's user, None for an anonymous caller, or the 401 for a bad token."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return None
    if scheme.lower() not in ("bearer", "jwt") or not token:
        return _detail(401, "Authentication credentials were not provided.")
    user = hub.hub_user(token.strip())
    if user is None:
        return _detail(401, "Given token not valid for any token type")
    return user


def _page(request: web.Request) -> tuple[int, int] | web.Response:
    try:
        page = int(request.query.get("page", "1"))
        size = int(request.query.get("page_size", "10"))
    except ValueError:
        return _detail(400, "page and page_size must be integers")
    if page < 1 or size < 1:
        return _detail(404, "Invalid page.")
    return page, min(size, MAX_PAGE_SIZE)


def _paged(
    hub: FakeDockerHub, request: web.Request, items: list[dict[str, Any]], page: int, size: int
) -> web.Response:
    start = (page - 1) * size
    if start >= len(items) and page > 1:
        return _detail(404, "Invalid page.")

    def link(n: int) -> str | None:
        if n < 1 or (n - 1) * size >= len(items):
            return None
        return f"{hub.url}{request.path}?{urlencode({'page': n, 'page_size': size})}"

    body = {
        "count": len(items),
        "next": link(page + 1),
        "previous": link(page - 1) if page > 1 else None,
        "results": items[start : start + size],
    }
    return web.json_response(body)


async def _repositories(hub: FakeDockerHub, request: web.Request, ns: str) -> web.Response:
    if request.method != "GET":
        return _detail(405, f'Method "{request.method}" not allowed.')
    caller = _caller(hub, request)
    if isinstance(caller, web.Response):
        return caller
    paging = _page(request)
    if isinstance(paging, web.Response):
        return paging
    names = [n for n in await hub.upstream_repositories() if n.startswith(ns + "/")]
    if not names and not hub.owns_namespace(ns):
        return _not_found()
    items = [
        {
            "name": n.split("/", 1)[1],
            "namespace": ns,
            "repository_type": "image",
            "status": 1,
            "is_private": False,
            "star_count": 0,
            "pull_count": 0,
            "last_updated": None,
            "content_types": ["image"],
        }
        for n in sorted(names)
    ]
    return _paged(hub, request, items, *paging)


async def _tags(hub: FakeDockerHub, request: web.Request, ns: str, repo: str) -> web.Response:
    if request.method != "GET":
        return _detail(405, f'Method "{request.method}" not allowed.')
    caller = _caller(hub, request)
    if isinstance(caller, web.Response):
        return caller
    paging = _page(request)
    if isinstance(paging, web.Response):
        return paging
    status, doc, _ = await hub.upstream.json(
        f"/v2/{ns}/{repo}/tags/list", {"n": 10000}, "application/json"
    )
    if status != 200 or not isinstance(doc, dict):
        return _not_found()
    items = []
    for tag in sorted(doc.get("tags") or []):
        found = await hub.upstream.head(f"/v2/{ns}/{repo}/manifests/{tag}", _ACCEPT) or {}
        head = {k.lower(): v for k, v in found.items()}
        items.append(
            {
                "name": tag,
                "digest": head.get("docker-content-digest", ""),
                "media_type": (head.get("content-type") or "").split(";")[0],
                "content_type": "image",
                "full_size": 0,
                "images": [],
                "tag_status": "active",
            }
        )
    return _paged(hub, request, items, *paging)


async def _delete_tag(
    hub: FakeDockerHub, request: web.Request, ns: str, repo: str, tag: str
) -> web.Response:
    if request.method != "DELETE":
        return _detail(405, f'Method "{request.method}" not allowed.')
    caller = _caller(hub, request)
    if isinstance(caller, web.Response):
        return caller
    if caller is None:
        return _detail(401, "Authentication credentials were not provided.")
    if not hub.may_write(caller, ns):
        return _detail(403, "You do not have permission to perform this action.")
    if await hub.upstream.head(f"/v2/{ns}/{repo}/manifests/{tag}", _ACCEPT) is None:
        return _not_found()
    await hub.upstream_delete(f"/v2/{ns}/{repo}/manifests/{tag}")
    return web.Response(status=204)
