"""Proxy-cache namespaces wired to the registry: which namespaces exist and where their
endpoints are (:class:`StoredNamespaces`, the registry's
:class:`~registry.http.proxy_cache.ProxyNamespaces`), and the fetching from those endpoints
(:class:`EndpointUpstream`, its :class:`~registry.http.proxy_cache.ProxyUpstream`), through
each endpoint's shared adapter and client (``EndpointClients``: the same client, tokens,
connections and limits replication uses).

A revalidation ``HEAD`` waits at most ``head_timeout_seconds`` (a cached answer is ready), and a
manifest request or ``HEAD`` to an endpoint whose TCP connection fails is given up at once
(:func:`seawall.read_through.watched`: a dead upstream costs no timeout). An endpoint that
failed to answer (unreachable, 5xx, 429, timed out) is not asked again for
:data:`DOWN_SECONDS`: the first pull after an outage waits out one timeout at most (none when
the endpoint refuses connections), the ones after it are served from the cache at once
(stale-if-error) or answered ``503`` at once.

Names: ``NAMESPACE/<rest>`` is ``<rest>`` at the endpoint; at a ``docker-hub`` endpoint a
one-component ``<rest>`` is ``library/<rest>`` (Docker Hub's official images).

Hosts (containerd's ``?ns=``): a namespace's host is its endpoint URL's ``host[:port]``,
lowercase, without the scheme's default port; ``docker.io``, ``index.docker.io``,
``registry-1.docker.io`` and ``registry.hub.docker.com`` are one host. With two namespaces on
one host, the first by name answers.

The namespaces are read from the database at most every :data:`NAMESPACES_TTL_SECONDS` (a
change through the API reaches every worker within that).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio

from adapters.oci.errors import DigestMismatch, NotFound, OciError, Transient
from engine.proxy_cache.store import ProxyCacheStore
from registry.http.context import RegistryContext
from registry.http.proxy_cache import ProxyCache, ProxyNamespace
from registry.http.read_through import ReadThroughOptions
from registry.http.upstream import FetchedManifest, UpstreamBlob, UpstreamCorrupt, UpstreamError
from registry.meta.db import Database
from registry.meta.proxy_tags import ProxyTagStore
from seawall.config import Settings
from seawall.read_through import AdapterBlob, AdapterFactory, watched

__all__ = [
    "DOCKER_HUB_HOSTS",
    "DOWN_SECONDS",
    "NAMESPACES_TTL_SECONDS",
    "EndpointUpstream",
    "StoredNamespaces",
    "build_proxy_cache",
    "host_of",
    "upstream_name",
]

log = logging.getLogger("seawall.proxy_cache")

NAMESPACES_TTL_SECONDS = 2.0
#: How long an endpoint that failed to answer (unreachable, 5xx, 429, timed out) is not asked:
#: meanwhile the cache serves what it holds at once instead of waiting out a timeout per pull.
DOWN_SECONDS = 15.0
DOCKER_HUB = "docker-hub"
DOCKER_HUB_HOSTS = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)
_DEFAULT_PORTS = {"https": 443, "http": 80}


def host_of(value: str) -> str:
    """The host a URL or a ``?ns=`` value names, as compared: lowercase ``host[:port]``
    without a default port; every Docker Hub alias is ``docker.io``."""
    parts = urlsplit(value if "://" in value else f"https://{value}")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if host in DOCKER_HUB_HOSTS:
        return "docker.io"
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme):
        return host
    return f"{host}:{port}"


def upstream_name(endpoint_type: str, rest: str) -> str:
    """The upstream repository of ``NAMESPACE/<rest>`` at an endpoint of ``endpoint_type``."""
    if endpoint_type == DOCKER_HUB and "/" not in rest:
        return f"library/{rest}"
    return rest


@dataclass(frozen=True, slots=True)
class _Bound:
    namespace: ProxyNamespace
    registry_id: int
    host: str


class StoredNamespaces:
    """The proxy-cache namespaces in the database, re-read at most every
    :data:`NAMESPACES_TTL_SECONDS` (while a re-read fails, the last answer)."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.clock = ProxyCacheStore(db), clock
        self._by_name: dict[str, _Bound] = {}
        self._read_at: float | None = None
        self._lock = anyio.Lock()

    async def _fresh(self) -> dict[str, _Bound]:
        if self._read_at is not None and (
            self.clock() - self._read_at < NAMESPACES_TTL_SECONDS or self._lock.locked()
        ):
            return self._by_name  # fresh, or being re-read: the last answer meanwhile
        async with self._lock:  # one re-read at a time; the others use its answer
            if self._read_at is None or self.clock() - self._read_at >= NAMESPACES_TTL_SECONDS:
                try:
                    self._by_name = {
                        r.name: _Bound(
                            ProxyNamespace(r.name, r.endpoint_name, r.endpoint_type, r.ttl_seconds),
                            r.registry_id,
                            host_of(r.endpoint_url),
                        )
                        for r in await self.store.all()
                        if r.endpoint_name and r.endpoint_type and r.endpoint_url
                    }
                except Exception as e:  # never a 500 because of this: the last answer holds
                    log.warning("proxy cache: cannot read the namespaces: %s", e)
                self._read_at = self.clock()
        return self._by_name

    async def bound(self, name: str) -> _Bound | None:
        return (await self._fresh()).get(name)

    async def get(self, name: str) -> ProxyNamespace | None:
        found = await self.bound(name)
        return None if found is None else found.namespace

    async def for_host(self, host: str) -> ProxyNamespace | None:
        wanted = host_of(host)
        for name in sorted(found := await self._fresh()):
            if found[name].host == wanted:
                return found[name].namespace
        return None


