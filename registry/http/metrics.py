"""Request metrics and the ``GET /metrics`` endpoint (Prometheus text format).

Every HTTP request the server answers — registry, token, management API — is counted by
:class:`RequestMetrics` in plain integers on the way out: route family (a bounded set, never
the raw path), method, status, latency, and body bytes received and sent. Nothing is locked
(one event loop per worker) and nothing is formatted until a scrape; the measured cost is in
``docs/registry-api.md`` ("Metrics").

``/metrics`` shows the families of its :class:`MetricsSource` s — this process's request
metrics (or, with several workers, every worker's: ``seawall.metrics``) and the figures the
rest of Seawall computes at scrape time (replication, checks): the registry never imports the
engine. It needs an administrator's HTTP Basic credentials unless ``public``: ``401`` with a
``WWW-Authenticate: Basic`` challenge without valid credentials, ``403`` for an account that
is not an administrator.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import anyio
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from registry.http.asgi import Receive, Request, Response, Scope, Send
from registry.http.auth import login
from registry.http.context import RegistryContext
from registry.oci.errors import RegistryError

__all__ = [
    "LATENCY_BUCKETS_SECONDS",
    "CountedReceive",
    "Metrics",
    "MetricsSource",
    "RequestCounts",
    "RequestMetrics",
    "RouteCounts",
    "RouteFamily",
    "metrics_response",
    "route_family",
]

log = logging.getLogger("seawall.registry")

#: Upper bounds of the request latency histogram (a blob transfer may take a minute).
LATENCY_BUCKETS_SECONDS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})


class RouteFamily(StrEnum):
    """The ``route`` label: which kind of request, from the path's shape."""

    MANIFEST = "manifest"
    BLOB = "blob"
    UPLOAD = "upload"
    TAGS = "tags"
    CATALOG = "catalog"
    REFERRERS = "referrers"
    TOKEN = "token"
    BASE = "base"  # GET /v2/
    API = "api"  # the management API
    HEALTH = "health"
    METRICS = "metrics"
    OTHER = "other"


def route_family(path: str) -> str:
    """The family of ``path`` (a :class:`RouteFamily` value, as a plain ``str``: it keys the
    counts), read from its last segments as the registry's routes end (``…/manifests/<ref>``,
    ``…/blobs/uploads/<id>``, ``…/tags/list``): no regular expression, and a repository name
    never decides it."""
    if not path.startswith("/v2/"):
        if path.startswith("/api/"):
            return _API
        return _EXACT.get(path, _OTHER)
    head, kind, last = path.rsplit("/", 2)  # three parts: the path has two slashes at least
    family = _KINDS.get(kind)
    if family is None:
        return _EXACT.get(path, _OTHER)
    if family == _UPLOAD:
        return family if head.endswith("/blobs") else _OTHER
    if family == _TAGS:
        return family if last == "list" else _OTHER
    return family


# plain strings: a StrEnum member hashes by its name, in Python (slow, and unlike its value)
_API, _OTHER, _UPLOAD, _TAGS = "api", "other", "upload", "tags"
_KINDS = {
    "manifests": RouteFamily.MANIFEST.value,
    "blobs": RouteFamily.BLOB.value,
    "uploads": RouteFamily.UPLOAD.value,
    "tags": RouteFamily.TAGS.value,
    "referrers": RouteFamily.REFERRERS.value,
}
_EXACT = {
    "/v2": RouteFamily.BASE.value,
    "/v2/": RouteFamily.BASE.value,
    "/v2/_catalog": RouteFamily.CATALOG.value,
    "/service/token": RouteFamily.TOKEN.value,
    "/healthz": RouteFamily.HEALTH.value,
    "/metrics": RouteFamily.METRICS.value,
}
_BUCKETS = len(LATENCY_BUCKETS_SECONDS) + 1  # the last one: past every bound


@dataclass(slots=True)
class RouteCounts:
    """Requests of one route family and method: how many per status, their latency
    (per-bucket counts, not cumulative, and the sum of the seconds) and their body bytes."""

    statuses: dict[int, int] = field(default_factory=dict)
    buckets: list[int] = field(default_factory=lambda: [0] * _BUCKETS)
    total_seconds: float = 0.0
    received_bytes: int = 0
    sent_bytes: int = 0

    def add(self, other: RouteCounts) -> None:
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.total_seconds += other.total_seconds
        self.received_bytes += other.received_bytes
        self.sent_bytes += other.sent_bytes


