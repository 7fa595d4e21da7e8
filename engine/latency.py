"""Push → replicated latency: ``seawall_replication_latency_seconds{policy,target}``.

For every artifact an event-scoped run of a push policy copied, the latency runs from the
registry event that announced it (the newest ``event`` row of its source repository and digest
written before the task ended) to the task's end (the task row's ``end_time``). Both times are
read from the database when the run ends (its tasks, then their events: two queries;
:meth:`ReplicationLatency.run_finished`): nothing is added to a task's own path. Whole-policy
runs and pull policies (their events are another registry's) are not observed.

The counts are this process's, in memory: the node that ends a run observes its tasks (those
other nodes helped with included). With several workers, ``seawall.metrics`` writes each
worker's counts beside its request counts, and ``/metrics`` adds them up; with several nodes,
sum over the nodes (``sum by (policy, target, le)``).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.core import HistogramMetricFamily
from sqlalchemy import bindparam, select

from engine.state.models import Task
from registry.meta.db import Database, SqlConnection
from registry.meta.models import Event
from registry.meta.prepared import prepared

__all__ = [
    "EVENT_WINDOW",
    "LATENCY_BUCKETS_SECONDS",
    "PROCESS_COUNTS",
    "LatencyCounts",
    "ReplicationLatency",
    "latency_family",
]

T = Task.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]

#: Upper bounds of the histogram, seconds (a push normally lands in well under a second; a
#: retried run after its back-off, minutes later).
LATENCY_BUCKETS_SECONDS = (
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
    300.0,
    900.0,
    3600.0,
)
#: Events are looked for from this long before the run was queued (a merged or retried run's
#: events are older than the run); one found no earlier is looked up on its own.
EVENT_WINDOW = timedelta(minutes=2)
#: At most this many artifacts of one run are looked up on their own (outside the window).
MAX_LATE_LOOKUPS = 16
#: Digests per query of a run's events.
DIGESTS_PER_QUERY = 400
#: up to this many digests, a run's events are read one digest per (prepared) query
DIGESTS_ONE_BY_ONE = 8
_COPIED = prepared(
    select(T.c.src_repository, T.c.digest, T.c.end_time).where(
        T.c.execution_id == bindparam("eid"),
        T.c.status == "Succeed",
        T.c.outcome == "copied",
        T.c.digest != "",
        T.c.end_time.is_not(None),
    )
)
_EVENTS_OF = prepared(
    select(E.c.repository, E.c.digest, E.c.created_at).where(
        E.c.created_at >= bindparam("since", type_=E.c.created_at.type),
        E.c.digest == bindparam("digest"),
    )
)


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_SECONDS))
    count: int = 0
    sum_seconds: float = 0.0


@dataclass
class LatencyCounts:
    """Histogram counts by policy id (non-cumulative buckets; the last bound's overflow is
    ``count`` minus their sum)."""

    policies: dict[int, _Histogram] = field(default_factory=dict)

    def observe(self, policy_id: int, seconds: float) -> None:
        h = self.policies.setdefault(policy_id, _Histogram())
        seconds = max(0.0, seconds)
        i = bisect.bisect_left(LATENCY_BUCKETS_SECONDS, seconds)
        if i < len(h.buckets):
            h.buckets[i] += 1
        h.count += 1
        h.sum_seconds += seconds

    def add(self, other: LatencyCounts) -> LatencyCounts:
        for pid, o in other.policies.items():
            h = self.policies.setdefault(pid, _Histogram())
            h.buckets = [a + b for a, b in zip(h.buckets, o.buckets, strict=True)]
            h.count += o.count
            h.sum_seconds += o.sum_seconds
        return self

    def to_json(self) -> list[Any]:
        return [[pid, h.buckets, h.count, h.sum_seconds] for pid, h in self.policies.items()]

    @classmethod
    def from_json(cls, data: list[Any]) -> LatencyCounts:
        """The counts :meth:`to_json` wrote. :raises ValueError: (or ``TypeError``) for
        anything else."""
        out = cls()
        for pid, buckets, count, total in data:
            if len(buckets) != len(LATENCY_BUCKETS_SECONDS):
                raise ValueError("latency buckets differ")
            out.policies[int(pid)] = _Histogram([int(n) for n in buckets], int(count), float(total))
        return out


#: This process's counts: what its replication service observes and its ``/metrics`` shows
#: (one replication service per worker process), unless they are given others.
PROCESS_COUNTS = LatencyCounts()


def latency_family(counts: LatencyCounts, names: Mapping[int, tuple[str, str]]) -> Any:
    """The histogram family; ``names``: policy id → (policy name, target name). Policies no
    longer there are left out."""
    family = HistogramMetricFamily(
        "seawall_replication_latency_seconds",
        "Push to replicated: from the registry event announcing an artifact to the end of the "
        "event-scoped replication task that copied it, by policy and target.",
        labels=["policy", "target"],
    )
    for pid, h in sorted(counts.policies.items()):
        if (name := names.get(pid)) is None:
            continue
        cumulative, running = [], 0
        for bound, n in zip(LATENCY_BUCKETS_SECONDS, h.buckets, strict=True):
            running += n
            cumulative.append((_bound(bound), running))
        cumulative.append(("+Inf", h.count))
        family.add_metric(list(name), cumulative, h.sum_seconds)
    return family


def _bound(value: float) -> str:
    return repr(float(value))


class ReplicationLatency:
    """A :class:`~engine.observers.RunObserver` that observes, when an event-scoped run of a
    push policy ends, each artifact it copied into :attr:`counts`."""

    def __init__(self, db: Database, counts: LatencyCounts | None = None) -> None:
        self.db = db
        self.counts = PROCESS_COUNTS if counts is None else counts

    async def run_started(self, execution: dict[str, Any], policy: dict[str, Any]) -> None:
        pass

    async def task_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], task: dict[str, Any]
    ) -> None:
        pass

    async def run_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], status: str
    ) -> None:
        if not execution.get("scope_json") or execution.get("dry_run"):
            return
        if policy.get("src_registry_id") is not None:  # a pull: the events are the remote's
            return
        queued = _aware(execution.get("start_time"))
        if queued is None:
            return
        small = int(execution.get("total") or 0) <= DIGESTS_PER_QUERY  # one query's worth
        async with self.db.quick_read() if small else self.db.read() as c:
            found = await run_latencies(c, int(execution["id"]), queued - EVENT_WINDOW)
        for seconds in found:
            self.counts.observe(int(policy["id"]), seconds)


async def run_latencies(c: SqlConnection, execution_id: int, since: datetime) -> list[float]:
    """Event → task end, seconds, for each artifact the run copied whose event is found."""
    tasks = (await c.execute(_COPIED, {"eid": execution_id})).all()
    if not tasks:
        return []
    wanted = {(str(r), str(d)) for r, d, _ in tasks}
    digests = sorted({d for _, d in wanted})
    events: dict[tuple[str, str], list[datetime]] = {}
    # the run's own events, not the window's
    if len(digests) <= DIGESTS_ONE_BY_ONE:
        queries = [(_EVENTS_OF, {"since": since, "digest": d}) for d in digests]
    else:
        n = DIGESTS_PER_QUERY
        queries = [
            (
                select(E.c.repository, E.c.digest, E.c.created_at).where(
                    E.c.created_at >= since, E.c.digest.in_(digests[i : i + n])
                ),
                None,
            )
            for i in range(0, len(digests), n)
        ]
    for statement, params in queries:
        for repo, digest, at in await c.execute(statement, params):
            if (key := (str(repo), str(digest))) in wanted:
                events.setdefault(key, []).append(_aware(at) or since)
    out: list[float] = []
    late = 0
    for repo, digest, end in tasks:
        ended = _aware(end)
        assert ended is not None
        before = [t for t in events.get((repo, digest), []) if t <= ended]
        if not before and late < MAX_LATE_LOOKUPS:
            late += 1
            before = await _older_event(c, repo, digest, ended)
        if before:
            out.append((ended - max(before)).total_seconds())
    return out


async def _older_event(c: SqlConnection, repo: str, digest: str, ended: datetime) -> list[datetime]:
    row = (
        await c.execute(
            select(E.c.created_at)
            .where(E.c.repository == repo, E.c.digest == digest, E.c.created_at <= ended)
            .order_by(E.c.id.desc())
            .limit(1)
        )
    ).first()
    at = _aware(row[0]) if row is not None else None
    return [at] if at is not None else []


def _aware(value: Any) -> datetime | None:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
