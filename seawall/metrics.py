"""Metrics wiring: what ``/metrics`` shows in a worker, and how several workers add up.

One worker (the default) counts its requests in memory and shows them. With several
(``workers`` > 1) a scrape reaches one worker at random, so each worker also writes its counts
to ``<data_dir>/metrics/workers-<launcher pid>/<pid>.json`` every :data:`SHARE_SECONDS`
(atomically: a temporary file renamed), and ``/metrics`` adds the other workers' files to its
own live counts. Other workers' figures are thus up to :data:`SHARE_SECONDS` old; a worker
that dies keeps its file, so the totals never go back. A new server (another launcher pid)
starts from zero and removes the folders of launchers that are gone.

Why not prometheus-client's multiprocess mode: it writes every observation to an mmap file
(measured here, per request with the label children cached: 4.3 µs in multiprocess mode, 2.2 µs
with the library in memory, against 0.7 µs for Seawall's recorder), it must be configured
through the environment before the library is imported, and its directory must be wiped by the
launcher. Plain integers, written out once a second, cost nothing per request beyond counting
(``docs/registry-api.md``, "Metrics").

The replication and check figures are read from the database at each scrape
(:mod:`engine.metrics`): the same from any worker or node. The push → replicated histogram
(:mod:`engine.latency`) is counted in memory by the worker whose replication service ended the
run, so it is shared like the request counts: each worker's file carries both.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from prometheus_client.core import Metric

from engine.latency import PROCESS_COUNTS, LatencyCounts
from engine.metrics import CheckMetrics, CheckResult, ReplicationMetrics
from registry.http.metrics import Metrics, MetricsSource, RequestCounts, RequestMetrics
from registry.meta.db import Database
from seawall.config import Settings

__all__ = ["SHARE_SECONDS", "MetricsWiring", "WorkerShare", "build_metrics"]

log = logging.getLogger("seawall")

#: How often each worker writes its request counts for the others (several workers only).
SHARE_SECONDS = 1.0


class WorkerShare:
    """This worker's request counts written for the others, and theirs read back (a
    :class:`~registry.http.metrics.MetricsSource`)."""

    def __init__(
        self,
        directory: Path,
        requests: RequestMetrics,
        pid: int | None = None,
        latency: LatencyCounts = PROCESS_COUNTS,
    ) -> None:
        self.directory, self.requests, self.latency = directory, requests, latency
        self.pid = os.getpid() if pid is None else pid
        self.path = directory / f"{self.pid}.json"

    @classmethod
    def for_server(cls, data_dir: Path, requests: RequestMetrics) -> WorkerShare:
        """The share of this worker of the server launched by this process's parent; folders
        of launchers that are no longer running are removed."""
        root, launcher = data_dir / "metrics", os.getppid()
        with contextlib.suppress(OSError):
            for old in root.glob("workers-*"):
                pid = old.name.removeprefix("workers-")
                if pid.isdigit() and int(pid) != launcher and not _running(int(pid)):
                    shutil.rmtree(old, ignore_errors=True)
        directory = root / f"workers-{launcher}"
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory, requests)

    def write(self) -> None:
        """Write this worker's counts (blocking: call it off the event loop)."""
        temporary = self.path.with_suffix(".tmp")
        body = {"requests": self.requests.counts.to_json(), "latency": self.latency.to_json()}
        temporary.write_text(json.dumps(body))
        os.replace(temporary, self.path)

    def read_others(self) -> list[RequestCounts]:
        """The other workers' request counts as last written (blocking); unreadable files are
        skipped."""
        return [requests for requests, _ in self._read_others()]

    def _read_others(self) -> list[tuple[RequestCounts, LatencyCounts]]:
        out = []
        for path in sorted(self.directory.glob("*.json")):
            if path == self.path:
                continue
            try:
                body = json.loads(path.read_text())
                requests = RequestCounts.from_json(body["requests"])
                out.append((requests, LatencyCounts.from_json(body["latency"])))
            except (OSError, ValueError, KeyError, TypeError) as e:
                log.warning("metrics: skipping %s: %s", path, e)
        return out

    async def latency_total(self) -> LatencyCounts:
        """Push → replicated counts of every worker: this one's live, the others' as written."""
        total = LatencyCounts().add(self.latency)
        for _, other in await anyio.to_thread.run_sync(self._read_others):
            total.add(other)
        return total

    async def run(self) -> None:
        """Write the counts every :data:`SHARE_SECONDS` until cancelled, and once more then."""
        try:
            while True:
                await anyio.sleep(SHARE_SECONDS)
                await anyio.to_thread.run_sync(self.write)
        finally:
            with anyio.CancelScope(shield=True), contextlib.suppress(OSError):
                await anyio.to_thread.run_sync(self.write)

    async def collect(self) -> Sequence[Metric]:
        total = RequestCounts().add(self.requests.counts)  # a copy: the loop keeps counting
        for other in await anyio.to_thread.run_sync(self.read_others):
            total.add(other)
        return total.families()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class MetricsWiring:
    """What ``seawall.app`` wires: the app's :class:`Metrics`, the check gauges (for the
    failover checks that run in this process), and the worker share to run, if any."""

    metrics: Metrics
    checks: CheckMetrics
    share: WorkerShare | None = None

    async def start(self, tg: TaskGroup) -> None:
        if self.share is not None:
            tg.start_soon(self.share.run, name="metrics-share")


def build_metrics(settings: Settings, db: Database) -> MetricsWiring:
    requests = RequestMetrics()
    share = WorkerShare.for_server(settings.data_path, requests) if settings.workers > 1 else None
    checks = CheckMetrics(load=_region_checks(db))
    latency = share.latency_total if share is not None else _own_latency
    replication = ReplicationMetrics(db, latency=latency)
    sources: tuple[MetricsSource, ...] = (share or requests, replication, checks)
    return MetricsWiring(Metrics(requests, sources, public=settings.metrics.public), checks, share)


async def _own_latency() -> LatencyCounts:
    return PROCESS_COUNTS


def _region_checks(db: Database) -> Callable[[], Awaitable[Sequence[CheckResult]]] | None:
    """The latest failover checks recorded in the database (``engine.regions``), when this
    build has them."""
    try:
        from engine.regions.store import RegionStore
    except ImportError:
        return None
    store = RegionStore(db)

    async def load() -> list[CheckResult]:
        out = []
        for name, check in (await store.latest()).items():
            report = check.report
            counts = report.get("consistency")
            counts = counts if isinstance(counts, dict) else {}
            at = check.checked_at
            out.append(
                CheckResult(
                    name,
                    check.healthy,
                    check.lag_seconds,
                    int(counts.get("missing_count", len(report.get("missing") or []))),
                    int(counts.get("differs_count", len(report.get("differs") or []))),
                    at.replace(tzinfo=UTC) if at.tzinfo is None else at,
                )
            )
        return out

    return load
