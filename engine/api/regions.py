"""Regions and failover checks: ``/regions``, ``/regions/{id or name}``, ``/dr/check``.

A region is a registry endpoint (``/registries``) declared a replica of this logical registry;
this Seawall is a region too (its name: setting ``dr.region_name``), listed first, with
``"self": true`` and id 0, and it cannot be added or deleted. ::

    POST /regions  {"name": "eu-west", "registry": {"id": 3},
                    "description": "...", "repositories": ["library/**"]}   201, Location
    GET  /regions                    this Seawall, then every region by name (paged)
    GET  /regions/{id or name}       one, with its latest check's summary (``status``)
    DELETE /regions/{id or name}
    POST /dr/check  {"regions": ["eu-west"]}   run the checks now (all without a body)
    GET  /dr/check                   the latest recorded check of every region

``repositories``: Harbor name globs protected in addition to what the push policies to the
region's endpoint replicate there (see :mod:`engine.regions.consistency`). Reads are open to
every account; an account that is not an admin sees, in check results, only the
``repository:tag`` entries of repositories it may pull.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from engine.api.access import Viewer, viewer_of
from engine.api.context import ApiContext
from engine.api.errors import ApiError, bad_request, not_found
from engine.api.paging import list_response, page_of
from engine.api.registries import endpoint_named, required_registry_id
from engine.api.wire import Body, read_body, rfc3339
from engine.filters import Filter, FilterError
from engine.regions.models import Region
from engine.regions.report import check_region_name
from engine.regions.store import LatestCheck, RegionRecord, RegionStore
from registry.http.asgi import Request, Response, json_response

__all__ = ["MAX_REGIONS", "check_now", "create", "delete", "get", "latest", "list_regions"]

G = Region.__table__  # type: ignore[attr-defined]
MAX_REGIONS = 64
MAX_PATTERNS = 32
DEFAULT_SELF_NAME = "local"


def _self_name(ctx: ApiContext) -> str:
    return ctx.regions.self_name if ctx.regions is not None else DEFAULT_SELF_NAME


def _status(latest: LatestCheck | None) -> dict[str, Any] | None:
    if latest is None:
        return None
    return {
        "healthy": latest.healthy,
        "consistent": latest.consistent,
        "lag_seconds": latest.lag_seconds,
        "checked_at": rfc3339(latest.checked_at),
    }


def region_json(record: RegionRecord, latest: LatestCheck | None) -> dict[str, Any]:
    endpoint = record.endpoint
    return {
        "id": record.id,
        "name": record.name,
        "self": False,
        "registry": endpoint.to_json() if endpoint else {"id": record.registry_id},
        "description": record.description,
        "repositories": list(record.repositories),
        "creation_time": rfc3339(record.creation_time),
        "update_time": rfc3339(record.update_time),
        "status": _status(latest),
    }


def self_json(ctx: ApiContext, req: Request, latest: LatestCheck | None) -> dict[str, Any]:
    return {
        "id": 0,
        "name": _self_name(ctx),
        "self": True,
        "registry": {"id": 0, "name": "Local", "type": "seawall", "url": req.base_url},
        "description": "this Seawall (setting dr.region_name)",
        "repositories": [],
        "creation_time": None,
        "update_time": None,
        "status": _status(latest),
    }


async def list_regions(ctx: ApiContext, req: Request) -> Response:
    page = page_of(req)
    store = RegionStore(ctx.db)
    records, latest = await store.all(), await store.latest()
    items = [self_json(ctx, req, latest.get(_self_name(ctx)))]
    items += [region_json(r, latest.get(r.name)) for r in records]
    chosen = items[page.offset : page.offset + page.size]
    return list_response(req, chosen, page, len(items))


async def _find(ctx: ApiContext, ref: str) -> RegionRecord | None:
    """The region named ``ref``, or with id ``ref`` (names are never all digits); None for
    this Seawall's own region. :raises ApiError: 404."""
    store = RegionStore(ctx.db)
    if ref == _self_name(ctx) or ref == "0":
        return None
    if ref.isascii() and ref.isdigit():
        found = next((r for r in await store.all() if str(r.id) == ref.lstrip("0")), None)
    else:
        found = await store.get(ref)
    if found is None:
        raise not_found(f"region {ref[:80]!r} does not exist (GET /api/v2.0/regions lists them)")
    return found


async def get(ctx: ApiContext, req: Request) -> Response:
    record = await _find(ctx, req.params["name"])
    name = record.name if record else _self_name(ctx)
    latest = (await RegionStore(ctx.db).latest([name])).get(name)
    if record is None:
        return json_response(self_json(ctx, req, latest))
    return json_response(region_json(record, latest))


