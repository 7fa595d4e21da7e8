"""Read-through between regions: what this registry is asked for and does not hold yet is read
from the other regions' registries (:class:`RegionUpstream`, the registry's
:class:`~registry.http.upstream.Upstream`), so a pull never fails because replication is
still on its way.

The regions are tried in order, each through its endpoint's adapter and that adapter's one
client (:class:`~seawall.replication.EndpointClients`: the same client, tokens, connections
and limits replication uses). Per region, one call is bounded by ``timeout_seconds``; "not
found", a refusal (401/403) or bad bytes move on to the next region; a region that failed to
answer (unreachable, timed out, 5xx, 429) is passed over for :data:`DOWN_SECONDS`, then asked
again only once a TCP connection to it opens. A region that has just died costs no request's
wait at all: while a manifest is asked for, a TCP connection to the region is opened beside it,
and when none opens within :data:`PROBE_SECONDS` (refused: at once) the request is given up and
the next region asked — the client's own retries of a refused connection would otherwise hold
the pull for up to ``timeout_seconds``. A blob is opened after the same probe, unless the
region answered within :data:`FRESH_SECONDS` (a blob follows its manifest).

Which regions: the registry endpoints named by the ``read_through.registries`` setting, else
the regions this Seawall knows (``engine.regions``: every declared region's endpoint, by region
name).

What the registry does with the answer — verify, store, single flight, no outbox event, the
recursion guard — is in :mod:`registry.http.read_through` and :mod:`registry.http.upstream`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TypeVar

import anyio
from sqlalchemy import select

from adapters.base import RegistryAdapter
from adapters.oci.errors import ConnectionFailed, DigestMismatch, NotFound, OciError, Transient
from adapters.protocol import BlobReader
from engine.netguard import connect_problem
from engine.regions.store import RegionStore
from engine.state.models import RegistryEndpoint
from registry.http.context import RegistryContext
from registry.http.read_through import ReadThrough, ReadThroughOptions
from registry.http.upstream import FetchedManifest, UpstreamBlob, UpstreamCorrupt, UpstreamError
from registry.meta.db import Database
from seawall.config import Settings

__all__ = [
    "DOWN_SECONDS",
    "FRESH_SECONDS",
    "PROBE_SECONDS",
    "AdapterBlob",
    "AdapterFactory",
    "EndpointsProvider",
    "RegionUpstream",
    "build_read_through",
    "connects",
    "named_endpoints",
    "region_endpoints",
    "watched",
]

log = logging.getLogger("seawall.read_through")

#: How long a region that failed to answer is passed over.
DOWN_SECONDS = 30.0
#: How long a TCP connection may take to open before a region that failed stays passed over.
PROBE_SECONDS = 1.0
#: How long after a region's last answer a blob is opened there without a TCP probe first.
FRESH_SECONDS = 2.0
#: How long the endpoint ids a provider found are used before it looks again.
ENDPOINTS_TTL_SECONDS = 5.0

#: The endpoint's shared adapter while in the block (``EndpointClients.__call__``).
AdapterFactory = Callable[[int], AbstractAsyncContextManager[RegistryAdapter]]
#: The registry endpoint ids to read through, in order.
EndpointsProvider = Callable[[], Awaitable[Sequence[int]]]

T = TypeVar("T")
E = RegistryEndpoint.__table__  # type: ignore[attr-defined]


class AdapterBlob:
    """An upstream blob for the registry: :class:`BlobReader`'s bytes, errors translated."""

    def __init__(self, reader: BlobReader, source: str) -> None:
        self.reader, self.source = reader, source
        self.size_bytes = reader.size_bytes

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.reader.iter_chunks():
                yield chunk
        except OciError as e:
            raise UpstreamError(f"{self.source}: {e}") from e


