"""Replication and failover-check figures for ``/metrics``, computed at scrape time.

Everything here is read from the database when Prometheus scrapes (nothing is counted on the
replication path), so every worker and every node sharing the database shows the same figures;
scrape one node, or aggregate with ``max``. The families (``docs/registry-api.md``,
"Metrics", lists them with the registry's):

=============================================== ======= =======================================
``seawall_replication_runs_total``              counter finished runs (not dry runs): policy,
                                                        trigger, status
``seawall_replication_runs_active``             gauge   runs queued or in progress: policy,
                                                        status
``seawall_replication_tasks_total``             counter finished tasks: policy, operation,
                                                        outcome
``seawall_replication_copied_bytes_total``      counter bytes copied by finished tasks: policy
``seawall_replication_event_backlog``           gauge   outbox events not consumed yet
``seawall_replication_lag_seconds``             gauge   age of the oldest change not replicated
                                                        yet (:mod:`engine.lag`): policy, target
``seawall_replication_oldest_change_timestamp`` gauge   when that change was made (Unix seconds;
``_seconds``                                            0: caught up): policy, target
``seawall_replication_policy_info``             gauge   1 per policy: policy, source, target,
                                                        trigger, enabled
``seawall_replication_latency_seconds``         histo-  push → replicated, event-scoped runs
                                                gram    (:mod:`engine.latency`, counted in
                                                        memory): policy, target
``seawall_dr_check_*``                          gauge   the latest failover check per region
                                                        (:class:`CheckMetrics`)
=============================================== ======= =======================================

Counting finished runs and tasks reads each row once: rows up to the oldest one that can still
change (active, or ended within :data:`SETTLE_SECONDS`) are counted and remembered; only the
rows after it are counted again at the next scrape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.lag import LOCAL_TARGET, LagMemo, LagSample, replication_lag
from engine.latency import LatencyCounts, latency_family
from engine.state.models import (
    OUTBOX_CURSOR,
    Execution,
    OutboxCursor,
    Policy,
    RegistryEndpoint,
    Task,
)
from registry.meta.db import Database
from registry.meta.models import Event, utcnow

__all__ = ["SETTLE_SECONDS", "CheckMetrics", "CheckResult", "ReplicationMetrics"]

X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
EP = RegistryEndpoint.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]
C = OutboxCursor.__table__  # type: ignore[attr-defined]

#: A finished row is remembered (never counted again) once it ended this long ago: a row
#: whose transaction commits late (PostgreSQL numbers rows before commit) is still counted.
SETTLE_SECONDS = 120.0
_ACTIVE = ("Pending", "InProgress")

Labels = tuple[Any, ...]


@dataclass
class _Tally:
    """Counts (and sums) of finished rows of one table by labels, incremental by id."""

    table: Any
    count: Callable[[int, int | None], Any]  # (after id, up to id) -> SELECT labels…, n, sum
    settled_upto: int = 0
    settled: dict[Labels, tuple[int, int]] = field(default_factory=dict)

    async def read(self, c: AsyncConnection, now: datetime) -> dict[Labels, tuple[int, int]]:
        cutoff = now - timedelta(seconds=SETTLE_SECONDS)
        t = self.table
        unsettled = or_(t.c.status.in_(_ACTIVE), t.c.end_time.is_(None), t.c.end_time >= cutoff)
        first_open = (
            await c.execute(select(func.min(t.c.id)).where(t.c.id > self.settled_upto, unsettled))
        ).scalar()
        last = (await c.execute(select(func.max(t.c.id)))).scalar() or 0
        upto = int(first_open) - 1 if first_open is not None else int(last)
        if upto > self.settled_upto:
            _add(self.settled, await _rows(c, self.count(self.settled_upto, upto)))
            self.settled_upto = upto
        return _add(dict(self.settled), await _rows(c, self.count(self.settled_upto, None)))


async def _rows(c: AsyncConnection, stmt: Any) -> dict[Labels, tuple[int, int]]:
    return {tuple(r[:-2]): (int(r[-2]), int(r[-1] or 0)) for r in (await c.execute(stmt)).all()}


def _add(
    into: dict[Labels, tuple[int, int]], more: dict[Labels, tuple[int, int]]
) -> dict[Labels, tuple[int, int]]:
    for k, (n, total) in more.items():
        had_n, had_total = into.get(k, (0, 0))
        into[k] = (had_n + n, had_total + total)
    return into


def _run_counts(after: int, upto: int | None) -> Any:
    q = select(X.c.policy_id, X.c.trigger, X.c.status, func.count(), literal(0)).where(
        X.c.id > after, X.c.dry_run.is_(False), X.c.status.not_in(_ACTIVE)
    )
    if upto is not None:
        q = q.where(X.c.id <= upto)
    return q.group_by(X.c.policy_id, X.c.trigger, X.c.status)


def _task_counts(after: int, upto: int | None) -> Any:
    outcome = func.coalesce(func.nullif(T.c.outcome, ""), func.lower(T.c.status))
    q = (
        select(X.c.policy_id, T.c.operation, outcome, func.count(), func.sum(T.c.bytes_copied))
        .join(X, X.c.id == T.c.execution_id)
        .where(T.c.id > after, X.c.dry_run.is_(False), T.c.status.not_in(_ACTIVE))
    )
    if upto is not None:
        q = q.where(T.c.id <= upto)
    return q.group_by(X.c.policy_id, T.c.operation, outcome)


@dataclass(frozen=True, slots=True)
class _PolicyInfo:
    name: str
    source: str
    target: str
    trigger: str
    enabled: bool


class ReplicationMetrics:
    """The replication families (a ``registry.http.metrics.MetricsSource``). ``clock`` gives
    the time the lag is measured at (aware UTC)."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime] = utcnow,
        latency: Callable[[], Awaitable[LatencyCounts]] | None = None,
    ) -> None:
        """``latency``: the push → replicated counts to show (this process's, or every
        worker's: ``seawall.metrics``); None: no histogram."""
        self.db, self.clock, self.latency = db, clock, latency
        self._runs = _Tally(X, _run_counts)
        self._tasks = _Tally(T, _task_counts)
        self._lag_memo = LagMemo()
        self._lock = anyio.Lock()  # concurrent scrapes take turns (the tallies are shared)

    async def collect(self) -> Sequence[Metric]:
        async with self._lock:
            now = self.clock()
            async with self.db.read() as c:
                policies = await _policies(c)
                runs = await self._runs.read(c, now)
                tasks = await self._tasks.read(c, now)
                active = (
                    await c.execute(
                        select(X.c.policy_id, X.c.status, func.count())
                        .where(X.c.id > self._runs.settled_upto, X.c.status.in_(_ACTIVE))
                        .group_by(X.c.policy_id, X.c.status)
                    )
                ).all()
                backlog = await _backlog(c)
            lag = await replication_lag(self.db, now, self._lag_memo)
            latency = await self.latency() if self.latency is not None else None
        names = {pid: (p.name, p.target) for pid, p in policies.items()}
        return [
            *([latency_family(latency, names)] if latency is not None else []),
            *_run_families(policies, runs, active),
            *_task_families(policies, tasks),
            GaugeMetricFamily(
                "seawall_replication_event_backlog",
                "Registry events (outbox rows) the replication consumer has not read yet.",
                value=backlog,
            ),
            *_lag_families(lag),
            _info_family(policies),
        ]


