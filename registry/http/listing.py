"""``/v2/<name>/tags/list`` and ``/v2/_catalog``: lexical order, ``n``/``last`` pagination with
``Link: <…>; rel="next"``. A tag list asked for as :data:`SEAWALL_TAG_LIST` also carries each
tag's digest, media type and size."""

from __future__ import annotations

from urllib.parse import urlencode

from registry.http.asgi import Request, Response, json_response
from registry.http.context import RegistryContext
from registry.oci.errors import RegistryError
from registry.oci.mediatypes import SEAWALL_TAG_LIST

__all__ = ["catalog", "tags_list"]

MAX_PAGE = 10_000


def _page_args(req: Request) -> tuple[int | None, str | None]:
    raw = req.q("n")
    n: int | None = None
    if raw is not None and raw != "":
        if not raw.isdigit():
            raise RegistryError("PAGINATION_NUMBER_INVALID", {"n": raw[:50]})
        n = min(int(raw), MAX_PAGE)
    return n, req.q("last") or None


def _link(path: str, n: int | None, items: list[str]) -> dict[str, str]:
    if n is None or n == 0 or len(items) < n:
        return {}
    return {"Link": f'<{path}?{urlencode({"n": n, "last": items[-1]})}>; rel="next"'}


async def tags_list(ctx: RegistryContext, req: Request) -> Response:
    name = req.params["name"]
    n, last = _page_args(req)
    if SEAWALL_TAG_LIST in req.headers.get("accept", ""):
        return await _tag_records(ctx, req, name, n, last)
    tags = [] if n == 0 else await ctx.content.list_tags(name, n, last)
    if tags is None or (n == 0 and await ctx.content.repository_id(name) is None):
        raise RegistryError("NAME_UNKNOWN", {"name": name})
    return json_response({"name": name, "tags": tags}, headers=_link(req.path, n, tags))


async def _tag_records(
    ctx: RegistryContext, req: Request, name: str, n: int | None, last: str | None
) -> Response:
    records = [] if n == 0 else await ctx.content.list_tag_records(name, n, last)
    if records is None or (n == 0 and await ctx.content.repository_id(name) is None):
        raise RegistryError("NAME_UNKNOWN", {"name": name})
    tags = [r.name for r in records]
    manifests = {
        r.name: {"digest": r.digest, "mediaType": r.media_type, "size": r.size} for r in records
    }
    headers = {"Content-Type": SEAWALL_TAG_LIST, **_link(req.path, n, tags)}
    return json_response({"name": name, "tags": tags, "manifests": manifests}, headers=headers)


async def catalog(ctx: RegistryContext, req: Request) -> Response:
    n, last = _page_args(req)
    repos = [] if n == 0 else await ctx.content.list_repositories(n, last)
    return json_response({"repositories": repos}, headers=_link(req.path, n, repos))
