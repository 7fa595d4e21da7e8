"""``seawall_replication_latency_seconds``: push → replicated, per policy and target.

A real event policy replicates two pushes to CNCF distribution; the server's ``/metrics``
(read with Prometheus' text parser) then holds one observation per push, whose sum is the time
from each push's outbox event to the end of the task that copied it, as the server's database
recorded them. The counts add up across workers (their files) and survive a JSON round trip."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import pytest

from engine.latency import LATENCY_BUCKETS_SECONDS, LatencyCounts, latency_family
from registry.http.metrics import RequestMetrics
from seawall.metrics import WorkerShare
from tests.metrics.scrape import scrape, value
from tests.replication.support import add_endpoint, add_policy, api, digest_of
from tests.schedules.test_events import eventually
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

NAME = "seawall_replication_latency_seconds"
LABELS = {"policy": "to-dist", "target": "dist"}


def _time(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def recorded_latencies(server: SeawallProcess) -> list[float]:
    """Event → task end of every copied task, from the server's database."""
    with sqlite3.connect(server.data_dir / "seawall.db") as db:
        rows = db.execute(
            "SELECT e.created_at, t.end_time FROM task t JOIN event e"
            " ON e.repository = t.src_repository AND e.digest = t.digest AND e.action = 'push'"
            " WHERE t.outcome = 'copied'"
        ).fetchall()
    return [(_time(end) - _time(at)).total_seconds() for at, end in rows]


def test_each_replicated_push_is_observed_from_its_event(
    local: SeawallProcess, tmp_path: Path
) -> None:
    auth = ("admin", local.admin_password)
    with (
        DistributionProcess(tmp_path / "dist") as dist,
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
        httpx.Client(base_url=dist.url) as d,
    ):
        add_policy(
            a, "to-dist", dest=add_endpoint(a, "dist", dist.url), trigger={"type": "event_based"}
        )
        pushed = [push_image(c, f"apps/r{i}", "1", seed=f"r{i}")[0] for i in range(2)]
        for i, digest in enumerate(pushed):
            eventually(lambda i=i, g=digest: digest_of(d, f"apps/r{i}", "1") == g, what="copied")
        # observed when each run ends, just after its tag is at the destination
        eventually(lambda: value(scrape(local.url, auth), f"{NAME}_count", **LABELS) == 2.0)
        samples = scrape(local.url, auth)
    expected = recorded_latencies(local)
    assert len(expected) == 2 and all(x > 0 for x in expected)
    assert value(samples, f"{NAME}_sum", **LABELS) == pytest.approx(sum(expected), abs=1e-3)
    assert value(samples, f"{NAME}_bucket", le="+Inf", **LABELS) == 2.0
    slowest = max(expected)
    first_above = min(b for b in LATENCY_BUCKETS_SECONDS if b >= slowest)
    assert value(samples, f"{NAME}_bucket", le=repr(first_above), **LABELS) == 2.0


def test_the_family_is_cumulative_and_left_out_for_unknown_policies() -> None:
    counts = LatencyCounts()
    for seconds in (0.01, 0.07, 0.07, 4.0, 7200.0):
        counts.observe(1, seconds)
    counts.observe(9, 1.0)  # a policy since deleted
    family = latency_family(counts, {1: ("p", "b")})
    got = {(s.name, s.labels.get("le")): s.value for s in family.samples}
    assert got[("seawall_replication_latency_seconds_bucket", "0.05")] == 1
    assert got[("seawall_replication_latency_seconds_bucket", "0.1")] == 3
    assert got[("seawall_replication_latency_seconds_bucket", "5.0")] == 4
    assert got[("seawall_replication_latency_seconds_bucket", "3600.0")] == 4
    assert got[("seawall_replication_latency_seconds_bucket", "+Inf")] == 5
    assert got[("seawall_replication_latency_seconds_count", None)] == 5
    assert got[("seawall_replication_latency_seconds_sum", None)] == pytest.approx(7204.15)
    assert {s.labels["policy"] for s in family.samples} == {"p"}


def test_workers_add_up_through_their_files(tmp_path: Path) -> None:
    mine, theirs = LatencyCounts(), LatencyCounts()
    mine.observe(1, 0.2)
    theirs.observe(1, 0.3)
    theirs.observe(2, 20.0)
    WorkerShare(tmp_path, RequestMetrics(), pid=2, latency=theirs).write()
    share = WorkerShare(tmp_path, RequestMetrics(), pid=1, latency=mine)
    total = anyio.run(share.latency_total)
    assert {pid: h.count for pid, h in total.policies.items()} == {1: 2, 2: 1}
    assert total.policies[1].sum_seconds == pytest.approx(0.5)
    assert len(share.read_others()) == 1  # the request counts still read back
    again = LatencyCounts.from_json(total.to_json())
    assert again == total
    (tmp_path / "3.json").write_text('{"requests": [], "latency": [[1, [1], 1, 0.1]]}')
    assert anyio.run(share.latency_total) == total  # a file that does not fit is skipped
