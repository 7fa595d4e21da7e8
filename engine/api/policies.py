"""Replication policies: ``/replication/policies`` and ``/replication/policies/{id}``.

Harbor's body, with these decisions (each one on purpose):

* ``src_registry`` / ``dest_registry``: ``null`` or ``{"id": 0}`` is this Seawall's registry
  (answered as id 0, name ``Local``). Both remote (remote → remote) is allowed: the engine streams
  through this node. Both local is refused.
* ``deletion`` and ``replicate_deletion`` are one setting: either true turns deletion on, and
  responses carry both. (Harbor reads only ``deletion``.)
* ``dest_namespace_replace_count`` omitted on create means -1 (flatten to the last component),
  as Harbor's API does (its UI sends 1).
* ``speed`` is kilobits per second (1 unit = 125 bytes/s) for the whole run: Harbor's server
  enforces kilobits per second *per worker* (its docs say kilobytes), so a policy migrated from
  Harbor is never faster here. ``speed`` ≤ 0 is unlimited. Our ``speed_bytes_per_second`` says it
  exactly and wins when both are given; responses carry both.
* PUT changes what it is given and keeps the rest (Harbor resets omitted fields to zero values,
  turning omitted ``enabled`` into false).

Seawall's extensions: ``filters[].syntax`` (``glob`` — Harbor's doublestar, the default —
``regex`` or ``semver``), ``max_deletions`` and ``max_deletion_fraction`` (the deletion guard),
and ``trigger.trigger_settings.timezone`` (IANA name, default UTC).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.api.context import ApiContext
from engine.api.errors import ApiError, bad_request, not_found
from engine.api.paging import fetch_page, list_response, page_of, query_terms, sort_order
from engine.api.policy_fields import (
    TRIGGERS,
    check_cron,
    check_namespace,
    check_timezone,
    filters_of,
)
from engine.api.registries import local_registry, registry_json
from engine.api.wire import MAX_INT32, Body, read_body, rfc3339
from engine.state.models import Execution, Policy, RegistryEndpoint, Replicated, Task
from engine.tasks import ACTIVE
from registry.http.asgi import Request, Response, json_response
from registry.meta.models import utcnow

__all__ = ["create", "delete", "get", "list_policies", "load", "policy_json", "update"]

P = Policy.__table__  # type: ignore[attr-defined]
R = RegistryEndpoint.__table__  # type: ignore[attr-defined]
X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
L = Replicated.__table__  # type: ignore[attr-defined]
BYTES_PER_SPEED_UNIT = 125  # one kilobit per second
SEARCHABLE = {"name": P.c.name, "enabled": P.c.enabled, "trigger": P.c.trigger_type}
SORTABLE = {
    "id": P.c.id,
    "name": P.c.name,
    "creation_time": P.c.creation_time,
    "update_time": P.c.update_time,
}
DEFAULTS: dict[str, Any] = {
    "description": "",
    "src_registry_id": None,
    "dest_registry_id": None,
    "dest_namespace": "",
    "dest_namespace_replace_count": -1,
    "filters_json": "[]",
    "trigger_type": "manual",
    "trigger_cron": "",
    "trigger_timezone": "UTC",
    "deletion": False,
    "override": True,
    "enabled": True,
    "speed_bytes_per_second": -1,
    "copy_by_chunk": False,
    "single_active_replication": False,
    "max_deletions": 100,
    "max_deletion_fraction": 0.25,
}


def policy_json(
    row: dict[str, Any], registries: dict[int, dict[str, Any]], req: Request
) -> dict[str, Any]:
    def side(registry_id: int | None) -> dict[str, Any]:
        if registry_id is None:
            return local_registry(req)
        if registry_id in registries:
            return registry_json(registries[registry_id])
        return {"id": registry_id}

    speed = int(row["speed_bytes_per_second"])
    settings: dict[str, Any] = {"cron": row["trigger_cron"], "timezone": row["trigger_timezone"]}
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "src_registry": side(row["src_registry_id"]),
        "dest_registry": side(row["dest_registry_id"]),
        "dest_namespace": row["dest_namespace"],
        "dest_namespace_replace_count": row["dest_namespace_replace_count"],
        "filters": json.loads(row["filters_json"] or "[]"),
        "trigger": {"type": row["trigger_type"], "trigger_settings": settings},
        "deletion": row["deletion"],
        "replicate_deletion": row["deletion"],
        "override": row["override"],
        "enabled": row["enabled"],
        "speed": max(0, -(-speed // BYTES_PER_SPEED_UNIT)) if speed > 0 else 0,
        "speed_bytes_per_second": speed if speed > 0 else -1,
        "copy_by_chunk": row["copy_by_chunk"],
        "single_active_replication": row["single_active_replication"],
        "max_deletions": row["max_deletions"],
        "max_deletion_fraction": row["max_deletion_fraction"],
        "creation_time": rfc3339(row["creation_time"]),
        "update_time": rfc3339(row["update_time"]),
    }


async def _registries_of(c: AsyncConnection, rows: list[dict[str, Any]]) -> dict[int, Any]:
    ids = {r[k] for r in rows for k in ("src_registry_id", "dest_registry_id")} - {None}
    if not ids:
        return {}
    found = (await c.execute(select(R).where(R.c.id.in_(ids)))).mappings().all()
    return {int(r["id"]): dict(r) for r in found}


async def load(c: AsyncConnection, policy_id: int) -> dict[str, Any]:
    row = (await c.execute(select(P).where(P.c.id == policy_id))).mappings().first()
    if row is None:
        raise not_found(f"replication policy {policy_id} does not exist")
    return dict(row)


async def list_policies(ctx: ApiContext, req: Request) -> Response:
    page = page_of(req)
    where = query_terms(req, SEARCHABLE)
    if legacy := req.q("name"):  # Harbor's deprecated ?name= (fuzzy)
        where.append(P.c.name.contains(legacy, autoescape=True))
    stmt = select(P).where(*where).order_by(*sort_order(req, SORTABLE, [P.c.id]))
    async with ctx.db.read() as c:
        rows, total = await fetch_page(c, stmt, page)
        registries = await _registries_of(c, rows)
    return list_response(req, [policy_json(r, registries, req) for r in rows], page, total)


async def get(ctx: ApiContext, req: Request) -> Response:
    async with ctx.db.read() as c:
        row = await load(c, int(req.params["id"]))
        registries = await _registries_of(c, [row])
    return json_response(policy_json(row, registries, req))


async def create(ctx: ApiContext, req: Request) -> Response:
    body = await read_body(req, ctx.max_body_bytes)
    async with ctx.db.write() as c:
        values = await _values(c, body, dict(DEFAULTS))
        await _check_unique(c, values["name"], None)
        now = utcnow()
        res = await c.execute(insert(P).values(**values, creation_time=now, update_time=now))
        new_id = int(res.inserted_primary_key[0])  # type: ignore[index]
    ctx.wake()  # the scheduler picks up a new cron at once
    return Response(201, {"Location": f"{req.path.rstrip('/')}/{new_id}"})


async def update(ctx: ApiContext, req: Request) -> Response:
    policy_id = int(req.params["id"])
    body = await read_body(req, ctx.max_body_bytes)
    async with ctx.db.write() as c:
        current = await load(c, policy_id)
        values = await _values(c, body, current)
        await _check_unique(c, values["name"], policy_id)
        values.pop("id", None)
        values.pop("creation_time", None)
        values["update_time"] = utcnow()
        await c.execute(sql_update(P).where(P.c.id == policy_id).values(**values))
    ctx.wake()  # the scheduler picks up a changed trigger at once
    return Response(200)


async def delete(ctx: ApiContext, req: Request) -> Response:
    """Refused (412) while an execution is active; otherwise the policy goes with its executions,
    their tasks and its ledger of what it replicated."""
    policy_id = int(req.params["id"])
    async with ctx.db.write() as c:
        await load(c, policy_id)
        active = (
            await c.execute(
                select(X.c.id).where(X.c.policy_id == policy_id, X.c.status.in_(ACTIVE)).limit(1)
            )
        ).scalar()
        if active is not None:
            raise ApiError(
                "PRECONDITION",
                f"policy {policy_id} has an active execution ({active}); stop it "
                f"(PUT /api/v2.0/replication/executions/{active}) and wait for it to end first",
            )
        runs = select(X.c.id).where(X.c.policy_id == policy_id).scalar_subquery()
        await c.execute(sql_delete(T).where(T.c.execution_id.in_(runs)))
        await c.execute(sql_delete(X).where(X.c.policy_id == policy_id))
        await c.execute(sql_delete(L).where(L.c.policy_id == policy_id))
        await c.execute(sql_delete(P).where(P.c.id == policy_id))
    ctx.wake()
    return Response(200)


# ---------------------------------------------------------------------------- body → row
async def _values(c: AsyncConnection, body: Body, current: dict[str, Any]) -> dict[str, Any]:
    """The row after applying ``body`` to ``current`` (the defaults, for a new policy)."""
    v = dict(current)
    name = body.text("name", max_length=255)
    if name is not None or "name" not in v:
        v["name"] = (name or "").strip()
        if not v["name"]:
            raise bad_request("name is required")
    if (description := body.text("description")) is not None:
        v["description"] = description
    for side in ("src_registry", "dest_registry"):
        if side in body.data:
            v[f"{side}_id"] = await _registry_ref(c, body, side)
    if v["src_registry_id"] is None and v["dest_registry_id"] is None:
        raise bad_request(
            "src_registry and dest_registry are both the local registry; "
            "give the id of a registry endpoint for at least one of them"
        )
    if (namespace := body.text("dest_namespace", max_length=255)) is not None:
        v["dest_namespace"] = check_namespace(namespace)
    count = body.integer("dest_namespace_replace_count", minimum=-1, maximum=MAX_INT32)
    if count is not None:
        v["dest_namespace_replace_count"] = count
    if (filters := body.items("filters")) is not None:
        v["filters_json"] = json.dumps(filters_of(filters))
    _trigger(body, v)
    deletion = [body.flag("deletion"), body.flag("replicate_deletion")]
    if any(d is not None for d in deletion):
        v["deletion"] = any(deletion)
    for flag in ("override", "enabled", "copy_by_chunk", "single_active_replication"):
        if (value := body.flag(flag)) is not None:
            v[flag] = value
    if v["single_active_replication"] and v["trigger_type"] == "event_based":
        raise bad_request("single_active_replication cannot be used with an event_based trigger")
    exact = body.integer("speed_bytes_per_second")
    speed = body.integer("speed")
    if exact is not None:
        v["speed_bytes_per_second"] = exact if exact > 0 else -1
    elif speed is not None:
        v["speed_bytes_per_second"] = speed * BYTES_PER_SPEED_UNIT if speed > 0 else -1
    if (most := body.integer("max_deletions", minimum=0, maximum=MAX_INT32)) is not None:
        v["max_deletions"] = most
    fraction = body.number("max_deletion_fraction", minimum=0.0, maximum=1.0)
    if fraction is not None:
        v["max_deletion_fraction"] = fraction
    return v


def _trigger(body: Body, v: dict[str, Any]) -> None:
    trigger = body.obj("trigger")
    if trigger is None:
        return
    kind = trigger.choice("type", TRIGGERS) or "manual"
    settings = trigger.obj("trigger_settings") or Body({}, "trigger.trigger_settings.")
    cron = (settings.text("cron", max_length=256) or "").strip()
    timezone = settings.text("timezone", max_length=64)
    if kind == "scheduled":
        if not cron:
            raise bad_request("a scheduled trigger needs trigger.trigger_settings.cron")
        check_cron(cron)
    v["trigger_type"] = kind
    v["trigger_cron"] = cron if kind == "scheduled" else ""
    if timezone is not None:
        v["trigger_timezone"] = check_timezone(timezone)


async def _registry_ref(c: AsyncConnection, body: Body, side: str) -> int | None:
    ref = body.obj(side)
    registry_id = ref.id("id", minimum=0) if ref is not None else None
    if not registry_id:
        return None  # null, {} or {"id": 0}: the local registry
    found = (await c.execute(select(R.c.id).where(R.c.id == registry_id))).first()
    if found is None:
        raise bad_request(
            f"{side}: registry {registry_id} does not exist "
            "(GET /api/v2.0/registries lists them; null or id 0 is the local registry)"
        )
    return registry_id


async def _check_unique(c: AsyncConnection, name: str, own_id: int | None) -> None:
    row = (await c.execute(select(P.c.id).where(P.c.name == name))).first()
    if row is not None and row[0] != own_id:
        raise ApiError("CONFLICT", f"a replication policy named {name!r} already exists")
