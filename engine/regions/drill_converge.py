"""Watching the regions re-converge after a drill: the lag and what is missing, over time.

A sample is, per declared region: its replication lag (:func:`engine.regions.rpo.region_lag`:
the age of the oldest change here not replicated there) and how many protected tags it lacks
(:func:`engine.regions.consistency.compare` against this registry's listing — or, while this
Seawall is the one down, against its listing taken before the failure). A region that is down
is not listed (``missing`` None). The regions have re-converged when each one watched is
listed, consistent (nothing missing or different) and has no lag.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import anyio

from adapters.base import AdapterError
from adapters.oci.errors import OciError
from engine.lag import replication_lag
from engine.plan import Listing
from engine.regions.checks import AdapterFactory
from engine.regions.consistency import Protection, compare, list_local
from engine.regions.drill_report import SeriesPoint
from engine.regions.rpo import LagSource, region_lag
from registry.meta.db import Database

__all__ = ["RegionView", "Sample", "Sampler", "watch"]

log = logging.getLogger("seawall.dr")

#: One region's listing and comparison at most, per sample.
SAMPLE_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class RegionView:
    """A declared region as the drill watches it."""

    name: str
    registry_id: int
    protections: tuple[Protection, ...]


@dataclass(frozen=True, slots=True)
class Sample:
    points: tuple[SeriesPoint, ...]
    settled: frozenset[str]  # regions listed, consistent and caught up


class Sampler:
    """Takes samples (:meth:`sample`); ``wall`` is the time the lag is measured at."""

    def __init__(
        self,
        db: Database,
        adapters: AdapterFactory,
        regions: Sequence[RegionView],
        *,
        lag_source: LagSource | None = None,
        wall: Callable[[], datetime],
    ) -> None:
        self.db, self.adapters, self.regions = db, adapters, regions
        self.lag_source, self.wall = lag_source, wall

    async def local_listing(self, fallback: Listing) -> Listing:
        """This registry's listing now, or ``fallback`` when it cannot be listed."""
        try:
            with anyio.fail_after(SAMPLE_SECONDS):
                async with self.adapters(None) as local:
                    return await list_local(local)
        except (OciError, AdapterError, TimeoutError) as e:
            log.info("drill: this registry cannot be listed (%s); using its earlier listing", e)
            return fallback

    async def sample(self, t_seconds: float, local: Listing, down: Collection[str]) -> Sample:
        """One point per region; the regions in ``down`` are not asked."""
        lag = await region_lag(self.db, self.wall(), self.lag_source or replication_lag)
        points: dict[str, SeriesPoint] = {}
        settled: set[str] = set()

        async def one(region: RegionView) -> None:
            lag_s = None
            if lag is not None:
                lag_s = max((e.lag_seconds for e in lag.get(region.registry_id, ())), default=0.0)
            missing, consistent = None, False
            if region.name not in down:
                missing, consistent = await self._compare(region, local)
            points[region.name] = SeriesPoint(t_seconds, region.name, lag_s, missing)
            if consistent and not lag_s:
                settled.add(region.name)

        async with anyio.create_task_group() as tg:
            for region in self.regions:
                tg.start_soon(one, region)
        ordered = tuple(points[r.name] for r in self.regions)
        return Sample(ordered, frozenset(settled))

    async def _compare(self, region: RegionView, local: Listing) -> tuple[int | None, bool]:
        try:
            with anyio.fail_after(SAMPLE_SECONDS):
                async with self.adapters(None) as here, self.adapters(region.registry_id) as there:
                    found = await compare(local, here, there, region.protections)
        except (OciError, AdapterError, LookupError, TimeoutError) as e:
            log.info("drill: region %s cannot be compared yet: %s", region.name, e)
            return None, False
        return found.missing_count, found.consistent


async def watch(
    sampler: Sampler,
    watched: Collection[str],
    local: Callable[[], Awaitable[Listing]],
    since: float,
    timeout_seconds: float,
    *,
    poll_seconds: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> tuple[list[SeriesPoint], float | None]:
    """Sample every region (each asked: they are all up) until every one in ``watched`` is
    settled or ``timeout_seconds`` have passed; ``t_seconds`` count from ``since`` (a
    ``clock`` reading: the failure). Returns the points and when (seconds after ``since``)
    the last watched region settled (None: not)."""
    points: list[SeriesPoint] = []
    deadline = clock() + timeout_seconds
    while True:
        sample = await sampler.sample(clock() - since, await local(), ())
        points += sample.points
        if set(watched) <= sample.settled:
            return points, max(0.0, clock() - since)
        if clock() + poll_seconds > deadline:
            return points, None
        await sleep(poll_seconds)