class EndpointUpstream:
    """Fetches what a proxy namespace lacks from its endpoint; each call bounded by
    ``timeout_seconds``. "Not found" is None; anything else that stops an answer (down, 5xx,
    429, refused, timed out) is :class:`UpstreamError`, so the cache can serve stale."""

    def __init__(
        self,
        adapters: AdapterFactory,
        namespaces: StoredNamespaces,
        *,
        timeout_seconds: float,
        head_timeout_seconds: float | None = None,
        down_seconds: float = DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.adapters, self.namespaces, self.timeout_seconds = adapters, namespaces, timeout_seconds
        self.head_timeout_seconds = head_timeout_seconds or timeout_seconds
        self.down_seconds, self.clock = down_seconds, clock
        self._down_until: dict[int, float] = {}

    async def _where(self, repo: str) -> tuple[int, str, str]:
        """(endpoint id, upstream repository, a label for logs) of ``repo``.

        :raises UpstreamError: no such namespace, or its endpoint failed a moment ago."""
        first, _, rest = repo.partition("/")
        bound = await self.namespaces.bound(first)
        if bound is None or not rest:
            raise UpstreamError(f"{repo}: no proxy cache namespace {first!r} (removed?)")
        name = upstream_name(bound.namespace.endpoint_type, rest)
        label = f"{bound.namespace.endpoint} ({name})"
        if self._down_until.get(bound.registry_id, 0.0) > self.clock():
            raise UpstreamError(f"{label}: failed less than {self.down_seconds:g}s ago; not asked")
        return bound.registry_id, name, label

    def _failed(self, endpoint: int, label: str, what: str, e: BaseException) -> UpstreamError:
        """The error to raise for ``e``; an endpoint that did not answer is passed over for
        ``down_seconds``."""
        if isinstance(e, Transient | TimeoutError):
            self._down_until[endpoint] = self.clock() + self.down_seconds
        return UpstreamError(f"{label}: {what}: {e or 'timed out'}")

    async def fetch_manifest(self, repo: str, reference: str) -> FetchedManifest | None:
        endpoint, name, label = await self._where(repo)
        try:
            with anyio.fail_after(self.timeout_seconds):
                async with self.adapters(endpoint) as adapter:
                    client = adapter.client()
                    m = await watched(
                        adapter.registry_url(), lambda: client.get_manifest(name, reference)
                    )
        except NotFound:
            return None
        except DigestMismatch as e:
            raise UpstreamCorrupt(f"{label}: {e}") from None
        except (OciError, TimeoutError, LookupError) as e:
            raise self._failed(endpoint, label, f"manifest {reference}", e) from None
        return FetchedManifest(m.data, m.media_type, m.digest, source=label)

    async def head_manifest(self, repo: str, tag: str) -> str | None:
        endpoint, name, label = await self._where(repo)
        try:  # a cached answer is waiting: a revalidation is not worth a long wait
            with anyio.fail_after(self.head_timeout_seconds):
                async with self.adapters(endpoint) as adapter:
                    client = adapter.client()
                    found = await watched(
                        adapter.registry_url(), lambda: client.head_manifest(name, tag)
                    )
        except NotFound:
            return None
        except (OciError, TimeoutError, LookupError) as e:
            raise self._failed(endpoint, label, f"HEAD {tag}", e) from None
        return None if found is None else (found.digest or "")

    @asynccontextmanager
    async def open_blob(self, repo: str, digest: str) -> AsyncIterator[UpstreamBlob | None]:
        endpoint, name, label = await self._where(repo)
        async with AsyncExitStack() as stack:
            try:
                with anyio.fail_after(self.timeout_seconds):
                    adapter = await stack.enter_async_context(self.adapters(endpoint))
                    reader = await stack.enter_async_context(
                        adapter.client().blob_stream(name, digest)
                    )
            except NotFound:
                reader = None
            except (OciError, TimeoutError, LookupError) as e:
                raise self._failed(endpoint, label, f"blob {digest}", e) from None
            yield None if reader is None else AdapterBlob(reader, label)


def build_proxy_cache(
    settings: Settings, context: RegistryContext, adapters: AdapterFactory, db: Database
) -> ProxyCache | None:
    """The registry's proxy cache from the ``proxy_cache`` settings (None: off)."""
    pc = settings.proxy_cache
    if not pc.enabled:
        return None
    namespaces = StoredNamespaces(db)
    upstream = EndpointUpstream(
        adapters,
        namespaces,
        timeout_seconds=pc.timeout_seconds,
        head_timeout_seconds=min(pc.revalidate_timeout_seconds, pc.timeout_seconds),
    )
    options = ReadThroughOptions(
        timeout_seconds=pc.timeout_seconds,
        max_concurrent_fetches=pc.max_concurrent_fetches,
        max_manifest_bytes=settings.max_manifest_bytes,
    )
    tags = ProxyTagStore(context.content.sql)
    return ProxyCache(namespaces, upstream, context.content, context.blobs, tags, options)
