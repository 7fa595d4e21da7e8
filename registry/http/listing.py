"""``/v2/<name>/tags/list`` and ``/v2/_catalog``: lexical order, ``n``/``last`` pagination with
``Link: <…>; rel="next"``. A tag list asked for as :data:`SEAWALL_TAG_LIST` also carries each
tag's digest, media type, size and origin (the region that took the push and its time then),
and the tombstones of deleted tags in the page's range of names; a catalog asked for as
:data:`SEAWALL_CATALOG` carries each repository's tag list so (and takes ``prefix=``)."""

from __future__ import annotations

from urllib.parse import urlencode

from registry.http.asgi import Request, Response, json_response
from registry.http.context import RegistryContext
from registry.meta.content import TagRecord
from registry.oci.errors import RegistryError
from registry.oci.mediatypes import SEAWALL_CATALOG, SEAWALL_TAG_LIST
from registry.oci.numbers import NumberError, parse_count
from registry.oci.origin import Tombstone

__all__ = ["catalog", "tags_list"]

MAX_PAGE = 10_000
CATALOG_WITH_TAGS_PAGE = 100  # repositories per page of SEAWALL_CATALOG
VARY = {"Vary": "Accept"}  # the same URL answers two ways (a cache must keep them apart)


def _text_arg(req: Request, key: str) -> str | None:
    """``last`` or ``prefix``: a tag or repository name (or its start), so printable ASCII of at
    most 255 characters; anything else could never match and is refused."""
    raw = req.q(key) or None
    if raw is not None and not (len(raw) <= 255 and raw.isascii() and raw.isprintable()):
        raise RegistryError(
            "PAGINATION_NUMBER_INVALID",
            {key: raw[:50], "reason": f"{key} must be a tag or repository name"},
        )
    return raw


def _page_args(req: Request) -> tuple[int | None, str | None]:
    raw = req.q("n")
    last = _text_arg(req, "last")
    if raw is None or raw == "":
        return None, last
    try:
        n = min(parse_count(raw), MAX_PAGE)  # more than a page's worth: one full page
    except NumberError as e:
        raise RegistryError(
            "PAGINATION_NUMBER_INVALID", {"n": raw[:50], "reason": str(e)}
        ) from None
    return n, last


def _link(path: str, n: int | None, items: list[str], **more: str) -> dict[str, str]:
    if n is None or n == 0 or len(items) < n:
        return {}
    query = urlencode({"n": n, "last": items[-1], **{k: v for k, v in more.items() if v}})
    return {"Link": f'<{path}?{query}>; rel="next"'}


def _manifests(records: list[TagRecord]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for r in records:
        entry: dict[str, object] = {"digest": r.digest, "mediaType": r.media_type, "size": r.size}
        if r.origin is not None:
            entry["origin"] = r.origin.json()
        out[r.name] = entry
    return out


def _tombstones(found: dict[str, Tombstone]) -> dict[str, dict[str, str]]:
    return {name: found[name].json() for name in sorted(found)}


async def tags_list(ctx: RegistryContext, req: Request) -> Response:
    name = req.params["name"]
    n, last = _page_args(req)
    if SEAWALL_TAG_LIST in req.headers.get("accept", ""):
        return await _tag_records(ctx, req, name, n, last)
    proxy = ctx.proxy_cache
    if proxy is not None and await proxy.namespace_of(name) is not None:
        tags = [] if n == 0 else await proxy.tags.list_tags(name, n, last)  # what it cached
    else:
        tags = [] if n == 0 else await ctx.content.list_tags(name, n, last)
    if tags is None or (n == 0 and await ctx.content.repository_id(name) is None):
        raise RegistryError("NAME_UNKNOWN", {"name": name})
    headers = {**_link(req.path, n, tags), **VARY}
    return json_response({"name": name, "tags": tags}, headers=headers)


async def _tag_records(
    ctx: RegistryContext, req: Request, name: str, n: int | None, last: str | None
) -> Response:
    records = [] if n == 0 else await ctx.content.list_tag_records(name, n, last)
    if records is None or (n == 0 and await ctx.content.repository_id(name) is None):
        raise RegistryError("NAME_UNKNOWN", {"name": name})
    tags = [r.name for r in records]
    link = _link(req.path, n, tags)
    # the tombstones named in this page's range: after ``last``, up to its last tag (the
    # last page: to the end), so the pages together carry each exactly once
    upto = tags[-1] if link else None
    gone = {} if n == 0 else await ctx.content.tombstones(name, last, upto)
    headers = {"Content-Type": SEAWALL_TAG_LIST, **link, **VARY}
    body = {
        "name": name,
        "tags": tags,
        "manifests": _manifests(records),
        "tombstones": _tombstones(gone),
    }
    return json_response(body, headers=headers)


async def catalog(ctx: RegistryContext, req: Request) -> Response:
    n, last = _page_args(req)
    if SEAWALL_CATALOG in req.headers.get("accept", ""):
        return await _catalog_with_tags(ctx, req, n, last)
    repos = [] if n == 0 else await ctx.content.list_repositories(n, last)
    return json_response({"repositories": repos}, headers={**_link(req.path, n, repos), **VARY})


async def _catalog_with_tags(
    ctx: RegistryContext, req: Request, n: int | None, last: str | None
) -> Response:
    n = CATALOG_WITH_TAGS_PAGE if n is None else min(n, CATALOG_WITH_TAGS_PAGE)
    prefix = _text_arg(req, "prefix") or ""
    repos = [] if n == 0 else await ctx.content.list_repositories(n, last, prefix)
    records = await ctx.content.tag_records_of(repos)
    gone = await ctx.content.tombstones_of(repos)
    listings = {
        repo: {
            "tags": [r.name for r in records[repo]],
            "manifests": _manifests(records[repo]),
            "tombstones": _tombstones(gone[repo]),
        }
        for repo in repos
    }
    headers = {"Content-Type": SEAWALL_CATALOG, **_link(req.path, n, repos, prefix=prefix), **VARY}
    return json_response({"repositories": repos, "listings": listings}, headers=headers)