async def _policies(c: AsyncConnection) -> dict[int, _PolicyInfo]:
    src, dst = EP.alias("src"), EP.alias("dst")
    rows = await c.execute(
        select(P.c.id, P.c.name, src.c.name, dst.c.name, P.c.trigger_type, P.c.enabled)
        .outerjoin(src, src.c.id == P.c.src_registry_id)
        .outerjoin(dst, dst.c.id == P.c.dest_registry_id)
    )
    return {
        int(i): _PolicyInfo(name, s or LOCAL_TARGET, d or LOCAL_TARGET, trigger, bool(on))
        for i, name, s, d, trigger, on in rows
    }


async def _backlog(c: AsyncConnection) -> int:
    position = (await c.execute(select(C.c.position).where(C.c.name == OUTBOX_CURSOR))).scalar()
    counted = await c.execute(select(func.count()).where(E.c.id > int(position or 0)))
    return int(counted.scalar() or 0)


def _run_families(
    policies: dict[int, _PolicyInfo],
    runs: dict[Labels, tuple[int, int]],
    active: Sequence[Any],
) -> list[Metric]:
    finished = CounterMetricFamily(
        "seawall_replication_runs",
        "Replication runs that ended (dry runs not counted), by policy, trigger and status.",
        labels=["policy", "trigger", "status"],
    )
    for (pid, trigger, status), (n, _) in sorted(runs.items(), key=str):
        if (p := policies.get(int(pid))) is not None:
            finished.add_metric([p.name, trigger, status], n)
    running = GaugeMetricFamily(
        "seawall_replication_runs_active",
        "Replication runs queued (Pending) or running (InProgress), by policy.",
        labels=["policy", "status"],
    )
    for pid, status, n in sorted(active, key=str):
        if (p := policies.get(int(pid))) is not None:
            running.add_metric([p.name, status], int(n))
    return [finished, running]


