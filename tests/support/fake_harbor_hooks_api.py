"""The Harbor fake's webhook policy API: ``GET|POST
/api/v2.0/projects/{project_name_or_id}/webhook/policies`` and ``GET|PUT|DELETE
…/policies/{webhook_policy_id}`` (v2.0 swagger), with the project's ``notification-policy``
permissions (``list``, ``create``, ``read``, ``update``, ``delete``).

``{project_name_or_id}`` is a name when ``X-Is-Resource-Name: true`` is sent or it is not an
integer, else an id. A policy name is unique in its project (``409 CONFLICT``); a body with no
name, no targets, a target that is not ``http``/``slack`` with an http(s) address, or an
unknown event type is ``400 BAD_REQUEST``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.support.fake_harbor_http import PREFIX, caller, harbor_error, paged, refuse
from tests.support.fake_harbor_webhooks import EVENT_TYPES, now_iso

if TYPE_CHECKING:
    from tests.support.fake_harbor import FakeHarbor

__all__ = ["check_policy", "policies"]

_ACTIONS = {"GET": "list", "POST": "create", "PUT": "update", "DELETE": "delete"}


def check_policy(body: Any) -> str:
    """What is wrong with a webhook policy body ("" if nothing)."""
    if not isinstance(body, dict) or not str(body.get("name") or "").strip():
        return "the policy needs a name"
    targets = body.get("targets")
    if not isinstance(targets, list) or not targets:
        return "the policy needs targets"
    for target in targets:
        if not isinstance(target, dict):
            return "every target is an object"
        address = str(target.get("address", ""))
        if target.get("type") not in ("http", "slack") or not address.startswith(
            ("http://", "https://")
        ):
            return f"target {address[:100]!r}: type http or slack, an http(s) address"
        if target.get("payload_format", "Default") not in ("Default", "CloudEvents", ""):
            return "payload_format: Default or CloudEvents"
    kinds = body.get("event_types")
    if not isinstance(kinds, list) or not kinds or any(k not in EVENT_TYPES for k in kinds):
        return f"event_types: some of {', '.join(EVENT_TYPES)}"
    return ""


async def policies(
    fake: FakeHarbor, request: web.Request, ref: str, policy_id: str | None
) -> web.StreamResponse:
    account = caller(fake, request)
    if isinstance(account, web.Response):
        return account
    by_name = request.headers.get("X-Is-Resource-Name") == "true"
    project = fake.project(ref, by_name=by_name)
    if project is None:
        return harbor_error(404, "NOT_FOUND", f"project {ref} not found")
    action = _ACTIONS.get(request.method)
    if action is None:
        return harbor_error(405, "METHOD_NOT_ALLOWED", "GET, POST, PUT or DELETE")
    if policy_id is not None and action == "list":
        action = "read"
    if account is None or not account.may(project.name, "notification-policy", action):
        return refuse(account, f"{action} webhook policies of project {project.name}")
    found = [p for p in fake.webhooks.of_project(project.name) if str(p.id) == policy_id]
    if policy_id is None and request.method == "GET":
        return paged(request, [p.wire() for p in fake.webhooks.of_project(project.name)])
    if policy_id is None and request.method == "POST":
        return await _create(fake, request, project.name, project.id, account.name)
    if not found:
        return harbor_error(404, "NOT_FOUND", f"webhook policy {policy_id} not found")
    policy = found[0]
    if request.method == "GET":
        return web.json_response(policy.wire())
    if request.method == "DELETE":
        del fake.webhooks.policies[policy.id]
        return web.Response(status=200)
    body = await request.json()
    problem = check_policy(body)
    if problem:
        return harbor_error(400, "BAD_REQUEST", problem)
    if any(
        p.name == body["name"] and p.id != policy.id for p in fake.webhooks.of_project(project.name)
    ):
        return harbor_error(409, "CONFLICT", f"webhook policy {body['name']} already exists")
    policy.name, policy.description = body["name"], str(body.get("description", ""))
    policy.enabled = bool(body.get("enabled", True))
    policy.event_types, policy.targets = list(body["event_types"]), list(body["targets"])
    policy.update_time = now_iso()
    return web.Response(status=200)


async def _create(
    fake: FakeHarbor, request: web.Request, project: str, project_id: int, creator: str
) -> web.Response:
    body = await request.json()
    problem = check_policy(body)
    if problem:
        return harbor_error(400, "BAD_REQUEST", problem)
    if any(p.name == body["name"] for p in fake.webhooks.of_project(project)):
        return harbor_error(409, "CONFLICT", f"webhook policy {body['name']} already exists")
    policy = fake.webhooks.add(
        project_id=project_id,
        project=project,
        name=body["name"],
        description=str(body.get("description", "")),
        enabled=bool(body.get("enabled", True)),
        event_types=list(body["event_types"]),
        targets=[dict(t) for t in body["targets"]],
        creator=creator,
    )
    location = f"{PREFIX}/projects/{project_id}/webhook/policies/{policy.id}"
    return web.Response(status=201, headers={"Location": location})