@dataclass
class RequestCounts:
    """What :class:`RequestMetrics` has counted, as plain data, by (route family, method):
    several workers' counts add up (:meth:`add`) and travel as JSON."""

    routes: dict[tuple[str, str], RouteCounts] = field(default_factory=dict)

    def add(self, other: RequestCounts) -> RequestCounts:
        for key, theirs in other.routes.items():
            self.routes.setdefault(key, RouteCounts()).add(theirs)
        return self

    def to_json(self) -> list[Any]:
        out = []
        for (route, method), c in self.routes.items():
            statuses = list(c.statuses.items())
            out.append([route, method, statuses, c.buckets, c.total_seconds, c.received_bytes])
            out[-1].append(c.sent_bytes)
        return out

    @classmethod
    def from_json(cls, data: list[Any]) -> RequestCounts:
        """The counts :meth:`to_json` wrote. :raises ValueError: (or ``TypeError``) for
        anything else."""
        routes = {}
        for route, method, statuses, buckets, total, received, sent in data:
            if len(buckets) != _BUCKETS:
                raise ValueError("latency buckets differ")
            routes[(str(route), str(method))] = RouteCounts(
                {int(s): int(n) for s, n in statuses},
                [int(n) for n in buckets],
                float(total),
                int(received),
                int(sent),
            )
        return cls(routes)

    def families(self) -> list[Metric]:
        requests = CounterMetricFamily(
            "seawall_registry_requests",
            "HTTP requests answered, by route family, method and status.",
            labels=["route", "method", "status"],
        )
        latency = HistogramMetricFamily(
            "seawall_registry_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route family and method.",
            labels=["route", "method"],
        )
        received: dict[str, int] = {}
        sent: dict[str, int] = {}
        for (route, method), c in sorted(self.routes.items()):
            for status, n in sorted(c.statuses.items()):
                requests.add_metric([route, method, str(status)], n)
            latency.add_metric([route, method], _cumulative(c.buckets), c.total_seconds)
            received[route] = received.get(route, 0) + c.received_bytes
            sent[route] = sent.get(route, 0) + c.sent_bytes
        return [
            requests,
            latency,
            _by_route(
                "seawall_registry_received_bytes",
                "Request body bytes received, by route family.",
                received,
            ),
            _by_route(
                "seawall_registry_sent_bytes",
                "Response body bytes sent (a file handed to the server counts its length), by "
                "route family.",
                sent,
            ),
        ]


def _by_route(name: str, text: str, values: dict[str, int]) -> Metric:
    family = CounterMetricFamily(name, text, labels=["route"])
    for route, n in sorted(values.items()):
        family.add_metric([route], n)
    return family


def _cumulative(buckets: Sequence[int]) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, n in zip((*LATENCY_BUCKETS_SECONDS, float("inf")), buckets, strict=True):
        running += n
        out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
    return out


class RequestMetrics:
    """Counts requests as they are answered. One event loop owns it: no locks.
    :meth:`collect` makes it a :class:`MetricsSource` of its own.

    The registry's own routes report their :class:`Response` (:meth:`answered`); anything
    else (the management API) runs inside :meth:`track`, which watches what it sends.
    """

    def __init__(self) -> None:
        self.counts = RequestCounts()
        # (path, method) -> its counts, so that a path seen before costs one lookup; bounded
        self._by_path: dict[tuple[str, str], RouteCounts] = {}

    def counting(self, scope: Scope, receive: Receive) -> CountedReceive | None:
        """``receive`` counting body bytes, for a request that may have a body (None for
        GET and HEAD: nothing to count)."""
        method = scope["method"]
        return None if method == "GET" or method == "HEAD" else CountedReceive(receive)

    def answered(
        self,
        scope: Scope,
        response: Response | None,
        started: float,
        received: CountedReceive | None = None,
    ) -> None:
        """Count a request the registry answered with ``response`` (None: it raised before
        answering, which the server answers ``500``); ``started``: its ``perf_counter``."""
        seconds = time.perf_counter() - started
        method: str = scope["method"]
        c = self._by_path.get((scope["path"], method)) or self._counts_of(scope["path"], method)
        if response is None:
            status, sent = 500, 0
        else:
            status = response.status
            sent = 0 if response.head or method == "HEAD" else _length(response)
        c.statuses[status] = c.statuses.get(status, 0) + 1
        c.buckets[bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1
        c.total_seconds += seconds
        c.sent_bytes += sent
        if received is not None:
            c.received_bytes += received.bytes

    def _counts_of(self, path: str, method: str) -> RouteCounts:
        """The counts a path's requests go to (remembered for the next request to it)."""
        key = (route_family(path), method if method in _METHODS else "other")
        c = self.counts.routes.get(key)
        if c is None:
            c = self.counts.routes[key] = RouteCounts()
        if len(self._by_path) >= _PATHS_REMEMBERED:
            self._by_path.clear()
        self._by_path[(path, method)] = c
        return c

    async def track(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        started: float | None = None,
    ) -> None:
        """Run ``app`` for one HTTP request and count it from the messages it sends."""
        started = time.perf_counter() if started is None else started
        tracker = _Tracker(send)
        counted = self.counting(scope, receive)
        try:
            await app(scope, counted or receive, tracker.send)
        finally:
            self.observe(
                route_family(scope["path"]),
                scope["method"],
                tracker.status,
                time.perf_counter() - started,
                counted.bytes if counted else 0,
                tracker.sent,
            )

    def observe(
        self,
        route: str,
        method: str,
        status: int,
        seconds: float,
        received_bytes: int,
        sent_bytes: int,
    ) -> None:
        key = (route, method if method in _METHODS else "other")
        c = self.counts.routes.get(key)
        if c is None:
            c = self.counts.routes[key] = RouteCounts()
        c.statuses[status] = c.statuses.get(status, 0) + 1
        c.buckets[bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)] += 1
        c.total_seconds += seconds
        c.received_bytes += received_bytes
        c.sent_bytes += sent_bytes

    async def collect(self) -> Sequence[Metric]:
        return self.counts.families()


