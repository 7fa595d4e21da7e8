"""``POST /api/v2.0/registries/{id}/webhook``: a remote registry announces a push or delete.

The call is authenticated by the endpoint's own ``webhook_secret`` (not by an account): the
``Authorization`` header carries the secret, bare (Harbor's webhook ``auth_header``) or as
``Bearer <secret>`` (distribution's ``notifications.endpoints[].headers``). The events become
event-scoped runs of the enabled ``event_based`` pull policies whose source is this endpoint
(merged into a waiting run of the policy when there is one), and the answer is
``202 {"events": n, "executions": [ids]}``.
"""

from __future__ import annotations

import hmac
import json
import logging

from sqlalchemy import select

from engine.api.context import ApiContext
from engine.api.errors import ApiError, bad_request
from engine.api.registries import load
from engine.scope import scopes_for
from engine.state.models import Policy
from engine.state.runs import enqueue_scoped
from engine.webhook_payloads import PayloadError, parse_payload
from registry.http.asgi import Request, Response, json_response
from registry.meta.models import utcnow

__all__ = ["receive"]

log = logging.getLogger("seawall.api")
P = Policy.__table__  # type: ignore[attr-defined]


def _authorized(header: str, secret: str) -> bool:
    given = header.strip()
    if given[:7].lower() == "bearer ":
        given = given[7:].strip()
    return hmac.compare_digest(given.encode(), secret.encode())


async def receive(ctx: ApiContext, req: Request) -> Response:
    registry_id = int(req.params["id"])
    row = await load(ctx, registry_id)
    if not row["webhook_secret_encrypted"]:
        raise ApiError(
            "UNAUTHORIZED",
            f"incoming webhooks are off for registry {registry_id}: set its webhook_secret",
        )
    secret = ctx.secrets.decrypt(row["webhook_secret_encrypted"])
    if not _authorized(req.headers.get("authorization", ""), secret):
        raise ApiError("UNAUTHORIZED", "missing or wrong webhook secret in Authorization")
    raw = await req.body(ctx.max_body_bytes)
    try:
        events = parse_payload(json.loads(raw))
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"webhook payload: {e}") from None
    except PayloadError as e:
        raise bad_request(f"webhook payload: {e}") from None
    executions: list[int] = []
    if events:
        async with ctx.db.write() as c:
            policies = (
                (
                    await c.execute(
                        select(P.c.id, P.c.filters_json, P.c.deletion).where(
                            P.c.enabled.is_(True),
                            P.c.trigger_type == "event_based",
                            P.c.src_registry_id == registry_id,
                        )
                    )
                )
                .mappings()
                .all()
            )
            scopes = scopes_for(
                [dict(p) for p in policies],
                [(e.action, e.repository, e.digest, e.tag) for e in events],
            )
            now = utcnow()
            for pid, scope in scopes.items():
                executions.append(await enqueue_scoped(c, pid, "event_based", scope, now))
    if executions:
        ctx.wake()
    log.info(
        "webhook from registry %s: %d events, executions %s", registry_id, len(events), executions
    )
    return json_response({"events": len(events), "executions": executions}, status=202)
