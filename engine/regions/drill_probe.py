"""Asking the survivors: what they *hold*, and what they *serve* as a client would pull it.

**Held** (the RPO): asked as Seawall (``User-Agent: seawall/…``, the adapter's own client),
so a Seawall answers from what it stores and never reads through. Each survivor location is
listed once per repository; a digest the listing does not name is asked for by ``HEAD``
(an untagged manifest still counts).

**Served** (the RTO, :func:`recover`): pulled as a client (``User-Agent``
:data:`CLIENT_AGENT`), so a Seawall survivor reads through from the other regions what it
lacks, as it would for ``docker pull``: the manifest by digest (its bytes must hash to it),
for an index each child the same way, then a ``HEAD`` of every blob (a Seawall fetches and
stores a blob it reads through before it answers). A drill that does not stop the region
(simulated) pulls as Seawall: the region is still up, and reading through from it would
prove nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import anyio

from adapters.base import AdapterError, RegistryAdapter
from adapters.oci.client import OciClient
from adapters.oci.errors import NotFound, OciError
from adapters.protocol import RegistryClient
from engine.copier import parse_source_manifest
from engine.listing import list_side
from engine.regions.drill_report import AtRisk, Location, Unserved

__all__ = [
    "CLIENT_AGENT",
    "Key",
    "Pullers",
    "Served",
    "answers",
    "held",
    "recover",
    "serve_all",
]

#: What the drill's client-view pulls announce: not ``seawall/``, so read-through applies.
CLIENT_AGENT = "seawall-drill/1 (pulls as a client)"
#: An index's children are followed this deep (an index of indexes of images).
MAX_DEPTH = 2
Key = tuple[str, str, Location]  # (repository there, digest, survivor location)
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def _http(adapter: RegistryAdapter) -> bool:
    return adapter.registry_url().startswith(("http://", "https://"))


async def answers(adapter: RegistryAdapter, seconds: float) -> bool:
    """Whether the registry answers ``GET /v2/`` with its credentials within ``seconds``,
    asked once (no retries)."""
    try:
        with anyio.fail_after(seconds):
            if not _http(adapter):
                return (await adapter.health())[0]
            kwargs = adapter.client_kwargs() | {
                "retries": 0,
                "timeout_connect_seconds": seconds,
                "timeout_read_seconds": seconds,
            }
            async with OciClient(adapter.registry_url(), **kwargs) as client:
                await client.ping()
                return True
    except (OciError, AdapterError, TimeoutError, OSError):
        return False


class Pullers:
    """One client per survivor for the served checks: a client's (read-through applies) or,
    with ``as_seawall``, the adapter's own. Closed with :meth:`aclose`."""

    def __init__(self, adapters: Mapping[str, RegistryAdapter], *, as_seawall: bool) -> None:
        self._clients: dict[str, RegistryClient] = {}
        self._stack = AsyncExitStack()
        for region, adapter in adapters.items():
            if as_seawall or not _http(adapter):
                self._clients[region] = adapter.client()
                continue
            kwargs = adapter.client_kwargs() | {"user_agent": CLIENT_AGENT, "retries": 1}
            client = OciClient(adapter.registry_url(), **kwargs)
            self._stack.push_async_callback(client.close)
            self._clients[region] = client

    def __getitem__(self, region: str) -> RegistryClient:
        return self._clients[region]

    async def aclose(self) -> None:
        await self._stack.aclose()


async def pulls(client: RegistryClient, repo: str, digest: str, depth: int = 0) -> str | None:
    """None when ``repo@digest`` is served whole (manifest by digest, children, blobs);
    else what was not."""
    try:
        manifest = await client.get_manifest(repo, digest)
        parsed = parse_source_manifest(manifest, repo)
        if parsed.children and depth >= MAX_DEPTH:
            return f"{repo}@{digest}: indexes nested deeper than {MAX_DEPTH}"
        for child in parsed.children:
            why = await pulls(client, repo, child.digest, depth + 1)
            if why is not None:
                return why
        for blob in parsed.blobs:
            if await client.head_blob(repo, blob.digest) is None:
                return f"blob {blob.digest} of {repo}@{digest}: not found"
    except NotFound:
        return f"{repo}@{digest}: not found"
    except OciError as e:
        return f"{repo}@{digest}: {type(e).__name__}: {e}"[:300]
    return None