def _task_families(
    policies: dict[int, _PolicyInfo], tasks: dict[Labels, tuple[int, int]]
) -> list[Metric]:
    counted = CounterMetricFamily(
        "seawall_replication_tasks",
        "Replication tasks (one artifact or deletion each) that ended, by policy, operation and "
        "outcome (copied, skipped-identical, skipped-differs, deleted, failed, stopped, …).",
        labels=["policy", "operation", "outcome"],
    )
    copied: dict[str, int] = {}
    for (pid, operation, outcome), (n, size) in sorted(tasks.items(), key=str):
        if (p := policies.get(int(pid))) is not None:
            counted.add_metric([p.name, operation, outcome], n)
            copied[p.name] = copied.get(p.name, 0) + size
    size_family = CounterMetricFamily(
        "seawall_replication_copied_bytes",
        "Bytes copied to the destination by replication tasks that ended, by policy.",
        labels=["policy"],
    )
    for name, size in sorted(copied.items()):
        size_family.add_metric([name], size)
    return [counted, size_family]


def _lag_families(samples: Sequence[LagSample]) -> list[Metric]:
    lag = GaugeMetricFamily(
        "seawall_replication_lag_seconds",
        "Age of the oldest change at the source not yet replicated to the target (0: caught "
        "up): the target's current RPO for the policy.",
        labels=["policy", "target"],
    )
    oldest = GaugeMetricFamily(
        "seawall_replication_oldest_change_timestamp_seconds",
        "When the oldest change not yet replicated to the target was made (Unix time; 0: "
        "caught up).",
        labels=["policy", "target"],
    )
    for s in samples:
        lag.add_metric([s.policy, s.target], s.lag_seconds)
        at = s.oldest_change_at.timestamp() if s.oldest_change_at is not None else 0.0
        oldest.add_metric([s.policy, s.target], at)
    return [lag, oldest]


def _info_family(policies: dict[int, _PolicyInfo]) -> Metric:
    info = GaugeMetricFamily(
        "seawall_replication_policy_info",
        "1 per replication policy: its source and target registry (local: this Seawall).",
        labels=["policy", "source", "target", "trigger", "enabled"],
    )
    for p in sorted(policies.values(), key=lambda p: p.name):
        info.add_metric([p.name, p.source, p.target, p.trigger, str(p.enabled).lower()], 1)
    return info


# ---------------------------------------------------------------- failover checks


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One region's failover check as the metrics show it (counts of the ``missing`` and
    ``differs`` lists of ``seawall dr check --json``)."""

    region: str
    healthy: bool
    lag_seconds: float | None
    missing: int
    differs: int
    checked_at: datetime


class CheckMetrics:
    """The ``seawall_dr_check_*`` gauges: the latest check of each region.

    A check made in this process is recorded with :meth:`record_check`; ``load`` (when given)
    reads the checks recorded elsewhere (the database, by any process or node) at each scrape.
    Per region the newest check shows.
    """

    def __init__(self, load: Callable[[], Awaitable[Sequence[CheckResult]]] | None = None) -> None:
        self.load = load
        self._recorded: dict[str, CheckResult] = {}

    def record_check(
        self,
        region: str,
        healthy: bool,
        lag_seconds: float | None,
        missing: Sequence[str] | int,
        differs: Sequence[str] | int,
        *,
        checked_at: datetime | None = None,
    ) -> CheckResult:
        """Record a region's check (``missing``/``differs``: the lists, or their lengths)."""
        result = CheckResult(
            region,
            healthy,
            lag_seconds,
            missing if isinstance(missing, int) else len(missing),
            differs if isinstance(differs, int) else len(differs),
            checked_at or utcnow(),
        )
        self._recorded[region] = result
        return result

    def forget(self, region: str) -> None:
        """Stop showing a region recorded here (it was removed)."""
        self._recorded.pop(region, None)

    async def collect(self) -> Sequence[Metric]:
        latest = dict(self._recorded)
        for r in await self.load() if self.load is not None else ():
            if r.region not in latest or latest[r.region].checked_at < r.checked_at:
                latest[r.region] = r
        return _check_families(sorted(latest.values(), key=lambda r: r.region))


def _check_families(results: Sequence[CheckResult]) -> list[Metric]:
    def gauge(name: str, text: str) -> GaugeMetricFamily:
        return GaugeMetricFamily(f"seawall_dr_check_{name}", text, labels=["region"])

    healthy = gauge("healthy", "1 when the region's latest failover check found it healthy.")
    lag = gauge("lag_seconds", "Replication lag to the region at its latest check (its RPO).")
    missing = gauge("missing_artifacts", "Protected artifacts missing in the region at its check.")
    differs = gauge("differing_tags", "Tags whose digest differs in the region at its check.")
    when = gauge("timestamp_seconds", "When the region's latest check was made (Unix time).")
    for r in results:
        healthy.add_metric([r.region], 1.0 if r.healthy else 0.0)
        if r.lag_seconds is not None:
            lag.add_metric([r.region], r.lag_seconds)
        missing.add_metric([r.region], r.missing)
        differs.add_metric([r.region], r.differs)
        when.add_metric([r.region], r.checked_at.timestamp())
    return [healthy, lag, missing, differs, when]
