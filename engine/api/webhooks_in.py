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
import logging

from engine.api.context import ApiContext
from engine.api.errors import ApiError, bad_request
from engine.api.registries import load
from engine.api.wire import parse_json
from engine.state.runs import enqueue_events
from engine.webhook_payloads import PayloadError, parse_payload
from registry.http.asgi import Request, Response, json_response
from registry.oci.reference import is_valid_name, is_valid_tag

__all__ = ["receive"]

log = logging.getLogger("seawall.api")


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
        events = parse_payload(parse_json(raw))
    except ApiError as e:
        raise bad_request(f"webhook payload: {e.message}") from None
    except PayloadError as e:
        raise bad_request(f"webhook payload: {e}") from None
    for event in events:
        if not is_valid_name(event.repository) or (event.tag and not is_valid_tag(event.tag)):
            raise bad_request(
                f"webhook payload: {event.repository[:200]!r}:{(event.tag or '')[:130]!r} is not "
                "a repository name and tag"
            )
    executions: list[int] = []
    if events:
        async with ctx.db.write() as c:
            found = [(e.action, e.repository, e.digest, e.tag) for e in events]
            executions = await enqueue_events(c, registry_id, found)
    if executions:
        ctx.wake()
    log.info(
        "webhook from registry %s: %d events, executions %s", registry_id, len(events), executions
    )
    return json_response({"events": len(events), "executions": executions}, status=202)
