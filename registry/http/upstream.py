"""What the registry asks of an upstream it reads through: :class:`Upstream`, and the
:class:`SingleFlight` that makes a herd of identical requests cost one upstream call.

The registry declares this seam and never learns what is behind it: ``seawall.read_through``
answers from the other regions' registries (through their adapters), a proxy-cache namespace
can answer from any endpoint. :mod:`registry.http.read_through` verifies and stores what an
upstream hands back; an upstream only fetches.

Recursion guard: the registry never reads through for a request that Seawall itself sent —
another Seawall reading through, a replication run, a failover check. Every HTTP client Seawall
makes (``adapters.oci``) announces itself with a ``User-Agent`` starting ``seawall/``
(:data:`SEAWALL_AGENT_PREFIX`); such a request is answered from what this registry holds, as if
read-through were off (:func:`may_read_through`). So two Seawalls that read through each other
ask each other at most once per client request, and a replication run's or a check's ``HEAD``
sees what this registry really holds, never what it could fetch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import anyio

from registry.http.asgi import Request

__all__ = [
    "SEAWALL_AGENT_PREFIX",
    "FetchedManifest",
    "SingleFlight",
    "Upstream",
    "UpstreamBlob",
    "UpstreamCorrupt",
    "UpstreamError",
    "may_read_through",
]

#: The ``User-Agent`` prefix of every request Seawall's own clients send.
SEAWALL_AGENT_PREFIX = "seawall/"


def may_read_through(req: Request) -> bool:
    """Whether a miss on this request may be read through: not when Seawall itself sent it."""
    return not req.headers.get("user-agent", "").startswith(SEAWALL_AGENT_PREFIX)


class UpstreamError(Exception):
    """The upstream could not be read (unreachable, timed out, broke off, refused us). The
    message says which upstream and what happened; it is logged, not shown to clients."""


class UpstreamCorrupt(UpstreamError):
    """The upstream's bytes do not hash to the digest they were asked for or announced under."""


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    """A manifest's exact bytes as an upstream served them.

    ``digest``: what the upstream announced (``Docker-Content-Digest``), or None when it
    announced nothing; the registry checks the bytes against it (by tag) or against the
    digest asked for (by digest). ``source``: which upstream answered, for logs.
    """

    data: bytes
    media_type: str
    digest: str | None
    source: str = ""


class UpstreamBlob(Protocol):
    """An open blob download: its size, and its bytes from the first one on."""

    size_bytes: int

    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes in pieces (of at most a few MiB); raises :class:`UpstreamError`."""
        ...


class Upstream(Protocol):
    """Where the registry reads from what it does not hold. ``repo`` is this registry's
    repository name (an implementation maps it to its own). Each call bounds its own time
    (the registry also bounds the wait between two blob chunks).
    """

    async def fetch_manifest(self, repo: str, reference: str) -> FetchedManifest | None:
        """The manifest ``reference`` (a tag or a digest) of ``repo``, or None when no
        upstream has it.

        :raises UpstreamCorrupt: an upstream served bytes that do not match their digest
            (and no other had good ones).
        :raises UpstreamError: no upstream could be asked (all failed); never for "not found".
        """
        ...

    def open_blob(self, repo: str, digest: str) -> AbstractAsyncContextManager[UpstreamBlob | None]:
        """The blob ``digest`` of ``repo`` opened for reading (None when no upstream has it);
        closed when the block ends. :raises UpstreamError: as :meth:`fetch_manifest`."""
        ...


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(eq=False)
class _Flight(Generic[V]):
    done: anyio.Event = field(default_factory=anyio.Event)
    value: V | None = None
    error: BaseException | None = None
    followers: int = 0


class SingleFlight(Generic[K, V]):
    """Calls with one key made while one is running wait for that one and share its result (or
    its exception) instead of running again.

    The first caller runs the work shielded from its own cancellation — a client that goes away
    does not fail the others waiting — so the work must bound its own time. The key is free
    again as soon as the work ends: work should check first whether what it fetches has
    arrived meanwhile (a caller that missed the flight by a moment starts a new one).
    """

    def __init__(self) -> None:
        self._flights: dict[K, _Flight[V]] = {}
        #: calls that waited for another's work instead of running their own
        self.joined = 0

    def running(self, key: K) -> bool:
        return key in self._flights

    async def run(self, key: K, work: Callable[[], Awaitable[V]]) -> V:
        flight = self._flights.get(key)
        if flight is not None:
            flight.followers += 1
            self.joined += 1
            await flight.done.wait()
            return _outcome(flight)
        flight = self._flights[key] = _Flight()
        try:
            with anyio.CancelScope(shield=True):
                flight.value = await work()
        except Exception as e:
            flight.error = e
        except BaseException:  # the process is stopping: the others fail too
            flight.error = RuntimeError("the shared call was abandoned")
            raise
        finally:
            del self._flights[key]
            flight.done.set()
        return _outcome(flight)


def _outcome(flight: _Flight[V]) -> V:
    if flight.error is not None:
        raise flight.error
    return flight.value  # type: ignore[return-value]  # set when there is no error