class RegionUpstream:
    """:class:`~registry.http.upstream.Upstream` over other regions' registries, in order."""

    def __init__(
        self,
        adapters: AdapterFactory,
        endpoints: EndpointsProvider,
        *,
        timeout_seconds: float = 10.0,
        down_seconds: float = DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapters, self.endpoints = adapters, endpoints
        self.timeout_seconds, self.down_seconds, self.clock = timeout_seconds, down_seconds, clock
        self._down_until: dict[int, float] = {}
        self._answered_at: dict[int, float] = {}

    async def _candidates(self) -> list[int]:
        now = self.clock()
        return [e for e in await self.endpoints() if self._down_until.get(e, 0.0) <= now]

    def _failed(self, endpoint: int, what: str, e: BaseException) -> None:
        if isinstance(e, Transient | TimeoutError):
            self._down_until[endpoint] = self.clock() + self.down_seconds
            log.warning(
                "read-through: endpoint %d passed over for %gs: %s: %s",
                endpoint,
                self.down_seconds,
                what,
                e or "timed out",
            )
        else:
            log.warning("read-through: endpoint %d: %s: %s", endpoint, what, e)

    async def _back(self, endpoint: int, adapter: RegistryAdapter) -> bool:
        """Whether to ask ``endpoint``: yes, unless it failed before — then only once a TCP
        connection to it opens within :data:`PROBE_SECONDS` (a region that is still down costs
        a refused connection, not a request's whole timeout of retries)."""
        if endpoint not in self._down_until:
            return True
        if await connects(adapter.registry_url()):
            del self._down_until[endpoint]
            return True
        self._down_until[endpoint] = self.clock() + self.down_seconds
        return False

    def _answered(self, endpoint: int) -> None:
        self._answered_at[endpoint] = self.clock()

    async def _probed(self, endpoint: int, adapter: RegistryAdapter) -> None:
        """Unless ``endpoint`` answered within :data:`FRESH_SECONDS`: raise
        :class:`ConnectionFailed` when no TCP connection to it opens."""
        answered = self._answered_at.get(endpoint)
        if answered is not None and self.clock() - answered < FRESH_SECONDS:
            return
        problem = await connect_problem(adapter.registry_url(), PROBE_SECONDS)
        if problem is not None:
            raise ConnectionFailed(problem)

    async def fetch_manifest(self, repo: str, reference: str) -> FetchedManifest | None:
        corrupt: list[str] = []
        for endpoint in await self._candidates():
            try:
                with anyio.fail_after(self.timeout_seconds):
                    async with self.adapters(endpoint) as adapter:
                        if not await self._back(endpoint, adapter):
                            continue
                        client = adapter.client()
                        m = await watched(
                            adapter.registry_url(),
                            lambda c=client: c.get_manifest(repo, reference),
                        )
                self._answered(endpoint)
            except NotFound:
                self._answered(endpoint)
                continue
            except DigestMismatch as e:
                corrupt.append(f"endpoint {endpoint}: {e}")
                self._failed(endpoint, f"manifest {repo}:{reference}", e)
                continue
            except (OciError, TimeoutError, LookupError) as e:
                self._failed(endpoint, f"manifest {repo}:{reference}", e)
                continue
            return FetchedManifest(m.data, m.media_type, m.digest, source=f"endpoint {endpoint}")
        if corrupt:
            raise UpstreamCorrupt("; ".join(corrupt))
        return None

    @asynccontextmanager
    async def open_blob(self, repo: str, digest: str) -> AsyncIterator[UpstreamBlob | None]:
        async with AsyncExitStack() as stack:
            for endpoint in await self._candidates():
                attempt = AsyncExitStack()
                try:
                    with anyio.fail_after(self.timeout_seconds):
                        adapter = await attempt.enter_async_context(self.adapters(endpoint))
                        if not await self._back(endpoint, adapter):
                            await attempt.aclose()
                            continue
                        await self._probed(endpoint, adapter)
                        opening = adapter.client().blob_stream(repo, digest)
                        reader = await attempt.enter_async_context(opening)
                except BaseException as e:
                    with anyio.CancelScope(shield=True):
                        await attempt.aclose()
                    if not isinstance(e, OciError | TimeoutError | LookupError):
                        raise
                    if isinstance(e, NotFound):
                        self._answered(endpoint)
                    else:
                        self._failed(endpoint, f"blob {digest} of {repo}", e)
                    continue
                self._answered(endpoint)
                await stack.enter_async_context(attempt)
                yield AdapterBlob(reader, f"endpoint {endpoint}")
                return
            yield None


async def watched(url: str, call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` (a request to the registry at ``url``), given up with
    :class:`ConnectionFailed` as soon as a TCP connection to ``url``, opened beside it, fails
    (refused: at once; silent: within :data:`PROBE_SECONDS`). A pull waiting on a registry
    that has just died would otherwise wait out the client's retries of the refused
    connection."""
    problem: str | None = None
    result: list[T] = []
    failure: Exception | None = None

    async def watch(scope: anyio.CancelScope) -> None:
        nonlocal problem
        problem = await connect_problem(url, PROBE_SECONDS)
        if problem is not None:
            scope.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        try:
            result.append(await call())
        except Exception as e:  # raised below: a task group would wrap it in a group
            failure = e
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    if not result:
        raise ConnectionFailed(problem or "the registry went away")
    return result[0]


async def connects(url: str, seconds: float | None = None) -> bool:
    """Whether a TCP connection to ``url``'s host and port opens within ``seconds`` (default
    :data:`PROBE_SECONDS`); True for a URL that is not HTTP (nothing to connect to)."""
    return await connect_problem(url, PROBE_SECONDS if seconds is None else seconds) is None


def _cached(
    lookup: Callable[[], Awaitable[list[int]]], clock: Callable[[], float]
) -> EndpointsProvider:
    """``lookup``'s answer, asked again once it is :data:`ENDPOINTS_TTL_SECONDS` old (while
    it fails, the last answer)."""
    found: list[int] = []
    looked_at: float | None = None

    async def provider() -> Sequence[int]:
        nonlocal found, looked_at
        if looked_at is None or clock() - looked_at > ENDPOINTS_TTL_SECONDS:
            try:
                found = await lookup()
            except Exception as e:  # a miss stays a miss: never a 500 because of this
                log.warning("read-through: cannot list the upstream endpoints: %s", e)
            looked_at = clock()
        return found

    return provider


def named_endpoints(
    db: Database, names: Sequence[str], *, clock: Callable[[], float] = time.monotonic
) -> EndpointsProvider:
    """The ids of the registry endpoints called ``names``, in that order (names that do not
    exist are left out)."""

    async def lookup() -> list[int]:
        async with db.read() as c:
            rows = await c.execute(select(E.c.id, E.c.name).where(E.c.name.in_(list(names))))
            ids = {name: int(i) for i, name in rows.all()}
        return [ids[n] for n in names if n in ids]

    return _cached(lookup, clock)


def region_endpoints(
    db: Database, *, clock: Callable[[], float] = time.monotonic
) -> EndpointsProvider:
    """The endpoints of the regions this Seawall knows (``seawall region add``), by region
    name; this Seawall's own region has no endpoint and is never among them."""
    store = RegionStore(db)

    async def lookup() -> list[int]:
        return [r.registry_id for r in await store.all() if r.endpoint is not None]

    return _cached(lookup, clock)


def build_read_through(
    settings: Settings, context: RegistryContext, adapters: AdapterFactory, db: Database
) -> ReadThrough | None:
    """The registry's read-through from the ``read_through`` settings (None: off)."""
    rt = settings.read_through
    if not rt.enabled:
        return None
    endpoints = named_endpoints(db, rt.registries) if rt.registries else region_endpoints(db)
    upstream = RegionUpstream(adapters, endpoints, timeout_seconds=rt.timeout_seconds)
    options = ReadThroughOptions(
        timeout_seconds=rt.timeout_seconds,
        max_concurrent_fetches=rt.max_concurrent_fetches,
        max_manifest_bytes=settings.max_manifest_bytes,
    )
    return ReadThrough(upstream, context.content, context.blobs, options)
