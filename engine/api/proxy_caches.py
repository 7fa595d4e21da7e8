"""Proxy-cache namespaces: ``/proxy-caches``, ``/proxy-caches/{id or name}``.

A proxy-cache namespace binds one repository path component of this registry to a registry
endpoint (``/registries``, any adapter type): ``NAMESPACE/<upstream repository>`` pulls through
from it (see docs/proxy-cache.md). ::

    POST   /proxy-caches  {"name": "hub", "registry": {"id": 3}, "ttl_seconds": 3600}
                                          201, Location (ttl_seconds optional: 3600)
    GET    /proxy-caches                  every namespace by name (paged)
    GET    /proxy-caches/{id or name}     one
    PUT    /proxy-caches/{id or name}     {"ttl_seconds": 600}: change the TTL
    DELETE /proxy-caches/{id or name}     what it cached stays until deleted

``name``: one repository path component (``[a-z0-9]`` runs joined by ``.``, ``_``, ``__`` or
``-``; at most 63 characters), not already a proxy cache, not holding pushed content (a tag,
or a manifest a client pushed, in ``NAME`` or ``NAME/…``). ``ttl_seconds``: 1 to 2592000 (30
days). Reads are open to every account; changes need an admin. Changes reach every worker's
registry within a few seconds (the namespaces are cached that long).
"""

from __future__ import annotations

from sqlalchemy import func, select

from engine.api.context import ApiContext
from engine.api.errors import ApiError, bad_request, not_found
from engine.api.paging import list_response, page_of
from engine.api.registries import endpoint_named, required_registry_id
from engine.api.wire import Body, read_body, rfc3339
from engine.proxy_cache.models import ProxyCacheNamespace
from engine.proxy_cache.store import (
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    ProxyCacheRecord,
    ProxyCacheStore,
    check_namespace,
)
from registry.http.asgi import Request, Response, json_response

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "MAX_PROXY_CACHES",
    "create",
    "delete",
    "get",
    "list_all",
    "update",
]

N = ProxyCacheNamespace.__table__  # type: ignore[attr-defined]
MAX_PROXY_CACHES = 256
DEFAULT_TTL_SECONDS = 3600.0


def _json(record: ProxyCacheRecord) -> dict[str, object]:
    data = record.to_json()
    data["creation_time"] = rfc3339(record.creation_time)
    data["update_time"] = rfc3339(record.update_time)
    return data


async def list_all(ctx: ApiContext, req: Request) -> Response:
    page = page_of(req)
    items = [_json(r) for r in await ProxyCacheStore(ctx.db).all()]
    return list_response(req, items[page.offset : page.offset + page.size], page, len(items))


async def _find(ctx: ApiContext, ref: str) -> ProxyCacheRecord:
    found = await ProxyCacheStore(ctx.db).get(ref[:80])
    if found is None:
        raise not_found(
            f"proxy cache {ref[:80]!r} does not exist (GET /api/v2.0/proxy-caches lists them)"
        )
    return found


async def get(ctx: ApiContext, req: Request) -> Response:
    return json_response(_json(await _find(ctx, req.params["name"])))


def _ttl(body: Body) -> float | None:
    return body.number("ttl_seconds", minimum=MIN_TTL_SECONDS, maximum=MAX_TTL_SECONDS)


async def create(ctx: ApiContext, req: Request) -> Response:
    body = await read_body(req, ctx.max_body_bytes)
    raw = (body.text("name", max_length=255) or "").strip()
    if not raw:
        raise bad_request("name is required: the namespace, one repository path component")
    try:
        name = check_namespace(raw)
    except ValueError as e:
        raise bad_request(f"name: {e}") from None
    registry_id = required_registry_id(body)
    ttl = _ttl(body) or DEFAULT_TTL_SECONDS
    async with ctx.db.write() as c:
        await endpoint_named(c, registry_id)
        if (await c.execute(select(N.c.id).where(N.c.name == name))).first() is not None:
            raise ApiError("CONFLICT", f"a proxy cache named {name!r} already exists")
        used = await ProxyCacheStore.in_use(c, name)
        if used is not None:
            raise ApiError(
                "CONFLICT",
                f"namespace {name!r} is in use: repository {used!r} holds pushed content; "
                "choose another namespace",
            )
        count = (await c.execute(select(func.count()).select_from(N))).scalar_one()
        if count >= MAX_PROXY_CACHES:
            raise bad_request(f"at most {MAX_PROXY_CACHES} proxy caches; remove one first")
        new_id = await ProxyCacheStore.create(c, name, registry_id, ttl)
    return Response(201, {"Location": f"{req.path.rstrip('/')}/{new_id}"})


async def update(ctx: ApiContext, req: Request) -> Response:
    record = await _find(ctx, req.params["name"])
    ttl = _ttl(await read_body(req, ctx.max_body_bytes))
    if ttl is None:
        raise bad_request("ttl_seconds is required (the one setting a proxy cache changes)")
    if not await ProxyCacheStore(ctx.db).set_ttl(record.name, ttl):
        raise not_found(f"proxy cache {record.name!r} does not exist")
    return Response(200)


async def delete(ctx: ApiContext, req: Request) -> Response:
    record = await _find(ctx, req.params["name"])
    if not await ProxyCacheStore(ctx.db).delete(record.name):
        raise not_found(f"proxy cache {record.name!r} does not exist")
    return Response(200)