_PATHS_REMEMBERED = 4096  # (path, method) pairs whose counts are found in one lookup


def _length(response: Response) -> int:
    """The body bytes a response sends: its body, or the length its file or stream declares."""
    if response.file_path is None and response.stream is None:
        return len(response.body)
    declared = response.headers.get("Content-Length", "")
    return int(declared) if declared.isdigit() else 0


class CountedReceive:
    """An ASGI ``receive`` that counts the request body bytes it hands on."""

    __slots__ = ("bytes", "receive")

    def __init__(self, receive: Receive) -> None:
        self.receive, self.bytes = receive, 0

    async def __call__(self) -> dict[str, Any]:
        message = await self.receive()
        if message["type"] == "http.request":
            self.bytes += len(message.get("body", b""))
        return message


class _Tracker:
    """An ASGI ``send`` noting the status and the body bytes; it hands the server's own
    awaitable back (no extra coroutine per message)."""

    __slots__ = ("_send", "headers", "sent", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status, self.sent = 500, 0
        self.headers: Iterable[tuple[bytes, bytes]] = ()

    def send(self, message: dict[str, Any]) -> Awaitable[None]:
        kind = message["type"]
        if kind == "http.response.body":
            self.sent += len(message.get("body", b""))
        elif kind == "http.response.start":
            self.status, self.headers = message["status"], message.get("headers", ())
        elif kind == "http.response.pathsend":
            self.sent += next((int(v) for k, v in self.headers if k == b"content-length"), 0)
        return self._send(message)


class MetricsSource(Protocol):
    """Something ``/metrics`` shows: its families, computed when asked (at each scrape)."""

    async def collect(self) -> Sequence[Metric]: ...


@dataclass(frozen=True)
class Metrics:
    """What the app needs for metrics: the recorder on the request path, the sources
    ``/metrics`` shows (the requests' own among them), and whether it needs credentials."""

    requests: RequestMetrics
    sources: tuple[MetricsSource, ...]
    public: bool = False


async def metrics_response(ctx: RegistryContext, req: Request, metrics: Metrics) -> Response:
    """``GET /metrics``, in the format the ``Accept`` header picks (Prometheus' text format
    0.0.4 by default). A source that fails is left out (and logged): the rest still shows.

    :raises RegistryError: ``401``/``403`` as the module docstring says, ``405`` for a method
        other than GET and HEAD.
    """
    if req.method not in ("GET", "HEAD"):
        raise RegistryError("UNSUPPORTED", {"method": req.method}, status=405)
    if not metrics.public:
        await _require_admin(ctx, req)
    families: list[Metric] = []
    for source in metrics.sources:
        try:
            families.extend(await source.collect())
        except Exception:
            log.exception("metrics: %s failed; left out of this scrape", type(source).__name__)
    # the text format (0.0.4) unless the scraper asks for OpenMetrics or text 1.0.0
    encode, content_type = choose_encoder(req.headers.get("accept", ""))
    body = await anyio.to_thread.run_sync(encode, _Families(families))
    return Response(200, {"Content-Type": content_type}, body)


async def _require_admin(ctx: RegistryContext, req: Request) -> None:
    challenge = {"WWW-Authenticate": f'Basic realm="{ctx.options.token_service}"'}
    header = req.headers.get("authorization", "")
    if header[:6].lower() != "basic ":
        raise RegistryError(
            "UNAUTHORIZED",
            message="metrics need an administrator's credentials (HTTP Basic)",
            headers=challenge,
        )
    account = await login(ctx, header, req.client_host)  # throttled: 429 TOOMANYREQUESTS
    if account is None:
        raise RegistryError(
            "UNAUTHORIZED", message="invalid username or password", headers=challenge
        )
    if account.kind != "admin":
        raise RegistryError(
            "DENIED", {"account": account.name}, message="metrics need an administrator"
        )


class _Families:
    """The collector ``generate_latest`` renders: families already computed."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families
