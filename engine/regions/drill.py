"""The failover drill: fail one region, measure what is lost and how long until the survivors
serve everything again, bring it back and watch the regions re-converge.

    Driller.run(region)
      1 snapshot   this registry listed; every region's placement (drill_scope); what the
                   region holds that a failure could lose (its listing, before the failure)
      2 fail       the fail hook (drill_hooks), then the region is polled until it no longer
                   answers; the RTO counts from the end of the hook or the start of the last
                   poll it still answered, whichever is later (never from a later moment)
      3 RPO        what no survivor holds (drill_probe.held), with when each was acknowledged
                   here (drill_ack) — the survivors are asked as Seawall, no read-through
      4 RTO        every other artifact pulled from each survivor protecting it, as a client
                   would (read-through applies), again and again until all are served: first
                   where step 3 found the survivor not holding it (the RTO ends when those are
                   served), then where it held it (``verified_seconds``)
      5 restore    the restore hook; the region polled until it answers; a run of each push
                   policy concerned queued; the regions sampled (drill_converge) until the
                   region — for this Seawall's own drill every region — is consistent with no lag

Without a fail hook nothing is stopped (``simulated``): steps 1, 3 and 4 only, the survivors
asked as Seawall in step 4 too (the region is up: reading through from it would prove
nothing), so the RTO is what replication alone gives.

The drill runs beside the server, with its settings (database, endpoints' credentials), not
inside it: it may stop this Seawall itself. The policy runs it queues are rows in the shared
database, started by the server's replication service at its next poll.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import anyio

from adapters.base import AdapterError, RegistryAdapter
from adapters.oci.errors import OciError
from engine.listing import list_side
from engine.plan import Listing
from engine.regions.checks import AdapterFactory
from engine.regions.consistency import list_local, protections
from engine.regions.drill_ack import acknowledged_at, changes_after, outbox_position
from engine.regions.drill_converge import RegionView, Sampler, watch
from engine.regions.drill_hooks import hook_env, run_hook
from engine.regions.drill_probe import Key, Pullers, answers, held, recover
from engine.regions.drill_report import (
    AtRisk,
    DrillMode,
    DrillOptions,
    DrillReport,
    Failure,
    HookRun,
    Lost,
    Recovery,
    SeriesPoint,
    bounded,
)
from engine.regions.drill_scope import (
    Placement,
    apply_changes,
    at_risk_of_region,
    at_risk_of_self,
    placement,
)
from engine.regions.rpo import LagSource
from engine.regions.store import RegionStore
from engine.state.runs import RunStore
from registry.meta.db import Database

__all__ = ["DrillRefused", "Driller", "Hooks"]

#: Listing the region or this registry before the failure takes at most this long.
LIST_SECONDS = 120.0
#: One "does it still answer?" poll.
ANSWER_SECONDS = 2.0


class DrillRefused(Exception):
    """The drill cannot start (an unknown region, one that does not answer to begin with);
    the message says why and what to do. Nothing was stopped."""


@dataclass(frozen=True, slots=True)
class Hooks:
    """The operator's commands (see :mod:`engine.regions.drill_hooks`); no fail command: a
    simulated drill."""

    fail_command: str | None = None
    restore_command: str | None = None


@dataclass(frozen=True, slots=True)
class _Scene:
    """What the drill works on, opened once: the adapters by region name, the URLs."""

    failed: str
    regions: tuple[RegionView, ...]
    adapters: Mapping[str, RegistryAdapter]
    urls: Mapping[str, str]
    survivors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Before the failure: this registry's listing, the placement, what is at risk, and the
    outbox's latest event id when the listing began."""

    local: Listing
    place: Placement
    at_risk: list[AtRisk]
    position: int