async def held(
    adapters: Mapping[str, RegistryAdapter], artifacts: Sequence[AtRisk], concurrency: int = 16
) -> tuple[set[Key], list[str]]:
    """Which ``(repository, digest, location)`` the survivors hold; and what could not be
    asked (a survivor that cannot be listed holds nothing as far as the drill can tell)."""
    wanted: dict[str, dict[str, set[str]]] = {}  # region -> repo -> digests
    for a in artifacts:
        for loc in a.locations:
            wanted.setdefault(loc.region, {}).setdefault(loc.repository, set()).add(a.digest)
    found: set[tuple[str, str, str]] = set()  # (region, repo, digest)
    problems: list[str] = []
    limit = anyio.Semaphore(concurrency)

    async def one_region(region: str, repos: dict[str, set[str]]) -> None:
        adapter = adapters[region]
        try:
            listing = await list_side(adapter, sorted(repos), missing_ok=True)
        except OciError as e:
            problems.append(f"survivor {region} could not be listed: {e}"[:300])
            return
        problems.extend(f"survivor {region}: {p}" for p in listing.problems)
        for repo, digests in repos.items():
            listed = set(listing.tags.get(repo, {}).values())
            found.update((region, repo, d) for d in digests & listed)
            for d in digests - listed:
                tg.start_soon(head_one, adapter, region, repo, d)

    async def head_one(adapter: RegistryAdapter, region: str, repo: str, digest: str) -> None:
        async with limit:
            try:
                if await adapter.client().head_manifest(repo, digest) is not None:
                    found.add((region, repo, digest))
            except OciError as e:
                problems.append(f"survivor {region}: {repo}@{digest}: {e}"[:300])

    async with anyio.create_task_group() as tg:
        for region, repos in wanted.items():
            tg.start_soon(one_region, region, repos)
    keys = {
        (a.repository, a.digest, loc)
        for a in artifacts
        for loc in a.locations
        if (loc.region, loc.repository, a.digest) in found
    }
    return keys, problems


async def serve_all(
    pullers: Pullers,
    artifacts: Sequence[AtRisk],
    failed_at: float,
    timeout_seconds: float,
    *,
    poll_seconds: float = 0.5,
    concurrency: int = 16,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
    only: Collection[Key] | None = None,
) -> tuple[float | None, list[Unserved]]:
    """Pull every artifact from each of its locations (with ``only``: those of its
    ``(repository, digest, location)`` keys), again every ``poll_seconds`` for what was not
    served, until all are or ``timeout_seconds`` after ``failed_at`` (a ``clock`` reading).
    Returns the seconds from ``failed_at`` to the end of the round that served the last one
    (0 when there was nothing to pull; None: not all were served) and what was not served."""
    pending: dict[Key, AtRisk] = {
        (a.repository, a.digest, loc): a
        for a in artifacts
        for loc in a.locations
        if only is None or (a.repository, a.digest, loc) in only
    }
    if not pending:
        return 0.0, []  # nothing to serve: served from the start
    why: dict[Key, str] = {}
    limit = anyio.Semaphore(concurrency)
    deadline = failed_at + timeout_seconds

    async def one(key: Key) -> None:
        _, digest, loc = key
        async with limit:
            problem = await pulls(pullers[loc.region], loc.repository, digest)
        if problem is None:
            pending.pop(key, None)
            why.pop(key, None)
        else:
            why[key] = problem

    while pending:
        with anyio.move_on_after(max(0.0, deadline - clock())):
            async with anyio.create_task_group() as tg:
                for key in list(pending):
                    tg.start_soon(one, key)
        if not pending:
            break
        if clock() + poll_seconds >= deadline:
            unserved = [
                Unserved(a, key[2], why.get(key, f"no answer within {timeout_seconds:g} s"))
                for key, a in sorted(pending.items(), key=lambda kv: (kv[0][0], kv[0][1]))
            ]
            return None, unserved
        await sleep(poll_seconds)
    return max(0.0, clock() - failed_at), []


@dataclass(frozen=True, slots=True)
class Served:
    """What :func:`recover` measured. ``rto_seconds``: failure → every location that did not
    hold its artifact (``lacked`` of them: it must read it through or receive it) served it
    (0: none lacked; None: not all within the window). ``verified_seconds``: failure → every
    location served too (None: not all within the window). ``unserved``: both phases'."""

    rto_seconds: float | None
    verified_seconds: float | None
    lacked: int
    unserved: tuple[Unserved, ...]


async def recover(
    pullers: Pullers,
    artifacts: Sequence[AtRisk],
    holding: Collection[Key],
    failed_at: float,
    timeout_seconds: float,
    *,
    poll_seconds: float = 0.5,
    concurrency: int = 16,
    clock: Clock = time.monotonic,
    sleep: Sleep = anyio.sleep,
) -> Served:
    """The RTO, then the check of the rest. First each location that does not hold its
    artifact (not in ``holding``, the RPO step's finding) is pulled until all are served —
    the RTO ends there, so the drill's checking of what the survivors already held does not
    count in it; then every location that held its artifact is pulled, within a window of
    ``timeout_seconds`` of its own, for ``verified_seconds``."""
    keys = {(a.repository, a.digest, loc) for a in artifacts for loc in a.locations}
    lacked, holds = keys - set(holding), keys & set(holding)

    async def pull(only: set[Key], since: float) -> tuple[float | None, list[Unserved]]:
        return await serve_all(
            pullers,
            artifacts,
            since,
            timeout_seconds,
            poll_seconds=poll_seconds,
            concurrency=concurrency,
            clock=clock,
            sleep=sleep,
            only=only,
        )

    rto, first = await pull(lacked, failed_at)
    started = clock()
    took, rest = await pull(holds, started)
    verified = None if took is None or rto is None else max(rto, started - failed_at + took)
    return Served(rto, verified, len(lacked), (*first, *rest))