async def create(ctx: ApiContext, req: Request) -> Response:
    body = await read_body(req, ctx.max_body_bytes)
    name = _name(ctx, body.text("name", max_length=255))
    registry_id = required_registry_id(body)
    if registry_id == 0:
        raise bad_request(
            f"registry 0 is this Seawall, already region {_self_name(ctx)!r} "
            "(setting dr.region_name); a region is another registry endpoint"
        )
    patterns = _patterns(body)
    description = body.text("description", max_length=1024) or ""
    store = RegionStore(ctx.db)
    async with ctx.db.write() as c:
        endpoint = await endpoint_named(c, registry_id)
        if (await c.execute(select(G.c.id).where(G.c.name == name))).first() is not None:
            raise ApiError("CONFLICT", f"a region named {name!r} already exists")
        taken = (await c.execute(select(G.c.name).where(G.c.registry_id == registry_id))).first()
        if taken is not None:
            raise ApiError(
                "CONFLICT",
                f"registry {endpoint!r} is already region {taken[0]!r}: one region per "
                "registry endpoint",
            )
        count = (await c.execute(select(func.count()).select_from(G))).scalar_one()
        if count >= MAX_REGIONS:
            raise bad_request(f"at most {MAX_REGIONS} regions; remove one first")
        new_id = await store.create(c, name, registry_id, description, patterns)
    return Response(201, {"Location": f"{req.path.rstrip('/')}/{new_id}"})


async def delete(ctx: ApiContext, req: Request) -> Response:
    record = await _find(ctx, req.params["name"])
    if record is None:
        raise ApiError(
            "PRECONDITION",
            f"{_self_name(ctx)!r} is this Seawall's own region; it cannot be removed",
        )
    if not await RegionStore(ctx.db).delete(record.name):
        raise not_found(f"region {record.name!r} does not exist")
    return Response(200)


async def check_now(ctx: ApiContext, req: Request) -> Response:
    """Run the checks now and answer with the report (whatever it finds: 200)."""
    body = await read_body(req, ctx.max_body_bytes)
    names = _names(body)
    if ctx.regions is None:
        raise ApiError(
            "PRECONDITION",
            "this server does not run failover checks (its replication engine is off); "
            "ask a node with engine_enabled = true",
        )
    try:
        report = await ctx.regions.run(names)
    except LookupError as e:
        raise bad_request(f"regions: {e} (GET /api/v2.0/regions lists them)") from None
    return json_response(_visible(report.to_json(), viewer_of(req)))


async def latest(ctx: ApiContext, req: Request) -> Response:
    """The latest recorded check of each region (this Seawall first), as ``POST`` answers."""
    store = RegionStore(ctx.db)
    records, found = await store.all(), await store.latest()
    order = [_self_name(ctx), *(r.name for r in records)]
    regions = [found[n].report for n in order if n in found]
    data = {
        "regions": regions,
        "ok": bool(regions) and all(r.get("healthy") and r.get("consistent") for r in regions),
        "checked_at": max((r.get("checked_at") or "" for r in regions), default=None),
        "unchecked": [n for n in order if n not in found],
    }
    return json_response(_visible(data, viewer_of(req)))


# ---------------------------------------------------------------------------- validation
def _name(ctx: ApiContext, raw: str | None) -> str:
    name = (raw or "").strip()
    if not name:
        raise bad_request("name is required")
    try:
        check_region_name(name)
    except ValueError as e:
        raise bad_request(str(e)) from None
    if name.isdigit():
        raise bad_request(f"region name {name!r} must not be all digits (ids are)")
    if name == _self_name(ctx):
        raise ApiError(
            "CONFLICT", f"{name!r} is this Seawall's own region name (setting dr.region_name)"
        )
    return name


def _patterns(body: Body) -> list[str]:
    raw = body.items("repositories") or []
    if len(raw) > MAX_PATTERNS:
        raise bad_request(f"repositories: at most {MAX_PATTERNS} patterns")
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not item.strip() or len(item) > 255:
            raise bad_request("repositories: each is a repository name glob of 1 to 255 characters")
        try:
            Filter("name", item.strip())
        except FilterError as e:
            raise bad_request(f"repositories: {item[:80]!r}: {e}") from None
        if item.strip() not in out:
            out.append(item.strip())
    return out


def _names(body: Body) -> list[str] | None:
    raw = body.items("regions")
    if raw is None:
        return None
    if not raw or len(raw) > MAX_REGIONS + 1:
        raise bad_request(f"regions: name 1 to {MAX_REGIONS + 1} regions, or leave it out for all")
    if not all(isinstance(n, str) and 0 < len(n) <= 63 for n in raw):
        raise bad_request("regions: a list of region names")
    return list(dict.fromkeys(raw))


def _visible(data: dict[str, Any], viewer: Viewer | None) -> dict[str, Any]:
    """``data`` with only the entries of repositories ``viewer`` may pull (admins: all)."""
    if viewer is None or viewer.admin:
        return data
    regions = []
    for region in data.get("regions") or []:
        region = dict(region)
        counts = dict(region.get("consistency") or {})
        for key in ("missing", "differs", "extra"):
            region[key] = _pullable(region.get(key) or [], viewer)
            counts[f"{key}_count"] = len(region[key])  # whole counts would tell of the rest
        region["consistency"] = counts
        regions.append(region)
    return {**data, "regions": regions}


def _pullable(entries: Sequence[str], viewer: Viewer) -> list[str]:
    return [e for e in entries if viewer.can_pull(e.rsplit(":", 1)[0])]
