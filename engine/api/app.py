"""The management API's ASGI application: routing, access rules, and the error boundary.

Access: ``GET /ping`` and ``GET /systeminfo`` are public, and ``POST /registries/{id}/webhook``
checks the endpoint's own secret; every other route needs HTTP Basic for
an active account. Reads (GET/HEAD) are open to any account, except outgoing webhooks and their
deliveries (addresses often carry a secret); everything else needs an admin. What a non-admin
reads is narrowed to what its grants let it pull (see :mod:`engine.api.access`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio

from engine.api import (
    executions,
    notifications,
    policies,
    proxy_caches,
    regions,
    registries,
    repositories,
    system,
    webhooks_in,
)
from engine.api.access import Viewer, remember
from engine.api.context import ApiContext
from engine.api.errors import ApiError, not_found, to_response
from engine.api.wire import check_path_ids, check_query
from registry.http.asgi import ClientDisconnected, Receive, Request, Response, Scope, Send
from registry.http.asgi import send_response as _send
from registry.http.auth import login

__all__ = ["PREFIX", "ManagementApi", "create_api"]

PREFIX = "/api/v2.0"
Handler = Callable[[ApiContext, Request], Awaitable[Response]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
READS = frozenset({"GET", "HEAD"})
DRAIN_SECONDS = 5.0  # at most this long reading an unread request body before answering
CHALLENGE = {"WWW-Authenticate": 'Basic realm="seawall"'}


@dataclass(frozen=True, slots=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    public: bool = False
    admin_only: bool = False  # reads too (webhook addresses often carry a secret)


def _route(path: str, public: bool = False, admin_only: bool = False, **methods: Handler) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[0-9]+)", path)  # ASCII: \d takes any script's
    return Route(re.compile(f"^{regex}$"), methods, public, admin_only)


def _named(regex: str, **methods: Handler) -> Route:
    """A route whose parameters are names (the pattern is given as a regex)."""
    return Route(re.compile(f"^{regex}$"), methods)


ROUTES = (
    _route("/ping", public=True, GET=system.ping),
    _route("/systeminfo", public=True, GET=system.info),
    _route("/registries", GET=registries.list_registries, POST=registries.create),
    _route("/registries/ping", POST=registries.ping),
    _route("/registries/{id}", GET=registries.get, PUT=registries.update, DELETE=registries.delete),
    _route("/registries/{id}/info", GET=registries.info),
    # authenticated by the endpoint's webhook_secret, not by an account
    _route("/registries/{id}/webhook", public=True, POST=webhooks_in.receive),
    _named(
        r"/projects/(?P<project>[^/]+)/repositories/(?P<repository>.+)",
        DELETE=repositories.delete,
    ),
    _route("/replication/adapters", GET=registries.adapters),
    _route("/replication/adapterinfos", GET=registries.adapter_infos),
    _route("/replication/policies", GET=policies.list_policies, POST=policies.create),
    _route(
        "/replication/policies/{id}", GET=policies.get, PUT=policies.update, DELETE=policies.delete
    ),
    _route(
        "/replication/policies/{id}/webhooks",
        admin_only=True,
        GET=notifications.list_webhooks,
        POST=notifications.create,
    ),
    _route(
        "/replication/policies/{id}/webhooks/{webhook_id}",
        admin_only=True,
        GET=notifications.get,
        PUT=notifications.update,
        DELETE=notifications.delete,
    ),
    _route(
        "/replication/policies/{id}/webhooks/{webhook_id}/test",
        admin_only=True,
        POST=notifications.send_test,
    ),
    _route(
        "/replication/policies/{id}/webhooks/{webhook_id}/deliveries",
        admin_only=True,
        GET=notifications.deliveries,
    ),
    _route(
        "/replication/policies/{id}/webhooks/{webhook_id}/deliveries/{delivery_id}",
        admin_only=True,
        GET=notifications.delivery,
    ),
    _route(
        "/replication/policies/{id}/deliveries",
        admin_only=True,
        GET=notifications.policy_deliveries,
    ),
    _route("/replication/executions", GET=executions.list_executions, POST=executions.start),
    _route("/replication/executions/{id}", GET=executions.get, PUT=executions.stop),
    _route("/replication/executions/{id}/tasks", GET=executions.tasks),
    _route("/replication/executions/{id}/tasks/{task_id}/log", GET=executions.task_log),
    _route("/regions", GET=regions.list_regions, POST=regions.create),
    _named(r"/regions/(?P<name>[^/]+)", GET=regions.get, DELETE=regions.delete),
    _route("/dr/check", GET=regions.latest, POST=regions.check_now),
    _route("/proxy-caches", GET=proxy_caches.list_all, POST=proxy_caches.create),
    _named(
        r"/proxy-caches/(?P<name>[^/]+)",
        GET=proxy_caches.get,
        PUT=proxy_caches.update,
        DELETE=proxy_caches.delete,
    ),
)


class ManagementApi:
    """ASGI app for ``/api/v2.0/...``; anything else is a 404 in Harbor's error format."""

    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        tracked = _TrackedReceive(receive)
        req = Request(scope, tracked)
        try:
            response = await self.dispatch(req)
        except ClientDisconnected as e:  # 400 or 408 in the API's error body, then close
            with contextlib.suppress(Exception):  # the client may be gone already
                await _send(scope, send, to_response(e, f"{req.method} {req.path}"))
            return
        except Exception as e:
            response = to_response(e, f"{req.method} {req.path}")
        if not await tracked.drain(self.ctx.max_body_bytes):
            response.headers["Connection"] = "close"  # the rest is never read: no reuse
        await _send(scope, send, response)

    async def dispatch(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        if not path.startswith(PREFIX + "/"):
            raise not_found(f"no such path: {req.path[:200]} (the API lives under {PREFIX}/)")
        sub = path[len(PREFIX) :]
        for route in ROUTES:
            m = route.pattern.match(sub)
            if m is None:
                continue
            method = "GET" if req.method == "HEAD" else req.method
            handler = route.methods.get(method)
            if handler is None:
                allowed = ", ".join(sorted(route.methods))
                raise ApiError(
                    "METHOD_NOT_ALLOWED",
                    f"{req.method} is not allowed on {req.path[:200]}; allowed: {allowed}",
                    headers={"Allow": allowed},
                )
            if not route.public:
                await self.authorize(req, admin=route.admin_only or method not in READS)
            check_query(req)
            req.params = m.groupdict()
            check_path_ids(req.params)
            return await handler(self.ctx, req)
        raise not_found(f"no such path: {req.path[:200]}")

    async def authorize(self, req: Request, admin: bool) -> None:
        header = req.headers.get("authorization", "")
        if not header[:6].lower() == "basic ":
            raise ApiError("UNAUTHORIZED", "authentication required (HTTP Basic)", CHALLENGE)
        # throttled per account and per source address; a throttled login is a 429
        account = await login(self.ctx.registry_ctx, header, req.client_host)
        if account is None:
            raise ApiError("UNAUTHORIZED", "invalid username or password", CHALLENGE)
        req.user = account.name
        remember(req, Viewer.of(account, self.ctx.registry_ctx.options.anonymous_pull))
        if admin and account.kind != "admin":
            raise ApiError("FORBIDDEN", f"{account.name} is not an administrator: changes need one")


class _TrackedReceive:
    """``receive``, noting when the request body has been read to its end.

    An answer given before the body was read (a 401, a 404 for an unknown id) must still
    reach the client: a connection closed with unread bytes in it is reset, and the reset can
    destroy the answer in flight. So what is left is read and dropped first — bounded in bytes
    and time, so an unauthenticated caller cannot hold the server with it."""

    def __init__(self, receive: Receive) -> None:
        self.receive, self.done = receive, False

    async def __call__(self) -> dict[str, Any]:
        message = await self.receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message

    async def drain(self, limit_bytes: int) -> bool:
        """Read what is left of the body, up to ``limit_bytes``; whether it was all read."""
        total = 0
        with anyio.move_on_after(DRAIN_SECONDS):
            while not self.done and total <= limit_bytes:
                total += len((await self()).get("body", b""))
        return self.done


def create_api(ctx: ApiContext) -> ASGIApp:
    """The management API as an ASGI callable (``RegistryApp``'s ``fallback``)."""
    return ManagementApi(ctx)