class Driller:
    """Runs drills (:meth:`run`). ``clock`` (monotonic) times the phases, ``wall`` (aware
    UTC) dates the failure and measures the lag, ``sleep`` waits between polls."""

    def __init__(
        self,
        db: Database,
        adapters: AdapterFactory,
        *,
        self_name: str,
        options: DrillOptions | None = None,
        hooks: Hooks | None = None,
        lag_source: LagSource | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.db, self.adapters, self.self_name = db, adapters, self_name
        self.options = options or DrillOptions()
        self.hooks = hooks or Hooks()
        self.lag_source, self.clock, self.wall, self.sleep = lag_source, clock, wall, sleep

    @property
    def mode(self) -> DrillMode:
        return DrillMode.HOOKS if self.hooks.fail_command else DrillMode.SIMULATED

    async def run(self, region: str) -> DrillReport:
        """Drill ``region`` (this Seawall's own name, or a declared region's).

        :raises DrillRefused: it cannot start; nothing was stopped.
        """
        started_at = self.wall()
        async with AsyncExitStack() as stack:
            scene = await self._scene(region, stack)
            snap = await self._snapshot(scene)
            local, at_risk = snap.local, snap.at_risk
            failure, failed_at = await self._fail(scene)
            report = DrillReport(
                region=region,
                self_name=self.self_name,
                survivors=scene.survivors,
                options=self.options,
                started_at=started_at,
                artifacts=len(at_risk),
                failure=failure,
                rto_seconds=None,
                served=0,
                problems=snap.place.problems[:20],
            )
            sampler = Sampler(
                self.db, self.adapters, scene.regions, lag_source=self.lag_source, wall=self.wall
            )
            try:
                if failure.confirmed:
                    if region == self.self_name:
                        local, at_risk = await self._taken_since(scene, snap, failure.at)
                        report = replace(report, artifacts=len(at_risk))
                    report = await self._measure(scene, report, at_risk, failed_at)
                down = () if region == self.self_name else (region,)
                first = await sampler.sample(self.clock() - failed_at, local, down)
            except BaseException:  # never leave the region down on the way out
                if self.hooks.restore_command:
                    with anyio.CancelScope(shield=True):
                        await self._hook("restore", self.hooks.restore_command, scene)
                raise
            recovery, points = await self._recover(scene, sampler, local, failed_at)
        return replace(report, recovery=recovery, series=(*first.points, *points))

    async def _measure(
        self, scene: _Scene, report: DrillReport, at_risk: Sequence[AtRisk], failed_at: float
    ) -> DrillReport:
        """Steps 3 and 4: the RPO, then the RTO over what a survivor still holds."""
        lost, problems, holding = await self._lost(scene, at_risk, report.failure.at)
        gone = {(x.artifact.repository, x.artifact.digest) for x in lost}
        recoverable = [a for a in at_risk if (a.repository, a.digest) not in gone]
        survivors = {s: scene.adapters[s] for s in scene.survivors}
        pullers = Pullers(survivors, as_seawall=self.mode is DrillMode.SIMULATED)
        try:
            served = await recover(
                pullers,
                recoverable,
                holding,
                failed_at,
                self.options.rto_timeout_seconds,
                poll_seconds=self.options.poll_seconds,
                concurrency=self.options.probe_concurrency,
                clock=self.clock,
                sleep=self.sleep,
            )
        finally:
            await pullers.aclose()
        unserved = served.unserved
        not_served = {(u.artifact.repository, u.artifact.digest) for u in unserved}
        return replace(
            report,
            rto_seconds=served.rto_seconds,
            verified_seconds=served.verified_seconds,
            lacked=served.lacked,
            served=len(recoverable) - len(not_served),
            unserved=bounded(unserved),
            unserved_count=len(unserved),
            lost=bounded(lost),
            lost_count=len(lost),
            problems=tuple([*report.problems, *problems][:20]),
        )

    # ------------------------------------------------------------------ 1 the scene, snapshot
    async def _scene(self, region: str, stack: AsyncExitStack) -> _Scene:
        records = await RegionStore(self.db).all()
        names = [self.self_name, *(r.name for r in records)]
        if region not in names:
            known = ", ".join(names)
            raise DrillRefused(f"no region named {region!r} (regions: {known})")
        views: list[RegionView] = []
        adapters = {self.self_name: await stack.enter_async_context(self.adapters(None))}
        urls = {self.self_name: adapters[self.self_name].registry_url()}
        for record in records:
            if record.endpoint is None:
                raise DrillRefused(
                    f"region {record.name}: its registry endpoint {record.registry_id} no "
                    "longer exists; remove the region or declare it again"
                )
            policies = await RegionStore(self.db).policies(record.registry_id)
            found, _ = protections(policies, record.registry_id, record.repositories)
            views.append(RegionView(record.name, record.registry_id, tuple(found)))
            adapter = await stack.enter_async_context(self.adapters(record.registry_id))
            adapters[record.name] = adapter
            urls[record.name] = record.endpoint.url
        survivors = tuple(n for n in names if n != region)
        return _Scene(region, tuple(views), adapters, urls, survivors)

    async def _snapshot(self, scene: _Scene) -> _Snapshot:
        failed = scene.adapters[scene.failed]
        if not await answers(failed, ANSWER_SECONDS * 2):
            raise DrillRefused(
                f"region {scene.failed} does not answer ({scene.urls[scene.failed]}): a drill "
                "starts from a working region (see `seawall dr check`)"
            )
        here = scene.adapters[self.self_name]
        position = await outbox_position(self.db)  # before the listing: nothing is missed
        try:
            with anyio.fail_after(LIST_SECONDS):
                local = await list_local(here)
                place = await placement(local, here, {r.name: r.protections for r in scene.regions})
                if scene.failed == self.self_name:
                    return _Snapshot(local, place, at_risk_of_self(self.self_name, place), position)
                repos = {n for names in place.names.get(scene.failed, {}).values() for n in names}
                there = await list_side(failed, sorted(repos), missing_ok=True)
        except (OciError, AdapterError, TimeoutError) as e:
            what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise DrillRefused(f"listing before the failure failed: {what}"[:400]) from None
        if there.problems:
            raise DrillRefused(f"region {scene.failed} could not be listed: {there.problems[0]}")
        at_risk = at_risk_of_region(scene.failed, there, self.self_name, place, scene.survivors)
        return _Snapshot(local, place, at_risk, position)

    async def _taken_since(
        self, scene: _Scene, snap: _Snapshot, failed_wall: datetime
    ) -> tuple[Listing, list[AtRisk]]:
        """This Seawall failed: what it acknowledged between its listing and the failure
        (its outbox) is at risk too. Returns its listing at the failure and what is at risk.
        Manifests are not read (this Seawall is down): label and artifact-type filters judge
        only what the snapshot described."""
        changes = await changes_after(self.db, snap.position, failed_wall)
        if not changes:
            return snap.local, snap.at_risk
        later = apply_changes(snap.local, changes)
        place = await placement(later, None, {r.name: r.protections for r in scene.regions})
        known = {(a.repository, a.digest) for a in snap.at_risk}
        new = at_risk_of_self(self.self_name, place)
        return later, [*snap.at_risk, *(a for a in new if (a.repository, a.digest) not in known)]

    # ------------------------------------------------------------------ 2 fail
    async def _fail(self, scene: _Scene) -> tuple[Failure, float]:
        """The failure and the clock reading the RTO counts from."""
        if self.hooks.fail_command is None:
            return Failure(DrillMode.SIMULATED, True, self.wall(), detail="nothing stopped"), (
                self.clock()
            )
        hook = await self._hook("fail", self.hooks.fail_command, scene)
        failed_at = self.clock()
        failed_wall = self.wall()
        deadline = failed_at + self.options.confirm_timeout_seconds
        adapter = scene.adapters[scene.failed]
        while True:
            probe_started, probe_wall = self.clock(), self.wall()
            if not await answers(adapter, ANSWER_SECONDS):
                detail = "" if hook.ok else "the fail command failed, but the region is down"
                return Failure(DrillMode.HOOKS, True, failed_wall, hook, detail), failed_at
            failed_at, failed_wall = probe_started, probe_wall  # it still answered then
            if self.clock() + self.options.poll_seconds > deadline:
                limit = self.options.confirm_timeout_seconds
                detail = f"region {scene.failed} still answered {limit:g} s after the fail command"
                return Failure(DrillMode.HOOKS, False, failed_wall, hook, detail), failed_at
            await self.sleep(self.options.poll_seconds)

    async def _hook(self, phase: str, command: str, scene: _Scene) -> HookRun:
        env = hook_env(scene.failed, scene.urls[scene.failed], phase)
        return await run_hook(command, env, self.options.hook_timeout_seconds, clock=self.clock)

    # ------------------------------------------------------------------ 3 RPO
    async def _lost(
        self, scene: _Scene, at_risk: Sequence[AtRisk], failed_wall: datetime
    ) -> tuple[list[Lost], list[str], set[Key]]:
        """What no survivor holds, what could not be asked, and which survivor locations
        hold which artifact."""
        survivors = {s: scene.adapters[s] for s in scene.survivors}
        keys, problems = await held(survivors, at_risk, self.options.probe_concurrency)
        holders = {(repo, digest) for repo, digest, _ in keys}
        lost: list[Lost] = []
        for a in at_risk:
            if (a.repository, a.digest) in holders:
                continue
            acked = None
            if scene.failed == self.self_name:
                acked = await acknowledged_at(self.db, a.repository, a.digest, failed_wall)
            age = None if acked is None else max(0.0, (failed_wall - acked).total_seconds())
            lost.append(Lost(a, acked, age))
        return lost, problems, keys

    # ------------------------------------------------------------------ 5 restore, converge
    async def _recover(
        self, scene: _Scene, sampler: Sampler, snapshot: Listing, failed_at: float
    ) -> tuple[Recovery, list[SeriesPoint]]:
        """Step 5: the restore hook, the region answering, the runs, the samples after."""
        if self.mode is DrillMode.SIMULATED:
            return Recovery(False, detail="simulated: nothing was stopped"), []
        hook = None
        if self.hooks.restore_command:
            hook = await self._hook("restore", self.hooks.restore_command, scene)
        deadline = self.clock() + self.options.converge_timeout_seconds
        answered = await self._answering(scene.adapters[scene.failed], deadline)
        if answered is None:
            limit = self.options.converge_timeout_seconds
            detail = f"region {scene.failed} did not answer within {limit:g} s"
            return Recovery(True, hook, detail=detail), []
        runs = await self._queue_runs(scene)
        is_self = scene.failed == self.self_name
        watched = [r.name for r in scene.regions] if is_self else [scene.failed]

        async def local() -> Listing:
            return await sampler.local_listing(snapshot)

        points, settled = await watch(
            sampler,
            watched,
            local,
            failed_at,
            max(0.0, deadline - self.clock()),
            poll_seconds=max(self.options.poll_seconds, 0.5),
            clock=self.clock,
            sleep=self.sleep,
        )
        recovery = Recovery(True, hook, answered - failed_at, settled, tuple(runs))
        return recovery, points

    async def _answering(self, adapter: RegistryAdapter, deadline: float) -> float | None:
        """The clock reading when ``adapter``'s registry answered again (None: not by
        ``deadline``)."""
        while True:
            if await answers(adapter, ANSWER_SECONDS):
                return self.clock()
            if self.clock() + self.options.poll_seconds > deadline:
                return None
            await self.sleep(self.options.poll_seconds)

    async def _queue_runs(self, scene: _Scene) -> list[str]:
        """A whole-policy run of each enabled push policy from here to the failed region
        (every region, when this Seawall was the one), unless one is queued already."""
        store = RunStore(self.db, "seawall-drill")
        wanted = [r for r in scene.regions if scene.failed in (self.self_name, r.name)]
        queued: list[str] = []
        for region in wanted:
            for policy in await RegionStore(self.db).policies(region.registry_id):
                pushes_there = policy["dest_registry_id"] == region.registry_id
                if policy["src_registry_id"] is not None or not pushes_there:
                    continue
                if await store.queued_execution(int(policy["id"])) is None:
                    await store.create_execution(int(policy["id"]), "manual")
                    queued.append(str(policy["name"]))
        return queued
