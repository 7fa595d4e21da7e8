"""Proxy-cache namespaces: a repository ``NAMESPACE/<upstream repository>`` pulls through from
the registry endpoint ``NAMESPACE`` is bound to, and is served from here after
(:class:`ProxyCache`).

One pull-through mechanism: the content goes through
:class:`~registry.http.read_through.ReadThrough` (verified, stored by digest with no outbox
event, manifests pending until their references are here, single flight, bounded); this
module adds what a cache of someone else's registry needs on top:

* **Tags are kept** (:class:`~registry.meta.proxy_tags.ProxyTagStore`, durably): tag → digest
  and when the upstream last named it. Within the namespace's TTL a pull by tag asks the
  upstream nothing. After it, the tag is revalidated with one upstream ``HEAD``: the same
  digest refreshes the time; a new digest is fetched (by digest) and the tag moves; "not
  found" forgets the tag (the upstream is the authority on its tags). Pulls by digest and
  blobs never revalidate (content-addressed). Concurrent revalidations of one tag share one
  ``HEAD`` (:class:`~registry.http.upstream.SingleFlight`).
* **Stale-if-error**: when the upstream cannot answer the revalidation (down, 5xx, timed out,
  429, refused us), the cached digest is served and the serving is logged and counted
  (:attr:`ProxyCacheStats.stale_served`; in ``/metrics``
  ``seawall_proxy_cache_stale_served_total``). Content never cached answers ``503``.
* **Evictable**: what is deleted here (the management API's repository delete) is fetched
  again at the next pull — unlike region read-through, which keeps a deletion from coming back.
* **Read-only**: a client's write into a namespace (manifest ``PUT``, blob upload, mount into
  it, ``DELETE``) is refused with ``DENIED`` naming the endpoint (:func:`refusal`).
* **Mirror routing** (containerd's ``?ns=``, :meth:`ProxyCache.mirror_path`): a pull of
  ``/v2/<name>/…?ns=<upstream host>`` is a pull of ``NAMESPACE/<name>`` in the namespace whose
  endpoint is that host.

The registry does not know endpoints: :class:`ProxyNamespaces` (which namespaces exist) and
:class:`ProxyUpstream` (the fetching) are declared here and wired in ``seawall.proxy_cache``.
Unlike region read-through, a pull by a Seawall client (``User-Agent: seawall/…``) pulls
through too: a proxy namespace maps ``NAMESPACE/x`` to ``x`` upstream, so a chain of caches
shortens the name at every hop and cannot loop forever.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from prometheus_client.core import CounterMetricFamily, Metric

from registry.http.read_through import ReadThrough, ReadThroughOptions
from registry.http.upstream import SingleFlight, Upstream, UpstreamError
from registry.meta.content import ContentStore, ManifestRecord
from registry.meta.proxy_tags import ProxyTagRecord, ProxyTagStore
from registry.oci.digest import Digest
from registry.oci.errors import RegistryError
from registry.storage.blobs import BlobStore

__all__ = [
    "ProxyCache",
    "ProxyCacheStats",
    "ProxyNamespace",
    "ProxyNamespaces",
    "ProxyUpstream",
    "refusal",
]

log = logging.getLogger("seawall.registry.proxy_cache")

_MIRRORED = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)$")


@dataclass(frozen=True, slots=True)
class ProxyNamespace:
    """A proxy-cache namespace: its name (one repository path component), the endpoint it
    pulls through from (name and adapter type, for messages and name rules), how long a tag is
    believed without asking (``ttl_seconds``)."""

    name: str
    endpoint: str
    endpoint_type: str
    ttl_seconds: float


class ProxyNamespaces(Protocol):
    """Which namespaces are proxy caches (``seawall.proxy_cache`` implements it). Both lookups
    must be cheap (they run on every request): cached for a few seconds."""

    async def get(self, name: str) -> ProxyNamespace | None:
        """The namespace called ``name`` (a repository's first path component), or None."""
        ...

    async def for_host(self, host: str) -> ProxyNamespace | None:
        """The namespace whose endpoint is at ``host`` (a ``?ns=`` value), or None."""
        ...


class ProxyUpstream(Upstream, Protocol):
    """:class:`~registry.http.upstream.Upstream` for proxy namespaces (``repo`` is this
    registry's name, ``NAMESPACE/…``), plus the one ``HEAD`` a revalidation costs."""

    async def head_manifest(self, repo: str, tag: str) -> str | None:
        """The digest ``tag`` of ``repo`` names upstream now (None: not found there; an empty
        string: found, but the upstream announced no digest).

        :raises UpstreamError: the upstream could not answer (down, 5xx, 429, refused us).
        """
        ...


@dataclass(frozen=True, slots=True)
class ProxyCacheStats:
    """Counters since start: revalidations (upstream ``HEAD``s) and how they ended, cached
    content served because the upstream could not answer, pull-through fetches made."""

    revalidations: int
    unchanged: int
    moved: int
    stale_served: int
    manifest_fetches: int
    blob_fetches: int


def refusal(ns: ProxyNamespace, repo: str) -> RegistryError:
    """The ``DENIED`` answer to a client's write into a proxy namespace."""
    return RegistryError(
        "DENIED",
        {"repository": repo, "proxy_cache": ns.name, "registry": ns.endpoint},
        message=f"{ns.name} is a proxy cache of {ns.endpoint}: it is read-only here "
        f"(push to {ns.endpoint} instead)",
    )


class ProxyCache:
    def __init__(
        self,
        namespaces: ProxyNamespaces,
        upstream: ProxyUpstream,
        content: ContentStore,
        blobs: BlobStore,
        tags: ProxyTagStore,
        options: ReadThroughOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: wall-clock seconds (the tags' ``validated_at``, stored durably);
        ``monotonic``: the in-memory timers of the read-through underneath."""
        self.namespaces, self.upstream, self.tags, self.clock = namespaces, upstream, tags, clock
        self.content = content
        # tags are this module's: the read-through's own tag memory only bridges one fetch; a
        # deletion here is an eviction, not a decision to keep from the upstream: no window
        o = dataclasses.replace(
            options or ReadThroughOptions(), tag_seconds=1.0, removed_window_seconds=0.0
        )
        self.reads = ReadThrough(upstream, content, blobs, o, clock=monotonic)
        self.call_max_seconds = o.call_max_seconds
        self._flights: SingleFlight[tuple[str, str], ManifestRecord | None] = SingleFlight()
        self._counts = dict.fromkeys(("revalidations", "unchanged", "moved", "stale_served"), 0)

    def stats(self) -> ProxyCacheStats:
        rt = self.reads.stats()
        return ProxyCacheStats(
            **self._counts, manifest_fetches=rt.manifest_fetches, blob_fetches=rt.blob_fetches
        )

    async def collect(self) -> Sequence[Metric]:
        """The counters for ``/metrics`` (a :class:`~registry.http.metrics.MetricsSource`):
        this process's, labelled with its ``pid`` (each worker counts its own)."""
        stats, pid = self.stats(), str(os.getpid())
        asked = CounterMetricFamily(
            "seawall_proxy_cache_upstream_requests",
            "Requests proxy-cache namespaces made upstream, by kind",
            labels=["kind", "pid"],
        )
        for kind, n in (
            ("manifest", stats.manifest_fetches),
            ("blob", stats.blob_fetches),
            ("revalidation", stats.revalidations),
        ):
            asked.add_metric([kind, pid], n)
        stale = CounterMetricFamily(
            "seawall_proxy_cache_stale_served",
            "Cached tags served because the upstream could not revalidate them",
            labels=["pid"],
        )
        stale.add_metric([pid], stats.stale_served)
        return [asked, stale]

    # ------------------------------------------------------------------ namespaces
    async def namespace_of(self, repo: str) -> ProxyNamespace | None:
        """The proxy namespace ``repo`` is in (None: an ordinary repository)."""
        first, sep, _ = repo.partition("/")
        return await self.namespaces.get(first) if sep else None

    async def mirror_path(self, path: str, host: str) -> str | None:
        """``path`` (``/v2/<name>/manifests|blobs/<ref>``) in the namespace whose endpoint is
        ``host`` (a containerd ``?ns=``), or None when none is (the request goes on as sent)."""
        m = _MIRRORED.match(path)
        if m is None or not host or len(host) > 255:
            return None
        ns = await self.namespaces.for_host(host)
        if ns is None:
            return None
        return f"/v2/{ns.name}/{m['name']}/{m['kind']}/{m['ref']}"

    # ------------------------------------------------------------------ manifests
    async def manifest(
        self, ns: ProxyNamespace, repo: str, reference: str
    ) -> ManifestRecord | None:
        """Manifest ``reference`` of ``repo`` (in ``ns``): from here when held (by digest:
        always; by tag: within the TTL, or when the upstream cannot say otherwise), else from
        the upstream. None when the upstream has no such manifest.

        :raises RegistryError: ``UNAVAILABLE`` when it is not here and the upstream failed.
        """
        if ":" in reference:
            return await self._here(repo, reference) or await self.reads.manifest(repo, reference)
        cached = await self.tags.get(repo, reference)
        if cached is not None and self.clock() - cached.validated_at < ns.ttl_seconds:
            record = await self._here(repo, cached.digest)
            if record is not None:
                return record
        key = (repo, reference)
        return await self._flights.run(key, lambda: self._resolve(ns, repo, reference))

    async def _here(self, repo: str, digest: str) -> ManifestRecord | None:
        """The manifest ``digest`` stored in ``repo``, or verified and waiting for its
        references."""
        found = await self.content.get_manifest(repo, digest)
        if found is not None:
            return found
        waiting = self.reads.pending.get(repo, digest)
        return None if waiting is None else waiting.record

    async def _resolve(self, ns: ProxyNamespace, repo: str, tag: str) -> ManifestRecord | None:
        cached = await self.tags.get(repo, tag)  # a flight that ended a moment ago?
        if cached is None:
            return await self._first(repo, tag)
        held = await self._here(repo, cached.digest)
        if held is not None and self.clock() - cached.validated_at < ns.ttl_seconds:
            return held
        return await self._revalidate(repo, tag, cached, held)

    async def _first(self, repo: str, tag: str) -> ManifestRecord | None:
        """A tag never seen: one manifest ``GET`` by tag, through the read-through."""
        asked_at = self.clock()
        record = await self.reads.manifest(repo, tag)
        if record is not None:
            await self.tags.put(repo, tag, record.digest, asked_at)
        return record

    async def _revalidate(
        self, repo: str, tag: str, cached: ProxyTagRecord, held: ManifestRecord | None
    ) -> ManifestRecord | None:
        """One ``HEAD`` upstream: same digest → refresh the time; another → fetch it and move
        the tag; not found → forget the tag; no answer → serve what is held (stale-if-error)."""
        asked_at = self.clock()
        self._counts["revalidations"] += 1
        try:
            with anyio.fail_after(self.call_max_seconds):
                digest = await self.upstream.head_manifest(repo, tag)
        except (UpstreamError, TimeoutError) as e:
            return self._stale(repo, tag, held, e)
        if digest is None:
            log.info("proxy cache: %s:%s is gone upstream; forgotten here", repo, tag)
            await self.tags.drop(repo, tag)
            return None
        if digest == cached.digest and held is not None:
            self._counts["unchanged"] += 1
            await self.tags.put(repo, tag, digest, asked_at)
            return held
        try:  # moved (or announced without a digest, or not held any more): fetch
            if digest:
                record = await self._here(repo, digest) or await self.reads.manifest(repo, digest)
            else:
                record = await self.reads.manifest(repo, tag)
        except RegistryError as e:
            return self._stale(repo, tag, held, e)
        if record is None:
            return self._stale(repo, tag, held, UpstreamError(f"{digest} vanished upstream"))
        self._counts["moved" if record.digest != cached.digest else "unchanged"] += 1
        await self.tags.put(repo, tag, record.digest, asked_at)
        return record

    def _stale(
        self, repo: str, tag: str, held: ManifestRecord | None, error: BaseException
    ) -> ManifestRecord:
        if held is None:
            raise RegistryError(
                "UNAVAILABLE",
                {"reason": "the proxy cache's upstream could not be read"},
                message="the upstream registry could not be read and this proxy cache holds "
                "nothing for this reference; retry shortly",
            ) from None
        self._counts["stale_served"] += 1
        log.warning(
            "proxy cache: serving %s:%s (%s) stale: the upstream did not answer: %s",
            repo,
            tag,
            held.digest,
            error or "timed out",
        )
        return held

    # ------------------------------------------------------------------ blobs
    async def blob(self, repo: str, digest: Digest) -> int | None:
        """Blob ``digest`` of ``repo`` pulled through (verified, stored, linked); its size, or
        None when the upstream has no such blob. :raises RegistryError: ``UNAVAILABLE``."""
        return await self.reads.blob(repo, digest)
