"""The ACR fake's metadata API (``/acr/v1/``), answered from the upstream registry.

As published (``containerregistry`` data plane 2021-07-01): ``GET /acr/v1/_catalog``
(``{"repositories"}``, scope ``registry:catalog:*``), ``GET /acr/v1/{name}/_tags``
(``{"registry", "imageName", "tags": [{"name", "digest", "createdTime", "lastUpdateTime",
"signed", "changeableAttributes"}]}``), ``GET|DELETE /acr/v1/{name}/_tags/{tag}`` and
``GET /acr/v1/{name}/_manifests`` (``{"manifests": [{"digest", "imageSize", "mediaType",
"tags", ...}]}``), all with scope ``repository:{name}:metadata_read`` (a delete:
``repository:{name}:delete``). Lists are in lexical order, paged by ``n`` and ``last`` with a
``Link: <...>; rel="next"`` header; ``orderby`` is accepted and ignored (lexical order).

Simplifications: ``_manifests`` lists only tagged manifests (the upstream's OCI API cannot
enumerate untagged ones), ``imageSize`` is the manifest's own size, timestamps are "now".
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from aiohttp import web

if TYPE_CHECKING:
    from tests.support.fake_acr import FakeAcr

__all__ = ["TagInfo", "acr_error", "route"]

_TAGS = re.compile(r"^/acr/v1/(.+)/_tags(?:/([^/]+))?$")
_MANIFESTS = re.compile(r"^/acr/v1/(.+)/_manifests(?:/([^/]+))?$")
_NEXT = re.compile(r'<([^>]*)>\s*;\s*rel="?next"?')
SEAWALL_TAG_LIST = "application/vnd.seawall.tag-list.v1+json"
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
_ATTRIBUTES = {
    "deleteEnabled": True,
    "writeEnabled": True,
    "readEnabled": True,
    "listEnabled": True,
}


def acr_error(status: int, code: str, message: str, **headers: str) -> web.Response:
    """An answer with ACR's error body (``{"errors": [{"code", "message"}]}``)."""
    body = json.dumps({"errors": [{"code": code, "message": message}]})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


@dataclass(frozen=True)
class TagInfo:
    name: str
    digest: str
    media_type: str
    size: int


def route(fake: FakeAcr, request: web.Request) -> tuple[str, Any]:
    """``(counting key, handler)`` for an ``/acr/v1/...`` request."""
    path, method = request.path, request.method
    if path == "/acr/v1/_catalog":
        return f"{method} /acr/v1/_catalog", lambda r: catalog(fake, r)
    if m := _TAGS.match(path):
        name, tag = m.group(1), m.group(2)
        if tag is None:
            return f"{method} /acr/v1/{{name}}/_tags", lambda r: tags(fake, r, name)
        return f"{method} /acr/v1/{{name}}/_tags/{{tag}}", lambda r: one_tag(fake, r, name, tag)
    if m := _MANIFESTS.match(path):
        name = m.group(1)
        return f"{method} /acr/v1/{{name}}/_manifests", lambda r: manifests(fake, r, name)
    return f"{method} /acr/v1/other", lambda r: _not_found(r)


async def _not_found(request: web.Request) -> web.Response:
    return acr_error(404, "NOT_FOUND", f"no route {request.path}")


def _page_args(fake: FakeAcr, request: web.Request) -> tuple[int, str] | web.Response:
    raw = request.query.get("n", "")
    if raw and not raw.isdigit():
        return acr_error(400, "PAGINATION_NUMBER_INVALID", f"n={raw[:20]!r}")
    n = min(int(raw), fake.page_size) if raw else fake.page_size  # page_size: the most
    return max(n, 1), request.query.get("last", "")


def _link(path: str, last: str, n: int) -> dict[str, str]:
    query = urlencode({"last": last, "n": n, "orderby": ""})
    return {"Link": f'<{path}?{query}>; rel="next"'}


async def catalog(fake: FakeAcr, request: web.Request) -> web.Response:
    refused = fake.authorize(request, [("registry", "catalog", "*")], "registry:catalog:*")
    if refused is not None:
        return refused
    args = _page_args(fake, request)
    if isinstance(args, web.Response):
        return args
    n, last = args
    params: dict[str, Any] = {"n": n + 1} | ({"last": last} if last else {})  # one more: a next?
    status, doc, _ = await fake.upstream.json("/v2/_catalog", params, "application/json")
    if status != 200 or not isinstance(doc, dict):
        return acr_error(502, "UNKNOWN", f"upstream catalog answered {status}")
    found = [str(r) for r in doc.get("repositories") or []]
    repos = found[:n]
    extra = _link("/acr/v1/_catalog", repos[-1], n) if len(found) > n else {}
    return web.json_response({"repositories": repos}, headers=extra)


