"""The registry's ASGI application: routing, per-route access rules, and the one place where
errors become responses (the OCI error JSON)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from registry.auth.logins import LoginThrottled
from registry.auth.scopes import Access
from registry.http import blobs, listing, manifests, referrers, uploads
from registry.http.asgi import (
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    json_response,
    send_response,
)
from registry.http.auth import authorize, challenge, verified_token
from registry.http.context import RegistryContext
from registry.http.edge import Edge, EdgeOptions
from registry.http.metrics import Metrics, metrics_response
from registry.http.proxy_cache import refusal
from registry.http.token import token
from registry.oci.errors import RegistryError
from registry.oci.reference import is_valid_name, validate_name
from registry.storage.base import StorageError
from registry.storage.fence import BlobBusy

__all__ = ["RegistryApp"]

log = logging.getLogger("seawall.registry")

Handler = Callable[[RegistryContext, Request], Awaitable[Response]]
API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
#: Seconds a client is asked to wait before sending a request again that met a blob being
#: garbage-collected (the collection deletes one blob's bytes in well under that).
BLOB_BUSY_RETRY_SECONDS = 1
PULL, PUSH, DELETE = frozenset({"pull"}), frozenset({"pull", "push"}), frozenset({"delete"})


@dataclass(frozen=True, slots=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, tuple[Handler, frozenset[str]]]  # method -> (handler, actions needed)


def _route(regex: str, **methods: tuple[Handler, frozenset[str]]) -> Route:
    return Route(re.compile(regex), methods)


_NAME = r"(?P<name>[^?#]+?)"
ROUTES = (
    _route(
        rf"^/v2/{_NAME}/manifests/(?P<reference>[^/]+)$",
        GET=(manifests.get_manifest, PULL),
        HEAD=(manifests.get_manifest, PULL),
        PUT=(manifests.put_manifest, PUSH),
        DELETE=(manifests.delete_manifest, DELETE),
    ),
    _route(
        rf"^/v2/{_NAME}/blobs/uploads/(?P<uuid>[^/]*)$",
        POST=(uploads.start_upload, PUSH),
        GET=(uploads.upload_status, PUSH),
        PATCH=(uploads.patch_upload, PUSH),
        PUT=(uploads.put_upload, PUSH),
        DELETE=(uploads.cancel_upload, PUSH),
    ),
    _route(
        rf"^/v2/{_NAME}/blobs/(?P<digest>[^/]+)$",
        GET=(blobs.get_blob, PULL),
        HEAD=(blobs.get_blob, PULL),
        DELETE=(blobs.delete_blob, DELETE),
    ),
    _route(rf"^/v2/{_NAME}/tags/list$", GET=(listing.tags_list, PULL)),
    _route(rf"^/v2/{_NAME}/referrers/(?P<digest>[^/]+)$", GET=(referrers.referrers, PULL)),
)


#: What is left of a request body the answer did not need is read and dropped up to this size
#: before answering (:meth:`Request.drain`); past it the connection is closed instead.
DRAIN_MAX_BYTES = 16 * 1024 * 1024


class RegistryApp:
    """ASGI app for ``/v2/``, ``/service/token``, ``/healthz`` and (with ``metrics``)
    ``/metrics``; anything else goes to ``fallback`` (the management API) when one is given.
    Every request, the fallback's too, first passes the :class:`~registry.http.edge.Edge`
    (trusted proxies, body deadlines) and is counted by ``metrics``."""

    def __init__(
        self,
        ctx: RegistryContext,
        fallback: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None,
        lifespan: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None,
        edge: EdgeOptions | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.ctx, self.fallback, self.lifespan = ctx, fallback, lifespan
        self.edge = Edge(edge or EdgeOptions())
        self.metrics = metrics
        own = {"/service/token", "/healthz"} | ({"/metrics"} if metrics else set())
        self._own_paths = frozenset(own)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            if self.lifespan is not None:
                await self.lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        scope, receive = self.edge.admit(scope, receive)
        path: str = scope["path"]
        if not path.startswith("/v2") and path not in self._own_paths:
            if self.metrics is not None:  # counted from what it sends
                await self.metrics.requests.track(scope, receive, send, self._fallback, started)
            else:
                await self._fallback(scope, receive, send)
            return
        counted = self.metrics.requests.counting(scope, receive) if self.metrics else None
        req = Request(scope, counted or receive)
        response: Response | None = None
        try:
            try:
                response = await self.dispatch(req)
            except Exception as e:
                response = _error(_registry_error(e, req))
            if path.startswith("/v2"):
                response.headers.update(API_VERSION)
            if not await req.drain(DRAIN_MAX_BYTES):
                response.headers["Connection"] = "close"
            await send_response(scope, send, response)
        finally:
            if self.metrics is not None:
                self.metrics.requests.answered(scope, response, started, counted)

    async def _fallback(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fallback is not None:
            await self.fallback(scope, receive, send)
        else:
            error = RegistryError("UNSUPPORTED", status=404, message="not found")
            await send_response(scope, send, _error(error))

    async def dispatch(self, req: Request) -> Response:
        path, method = req.path, req.method
        if path in ("/v2/", "/v2"):
            await authorize(self.ctx, req, [])
            return json_response({})
        if path == "/v2/_catalog":
            await authorize(self.ctx, req, [Access("registry", "catalog", frozenset({"*"}))])
            return await listing.catalog(self.ctx, req)
        if path == "/service/token" and method in ("GET", "POST"):
            return await token(self.ctx, req)
        if path == "/healthz":
            return json_response({"status": "ok"})
        if path == "/metrics" and self.metrics is not None:
            return await metrics_response(self.ctx, req, self.metrics)
        proxy = self.ctx.proxy_cache
        mirrored = req.q("ns") if proxy is not None and method in ("GET", "HEAD") else None
        if proxy is not None and mirrored:  # containerd's mirror request: ?ns=<upstream host>
            path = await proxy.mirror_path(path, mirrored) or path
        for route in ROUTES:
            m = route.pattern.match(path)
            if m is None:
                continue
            entry = route.methods.get(method)
            if entry is None:
                raise RegistryError("UNSUPPORTED", {"method": method}, status=405)
            handler, actions = entry
            req.params = m.groupdict()
            if b"%2f" in req.scope.get("raw_path", b"").lower():
                # an encoded slash is part of one path segment, never a name separator
                raise RegistryError("NAME_INVALID", {"reason": "encoded '/' in the path"})
            name = validate_name(req.params["name"])
            if proxy is not None and method not in ("GET", "HEAD"):
                ns = await proxy.namespace_of(name)
                if ns is not None:  # before authorizing: nobody may write there
                    raise refusal(ns, name)
            needed = [Access("repository", name, actions)]
            source = req.q("from") if method == "POST" and req.q("mount") else None
            also = [Access("repository", source, PULL)] if source and is_valid_name(source) else []
            await authorize(self.ctx, req, needed, also)
            await self._authorize_mount_source(req, needed)
            return await handler(self.ctx, req)
        raise RegistryError("UNSUPPORTED", {"path": path[:200]}, status=404, message="not found")

    async def _authorize_mount_source(self, req: Request, needed: list[Access]) -> None:
        """A mount reads the ``from`` repository, so it needs pull there too.

        A bearer token that was never asked for that scope gets a challenge naming both scopes
        (as distribution does), so the client fetches a token for both. Credentials that were
        asked and refused — or Basic credentials without the right — get a plain upload session
        instead (the spec's fallback): never an error, never a leak.
        """
        source = req.q("from") if req.method == "POST" and req.q("mount") else None
        if source is None:
            return
        access = Access("repository", source, PULL)
        if is_valid_name(source):
            header = req.headers.get("authorization", "")
            claims = (
                verified_token(self.ctx, header[7:].strip())
                if header[:7].lower() == "bearer "
                else None
            )
            if claims is not None and not claims.mentions("repository", source):
                raise challenge(self.ctx, req, [*needed, access], "insufficient_scope")
            try:
                await authorize(self.ctx, req, [access])
                return
            except RegistryError:
                pass
        req.query.pop("mount", None)
        req.query.pop("from", None)


def _registry_error(e: Exception, req: Request) -> RegistryError:
    """The one place where what a handler raised becomes the OCI error it is answered with."""
    if isinstance(e, RegistryError):
        return e
    if isinstance(e, ClientDisconnected):  # also malformed chunked framing: answer in case
        if e.stalled:
            return RegistryError(
                "SIZE_INVALID",
                {"reason": "request body stalled"},
                status=408,
                message="the request body stopped arriving; send it again (an upload resumes "
                "from the offset its status reports)",
            )
        return RegistryError(
            "SIZE_INVALID",
            {"reason": "request body incomplete"},
            message="the request body ended before its declared length, or its chunked "
            "encoding is malformed; send it again",
        )
    if isinstance(e, BodyTooLarge):
        return RegistryError(
            "SIZE_INVALID",
            {"limit_bytes": e.limit_bytes},
            status=413,
            message=f"the request body is larger than {e.limit_bytes} bytes",
        )
    if isinstance(e, LoginThrottled):
        return RegistryError(
            "TOOMANYREQUESTS",
            {"reason": e.reason, "retry_after_seconds": e.retry_after_seconds},
            message=f"{e.reason}; retry after {e.retry_after_seconds} s",
            headers={"Retry-After": str(e.retry_after_seconds)},
        )
    if isinstance(e, BlobBusy):  # a StorageError that says: send it again shortly
        log.info("%s %s: %s", req.method, req.path, e)
        return RegistryError(
            "UNAVAILABLE",
            {"reason": "blob busy", "retry_after_seconds": BLOB_BUSY_RETRY_SECONDS},
            message="the blob is being garbage-collected right now; send the request again",
            headers={"Retry-After": str(BLOB_BUSY_RETRY_SECONDS)},
        )
    if isinstance(e, StorageError):
        log.error("storage error on %s %s: %s", req.method, req.path, e)
        return RegistryError("UNAVAILABLE", {"reason": "storage error"})
    log.exception("unhandled error on %s %s", req.method, req.path, exc_info=e)
    return RegistryError("UNKNOWN")


def _error(e: RegistryError) -> Response:
    headers = {"Content-Type": "application/json", **e.headers}
    return json_response(e.body(), status=e.status, headers=headers)
