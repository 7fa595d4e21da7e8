"""Outgoing notifications: a policy's webhooks and their delivery log.

* ``GET|POST /replication/policies/{id}/webhooks`` — list (paged) / add → 201 + ``Location``.
* ``GET|PUT|DELETE /replication/policies/{id}/webhooks/{webhook_id}`` — PUT changes only the
  fields it carries; DELETE removes the webhook and its delivery log.
* ``POST /replication/policies/{id}/webhooks/{webhook_id}/test`` — queue a ``TEST`` event for
  this webhook (sent even when it is disabled) → 201 + ``Location`` of the delivery.
* ``GET /replication/policies/{id}/webhooks/{webhook_id}/deliveries`` (and ``…/{delivery_id}``)
  and ``GET /replication/policies/{id}/deliveries`` (all webhooks; ``?webhook_id=``) — the
  delivery log, newest first, paged; ``status``, ``event_type``, ``execution_id`` filter it.

A webhook's body::

    {"name": "ci", "address": "https://hooks.example.com/seawall", "format": "default",
     "auth_header": "Bearer s3cret", "event_types": ["REPLICATION_FINISHED"],
     "enabled": true, "skip_cert_verify": false, "description": ""}

``address`` (http or https) and ``name`` (unique within the policy) are required; ``format``
is ``default`` (Harbor's JSON) or ``cloudevents`` (Harbor's spellings ``Default`` and
``CloudEvents`` are accepted); ``event_types`` defaults to all of
:data:`~engine.notify.models.EVENT_TYPES` (Harbor's ``REPLICATION`` means all of them too).
``auth_header`` is sent as ``Authorization``, stored sealed and never returned: responses carry
``auth_header_set``; on PUT, an absent or null ``auth_header`` keeps it, ``""`` removes it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.api.context import ApiContext
from engine.api.errors import ApiError, bad_request, not_found
from engine.api.paging import fetch_page, list_response, page_of, sort_order
from engine.api.policies import load as load_policy
from engine.api.wire import MAX_ID, Body, read_body, rfc3339, to_int
from engine.netguard import TargetRefused, check_url
from engine.notify.models import DELIVERY_STATUSES, EVENT_TYPES, FORMATS, Delivery, Webhook
from engine.notify.notifier import NotifySettings, load_sides, webhook_events
from engine.notify.payloads import render, sample_event
from registry.http.asgi import Request, Response, json_response
from registry.meta.models import utcnow

__all__ = [
    "create",
    "delete",
    "deliveries",
    "delivery",
    "get",
    "list_webhooks",
    "policy_deliveries",
    "send_test",
    "update",
]

W = Webhook.__table__  # type: ignore[attr-defined]
D = Delivery.__table__  # type: ignore[attr-defined]
FORMAT_NAMES = {"default": "default", "cloudevents": "cloudevents"}
WEBHOOK_SORT = {"id": W.c.id, "name": W.c.name, "creation_time": W.c.creation_time}
MAX_ADDRESS = 2048
MAX_AUTH_HEADER = 4096


def webhook_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "policy_id": row["policy_id"],
        "name": row["name"],
        "description": row["description"],
        "address": row["address"],
        "format": row["format"],
        "auth_header_set": bool(row["auth_header"] or row.get("auth_header_encrypted")),
        "event_types": webhook_events(row),
        "enabled": row["enabled"],
        "skip_cert_verify": row["skip_cert_verify"],
        "creator": row["creator"],
        "creation_time": rfc3339(row["creation_time"]),
        "update_time": rfc3339(row["update_time"]),
    }


def delivery_json(row: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = json.loads(row["payload_json"])
    except ValueError:
        payload = row["payload_json"]
    try:
        history = json.loads(row["history_json"] or "[]")
    except ValueError:
        history = []
    return {
        "id": row["id"],
        "webhook_id": row["webhook_id"],
        "policy_id": row["policy_id"],
        "execution_id": row["execution_id"],
        "event_type": row["event_type"],
        "event": row["event"],
        "format": row["format"],
        "status": row["status"],
        "attempts": row["attempts"],
        "last_http_status": row["last_http_status"],
        "last_error": row["last_error"],
        "next_attempt_time": rfc3339(row["next_attempt_at"])
        if row["status"] == "Pending"
        else None,
        "attempt_log": history,
        "payload": payload,
        "creation_time": rfc3339(row["created_at"]),
        "update_time": rfc3339(row["updated_at"]),
    }


# ---------------------------------------------------------------------------- webhooks
async def _load(c: AsyncConnection, policy_id: int, webhook_id: int) -> dict[str, Any]:
    row = (
        (await c.execute(select(W).where(W.c.id == webhook_id, W.c.policy_id == policy_id)))
        .mappings()
        .first()
    )
    if row is None:
        raise not_found(f"replication policy {policy_id} has no webhook with ID {webhook_id}")
    return dict(row)


async def list_webhooks(ctx: ApiContext, req: Request) -> Response:
    policy_id = int(req.params["id"])
    page = page_of(req)
    order = sort_order(req, WEBHOOK_SORT, [W.c.id])
    async with ctx.db.read() as c:
        await load_policy(c, policy_id)
        rows, total = await fetch_page(
            c, select(W).where(W.c.policy_id == policy_id).order_by(*order), page
        )
    return list_response(req, [webhook_json(r) for r in rows], page, total)


async def get(ctx: ApiContext, req: Request) -> Response:
    async with ctx.db.read() as c:
        row = await _load(c, int(req.params["id"]), int(req.params["webhook_id"]))
    return json_response(webhook_json(row))


async def create(ctx: ApiContext, req: Request) -> Response:
    policy_id = int(req.params["id"])
    body = await read_body(req, ctx.max_body_bytes)
    defaults: dict[str, Any] = {
        "description": "",
        "format": "default",
        "auth_header": "",
        "auth_header_encrypted": "",
        "event_types_json": json.dumps(list(EVENT_TYPES)),
        "enabled": True,
        "skip_cert_verify": False,
    }
    values = _values(ctx, body, defaults)
    async with ctx.db.write() as c:
        await load_policy(c, policy_id)
        await _check_unique(c, policy_id, values["name"], None)
        now = utcnow()
        res = await c.execute(
            insert(W).values(
                **values,
                policy_id=policy_id,
                creator=req.user or "",
                creation_time=now,
                update_time=now,
            )
        )
        new_id = int(res.inserted_primary_key[0])  # type: ignore[index]
    return Response(201, {"Location": f"{req.path.rstrip('/')}/{new_id}"})


async def update(ctx: ApiContext, req: Request) -> Response:
    policy_id, webhook_id = int(req.params["id"]), int(req.params["webhook_id"])
    body = await read_body(req, ctx.max_body_bytes)
    async with ctx.db.write() as c:
        current = await _load(c, policy_id, webhook_id)
        values = _values(ctx, body, current)
        await _check_unique(c, policy_id, values["name"], webhook_id)
        for key in ("id", "policy_id", "creator", "creation_time"):
            values.pop(key, None)
        values["update_time"] = utcnow()
        await c.execute(sql_update(W).where(W.c.id == webhook_id).values(**values))
    return Response(200)


async def delete(ctx: ApiContext, req: Request) -> Response:
    policy_id, webhook_id = int(req.params["id"]), int(req.params["webhook_id"])
    async with ctx.db.write() as c:
        await _load(c, policy_id, webhook_id)
        await c.execute(sql_delete(D).where(D.c.webhook_id == webhook_id))
        await c.execute(sql_delete(W).where(W.c.id == webhook_id))
    return Response(200)


async def send_test(ctx: ApiContext, req: Request) -> Response:
    """Queue a ``TEST`` event for the webhook; the delivery loop sends it within a second."""
    policy_id, webhook_id = int(req.params["id"]), int(req.params["webhook_id"])
    async with ctx.db.write() as c:
        policy = await load_policy(c, policy_id)
        hook = await _load(c, policy_id, webhook_id)
        sides = await load_sides(c, policy, NotifySettings.from_env().external_url)
        event = sample_event(policy, sides)
        now = utcnow()
        res = await c.execute(
            insert(D).values(
                webhook_id=webhook_id,
                policy_id=policy_id,
                execution_id=None,
                event_type="TEST",
                event="test",
                format=hook["format"],
                payload_json=render(event, hook["format"], policy_id, webhook_id),
                status="Pending",
                attempts=0,
                last_error="",
                history_json="[]",
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        new_id = int(res.inserted_primary_key[0])  # type: ignore[index]
    path = req.path.rstrip("/").removesuffix("/test")
    return Response(201, {"Location": f"{path}/deliveries/{new_id}"})


def _values(ctx: ApiContext, body: Body, current: dict[str, Any]) -> dict[str, Any]:
    v = dict(current)
    name = body.text("name", max_length=255)
    if name is not None or "name" not in v:
        v["name"] = (name or "").strip()
        if not v["name"]:
            raise bad_request("name is required")
    if (description := body.text("description")) is not None:
        v["description"] = description
    address = body.text("address", max_length=MAX_ADDRESS)
    if address is None and "address" not in v:
        raise bad_request("address is required: the URL the events are POSTed to")
    if address is not None:
        v["address"] = _check_address(ctx, address.strip())
    fmt = body.text("format", max_length=32)
    if fmt is not None:
        if fmt.lower() not in FORMAT_NAMES:
            raise bad_request(f"format must be one of {', '.join(FORMATS)}")
        v["format"] = FORMAT_NAMES[fmt.lower()]
    auth = body.text("auth_header", max_length=MAX_AUTH_HEADER)
    if auth is not None:
        if any(ch in auth for ch in "\r\n\0"):
            raise bad_request("auth_header must be one line (no CR, LF or NUL)")
        v["auth_header_encrypted"] = ctx.secrets.encrypt(auth.strip())
        v["auth_header"] = ""
    elif v.get("auth_header"):  # a row from before sealing: sealed now
        v["auth_header_encrypted"] = ctx.secrets.encrypt(v["auth_header"])
        v["auth_header"] = ""
    events = body.items("event_types")
    if events is not None:
        v["event_types_json"] = json.dumps(_check_events(events))
    for flag in ("enabled", "skip_cert_verify"):
        if (value := body.flag(flag)) is not None:
            v[flag] = value
    return v


def _check_address(ctx: ApiContext, address: str) -> str:
    try:
        parts = urlsplit(address)
    except ValueError as e:  # e.g. http://[::1/
        raise bad_request(f"address {address[:200]!r} is not a valid URL: {e}") from None
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise bad_request(f"address has an invalid port: {address[:200]!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request(
            f"address must be an http:// or https:// URL with a host, not {address[:200]!r}"
        )
    if any(ch.isspace() for ch in address):
        raise bad_request("address must not contain whitespace")
    try:
        check_url(address, allow_link_local=ctx.allow_link_local)
    except TargetRefused as e:
        raise bad_request(f"address {address[:200]!r}: {e}") from None
    return address


def _check_events(events: list[Any]) -> list[str]:
    if not events:
        raise bad_request(
            f"event_types must not be empty; choose from {', '.join(EVENT_TYPES)} "
            "(omit it for all of them)"
        )
    out: list[str] = []
    for e in events:
        if not isinstance(e, str):
            raise bad_request("event_types must be a list of strings")
        chosen = list(EVENT_TYPES) if e == "REPLICATION" else [e]
        for name in chosen:
            if name not in EVENT_TYPES:
                raise bad_request(
                    f"event_types: unknown event type {e[:64]!r}; choose from "
                    f"{', '.join(EVENT_TYPES)}"
                )
            if name not in out:
                out.append(name)
    return [e for e in EVENT_TYPES if e in out]


async def _check_unique(c: AsyncConnection, policy_id: int, name: str, own: int | None) -> None:
    row = (
        await c.execute(select(W.c.id).where(W.c.policy_id == policy_id, W.c.name == name))
    ).first()
    if row is not None and row[0] != own:
        raise ApiError(
            "CONFLICT", f"replication policy {policy_id} already has a webhook named {name!r}"
        )


# ---------------------------------------------------------------------------- deliveries
async def deliveries(ctx: ApiContext, req: Request) -> Response:
    policy_id, webhook_id = int(req.params["id"]), int(req.params["webhook_id"])
    async with ctx.db.read() as c:
        await _load(c, policy_id, webhook_id)
    return await _delivery_list(ctx, req, [D.c.webhook_id == webhook_id])


async def policy_deliveries(ctx: ApiContext, req: Request) -> Response:
    policy_id = int(req.params["id"])
    where = [D.c.policy_id == policy_id]
    if (webhook_id := req.q("webhook_id")) not in (None, ""):
        where.append(D.c.webhook_id == _integer("webhook_id", webhook_id))
    async with ctx.db.read() as c:
        await load_policy(c, policy_id)
    return await _delivery_list(ctx, req, where)


async def delivery(ctx: ApiContext, req: Request) -> Response:
    policy_id, webhook_id = int(req.params["id"]), int(req.params["webhook_id"])
    delivery_id = int(req.params["delivery_id"])
    async with ctx.db.read() as c:
        await _load(c, policy_id, webhook_id)
        row = (
            (await c.execute(select(D).where(D.c.id == delivery_id, D.c.webhook_id == webhook_id)))
            .mappings()
            .first()
        )
    if row is None:
        raise not_found(f"webhook {webhook_id} has no delivery with ID {delivery_id}")
    return json_response(delivery_json(dict(row)))


async def _delivery_list(ctx: ApiContext, req: Request, where: list[Any]) -> Response:
    page = page_of(req)
    if status := req.q("status"):
        if status not in DELIVERY_STATUSES:
            raise bad_request(f"status must be one of {', '.join(DELIVERY_STATUSES)}")
        where.append(D.c.status == status)
    if event_type := req.q("event_type"):
        if event_type not in (*EVENT_TYPES, "TEST"):
            raise bad_request(f"event_type must be one of {', '.join((*EVENT_TYPES, 'TEST'))}")
        where.append(D.c.event_type == event_type)
    if (execution_id := req.q("execution_id")) not in (None, ""):
        where.append(D.c.execution_id == _integer("execution_id", execution_id))
    async with ctx.db.read() as c:
        rows, total = await fetch_page(c, select(D).where(*where).order_by(D.c.id.desc()), page)
    return list_response(req, [delivery_json(r) for r in rows], page, total)


def _integer(name: str, raw: str | None) -> int:
    return to_int(raw or "", name, minimum=1, maximum=MAX_ID)