async def listed_tags(fake: FakeAcr, name: str) -> list[TagInfo] | None:
    """Every tag of ``name`` with its manifest, from the upstream (None: no repository)."""
    path: str | None = f"/v2/{name}/tags/list"
    params: dict[str, Any] = {"n": 1000}
    names: list[str] = []
    known: dict[str, dict[str, Any]] = {}
    while path is not None:
        status, doc, headers = await fake.upstream.json(
            path, params, f"{SEAWALL_TAG_LIST}, application/json"
        )
        if status == 404:
            return None
        if status != 200 or not isinstance(doc, dict):
            raise RuntimeError(f"upstream tag list of {name} answered {status}")
        names += [str(t) for t in doc.get("tags") or []]
        known.update(doc.get("manifests") or {})
        m = _NEXT.search(headers.get("Link", ""))
        path, params = (m.group(1).replace(fake.upstream.url, ""), {}) if m else (None, {})

    async def one(tag: str) -> TagInfo | None:
        if isinstance(ref := known.get(tag), dict):
            return TagInfo(tag, ref["digest"], ref.get("mediaType", ""), int(ref.get("size", 0)))
        got = await fake.upstream.head(f"/v2/{name}/manifests/{quote(tag)}", MANIFEST_ACCEPT)
        if got is None:
            return None
        media_type = got.get("Content-Type", "").split(";")[0]
        return TagInfo(tag, got["Docker-Content-Digest"], media_type, int(got["Content-Length"]))

    found = await asyncio.gather(*(one(t) for t in names))
    return sorted((t for t in found if t is not None), key=lambda t: t.name)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _tag_json(tag: TagInfo) -> dict[str, Any]:
    return {
        "name": tag.name,
        "digest": tag.digest,
        "createdTime": _now(),
        "lastUpdateTime": _now(),
        "signed": False,
        "changeableAttributes": dict(_ATTRIBUTES),
    }


async def tags(fake: FakeAcr, request: web.Request, name: str) -> web.Response:
    scope = f"repository:{name}:metadata_read"
    refused = fake.authorize(request, [("repository", name, "metadata_read")], scope)
    if refused is not None:
        return refused
    args = _page_args(fake, request)
    if isinstance(args, web.Response):
        return args
    n, last = args
    listed = await listed_tags(fake, name)
    if listed is None:
        return acr_error(404, "NAME_UNKNOWN", f"repository {name!r} is not found")
    digest = request.query.get("digest")
    rest = [t for t in listed if t.name > last and (not digest or t.digest == digest)]
    page = rest[:n]
    extra = _link(f"/acr/v1/{name}/_tags", page[-1].name, n) if len(rest) > n else {}
    body = {"registry": fake.service, "imageName": name, "tags": [_tag_json(t) for t in page]}
    return web.json_response(body, headers=extra)


async def one_tag(fake: FakeAcr, request: web.Request, name: str, tag: str) -> web.StreamResponse:
    if request.method == "DELETE":
        scope = f"repository:{name}:delete"
        refused = fake.authorize(request, [("repository", name, "delete")], scope)
        if refused is not None:
            return refused
        listed = {t.name for t in await listed_tags(fake, name) or []}
        if tag not in listed:
            return acr_error(404, "TAG_UNKNOWN", f"tag {tag!r} is not found in {name!r}")
        answer = await fake.upstream.forward(
            request, "DELETE", f"/v2/{name}/manifests/{quote(tag)}", None
        )
        if answer.status not in (200, 202, 204):
            return answer
        return web.Response(status=202)
    if request.method != "GET":
        return acr_error(405, "UNSUPPORTED", "GET or DELETE")
    scope = f"repository:{name}:metadata_read"
    refused = fake.authorize(request, [("repository", name, "metadata_read")], scope)
    if refused is not None:
        return refused
    found = next((t for t in await listed_tags(fake, name) or [] if t.name == tag), None)
    if found is None:
        return acr_error(404, "TAG_UNKNOWN", f"tag {tag!r} is not found in {name!r}")
    return web.json_response({"registry": fake.service, "imageName": name, "tag": _tag_json(found)})


async def manifests(fake: FakeAcr, request: web.Request, name: str) -> web.Response:
    scope = f"repository:{name}:metadata_read"
    refused = fake.authorize(request, [("repository", name, "metadata_read")], scope)
    if refused is not None:
        return refused
    args = _page_args(fake, request)
    if isinstance(args, web.Response):
        return args
    n, last = args
    listed = await listed_tags(fake, name)
    if listed is None:
        return acr_error(404, "NAME_UNKNOWN", f"repository {name!r} is not found")
    by_digest: dict[str, list[TagInfo]] = {}
    for t in listed:
        by_digest.setdefault(t.digest, []).append(t)
    rest = sorted(d for d in by_digest if d > last)
    page = rest[:n]
    items = [
        {
            "digest": d,
            "imageSize": by_digest[d][0].size,
            "createdTime": _now(),
            "lastUpdateTime": _now(),
            "mediaType": by_digest[d][0].media_type,
            "tags": [t.name for t in by_digest[d]],
            "changeableAttributes": dict(_ATTRIBUTES),
        }
        for d in page
    ]
    extra = _link(f"/acr/v1/{name}/_manifests", page[-1], n) if len(rest) > n else {}
    body = {"registry": fake.service, "imageName": name, "manifests": items}
    return web.json_response(body, headers=extra)
