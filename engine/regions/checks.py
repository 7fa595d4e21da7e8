"""The failover check: every region at once, then the results recorded and alerts sent.

    DrChecker.run(names)
      ├─ this registry listed once (only when some region has protections)
      ├─ replication lag sampled once (engine.lag), folded per region
      ├─ per region, concurrently, each bounded by timeout_seconds:
      │    health (engine.regions.canary) → consistency (engine.regions.consistency)
      └─ record (engine.regions.alerts): latest result per region, one alert per transition

The self region (this Seawall, named ``dr.region_name``) gets the same health probe through
its own registry; it is the reference the others are compared with, so it has no consistency
of its own and no lag. A region is healthy when its probe passes; it is consistent when
nothing protected is missing or different there. Consistency is only compared for a healthy
region (an unhealthy one would only time out again).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import anyio

from adapters.base import AdapterError, RegistryAdapter
from adapters.oci.errors import OciError
from engine.lag import replication_lag
from engine.plan import Listing
from engine.regions import alerts
from engine.regions.canary import probe
from engine.regions.consistency import Protection, compare, list_local, protections
from engine.regions.report import Consistency, DrReport, Health, LagEntry, RegionResult
from engine.regions.rpo import LagSource, RegionLag, region_lag
from engine.regions.store import RegionRecord, RegionStore
from registry.meta.db import Database

__all__ = ["AdapterFactory", "CheckSettings", "DrChecker"]

log = logging.getLogger("seawall.dr")


class AdapterFactory(Protocol):
    """The adapter of a registry endpoint id (None: this registry) for an ``async with``."""

    def __call__(self, registry_id: int | None) -> AbstractAsyncContextManager[RegistryAdapter]: ...


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """``self_name``: this Seawall's region name. ``timeout_seconds``: one region's check at
    most (a region that takes longer is unhealthy). ``lag_alert_seconds``: a region whose
    lag passes it gets a REPLICATION_LAG alert. ``canary``: push the canary (off: health is
    reachability and credentials only)."""

    self_name: str = "local"
    timeout_seconds: float = 30.0
    lag_alert_seconds: float = 300.0
    canary: bool = True
    allow_link_local: bool = False


@dataclass(frozen=True, slots=True)
class _Target:
    """A region to check: a declared one, or this Seawall (``record`` None)."""

    name: str
    record: RegionRecord | None
    protections: tuple[Protection, ...] = ()
    problems: tuple[str, ...] = ()


class DrChecker:
    """Runs the checks (:meth:`run`); satisfies :class:`engine.regions.report.RegionChecks`."""

    def __init__(
        self,
        db: Database,
        adapters: AdapterFactory,
        settings: CheckSettings | None = None,
        *,
        lag_source: LagSource | None = None,
        wake_notifier: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_result: Callable[[RegionResult], object] | None = None,
    ) -> None:
        """``lag_source``: the replication lag samples (default: :mod:`engine.lag`).
        ``wake_notifier``: told when alert deliveries were written. ``clock``: the time the
        lag is measured at and results are stamped with. ``on_result``: hears of each
        region's result (metrics; a coroutine function or a plain one)."""
        self.db = db
        self.adapters = adapters
        self.settings = settings or CheckSettings()
        self.store = RegionStore(db)
        self.lag_source = lag_source
        self.wake_notifier = wake_notifier
        self.clock = clock
        self.on_result = on_result

    @property
    def self_name(self) -> str:
        return self.settings.self_name

    async def run(self, names: Sequence[str] | None = None) -> DrReport:
        """Check the regions named (None: all, this Seawall first), record the results and
        send the alerts due. :raises LookupError: a name that is no region."""
        targets = await self._targets(names)
        now = self.clock()
        local = await self._local_listing(targets)
        lag = await region_lag(self.db, now, self.lag_source or replication_lag)
        results: dict[str, RegionResult] = {}

        async def one(target: _Target) -> None:
            results[target.name] = await self._check(target, local, lag, now)

        async with anyio.create_task_group() as tg:
            for target in targets:
                tg.start_soon(one, target, name=f"dr-check-{target.name}")
        report = DrReport(tuple(results[t.name] for t in targets), now)
        registry_ids = {t.name: t.record.registry_id if t.record else None for t in targets}
        limit = self.settings.lag_alert_seconds
        await alerts.record(self.db, report, registry_ids, limit, self.wake_notifier)
        for result in report.regions:
            await self._tell(result)
        return report

    async def _targets(self, names: Sequence[str] | None) -> list[_Target]:
        records = await self.store.all()
        if names is not None:
            known = {r.name for r in records} | {self.self_name}
            unknown = sorted(set(names) - known)
            if unknown:
                raise LookupError(f"no region named {', '.join(map(repr, unknown))}")
        out: list[_Target] = []
        if names is None or self.self_name in names:
            out.append(_Target(self.self_name, None))
        for record in records:
            if names is not None and record.name not in names:
                continue
            policies = await self.store.policies(record.registry_id)
            found, problems = protections(policies, record.registry_id, record.repositories)
            out.append(_Target(record.name, record, tuple(found), tuple(problems)))
        return out

    async def _local_listing(self, targets: Sequence[_Target]) -> Listing | None:
        """This registry's listing when some region has something to compare; None (and the
        comparisons report it) when it cannot be listed."""
        if not any(t.protections for t in targets):
            return Listing({})
        try:
            async with self.adapters(None) as local:
                with anyio.fail_after(self.settings.timeout_seconds):
                    return await list_local(local)
        except (OciError, AdapterError, TimeoutError) as e:
            log.warning("failover check: listing this registry failed: %s", e)
        except Exception:
            log.exception("failover check: listing this registry failed")
        return None

    async def _check(
        self, target: _Target, local: Listing | None, lag: RegionLag | None, now: datetime
    ) -> RegionResult:
        started = time.perf_counter()
        record = target.record
        entries: tuple[LagEntry, ...] = ()
        lag_seconds: float | None = None  # could not be measured
        if record is None:
            lag_seconds = 0.0  # the reference: nothing replicates to it from here
        elif lag is not None:
            entries = lag.get(record.registry_id, ())
            lag_seconds = max((e.lag_seconds for e in entries), default=0.0)
        health, consistency = await self._examine(target, local)
        endpoint = record.endpoint if record is not None else None
        return RegionResult(
            name=target.name,
            is_self=record is None,
            registry=endpoint.name if endpoint else None,
            url=endpoint.url if endpoint else "",
            health=health,
            consistency=consistency,
            lag_seconds=lag_seconds,
            lag=entries,
            checked_at=now,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    async def _examine(self, target: _Target, local: Listing | None) -> tuple[Health, Consistency]:
        record = target.record
        if record is not None and record.endpoint is None:
            gone = f"its registry endpoint {record.registry_id} no longer exists"
            return Health(False, False, False, gone), Consistency(False)
        limit = self.settings.timeout_seconds
        health = Health(False, False, False, f"no answer within {limit:g} s")
        consistency = Consistency(False)
        try:
            with anyio.fail_after(limit):
                async with self.adapters(None if record is None else record.registry_id) as a:
                    health = await probe(
                        a,
                        target.name,
                        canary=self.settings.canary,
                        allow_link_local=self.settings.allow_link_local,
                    )
                    if record is not None and health.healthy:
                        consistency = await self._consistency(target, local, a)
        except TimeoutError:
            if health.healthy:  # the listing took the time
                consistency = Consistency(False, problems=(f"not listed within {limit:g} s",))
        except (OciError, AdapterError, LookupError) as e:
            health = Health(False, False, False, f"{type(e).__name__}: {e}"[:400])
        except Exception as e:  # one region's trouble (a secret that no longer opens, …)
            log.exception("failover check of region %s failed", target.name)
            health = Health(False, False, False, f"check failed: {type(e).__name__}: {e}"[:400])
        return health, consistency

    async def _consistency(
        self, target: _Target, local: Listing | None, region: RegistryAdapter
    ) -> Consistency:
        if not target.protections:
            return Consistency.of(0, (), (), (), target.problems)
        if local is None:
            return Consistency(False, problems=("this registry could not be listed",))
        async with self.adapters(None) as here:
            return await compare(local, here, region, target.protections, target.problems)

    async def _tell(self, result: RegionResult) -> None:
        if self.on_result is None:
            return
        try:
            done = self.on_result(result)
            if inspect.isawaitable(done):
                await done
        except Exception:
            log.exception("reporting the check of region %s failed", result.name)
