"""A regex tag filter built to backtrack — ``(a+)+$`` against ``"a" * 27 + "-"`` — must not stall
the server: while policies with it are evaluated (an event run on push, then a manual run),
manifest GETs stay fast, and the runs still apply the filter (nothing matches, nothing copied)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.replication.support import add_endpoint, add_policy, api, dumps, start, wait
from tests.support.client import ACCEPT, client, push_image
from tests.support.distribution import DistributionProcess, distribution_available
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.skipif(not distribution_available(), reason="docker-registry missing")

EVIL = r"(a+)+$"
#: each costs Python's backtracking ``re`` seconds (doubling per extra character)
TAGS = ["a" * n + "-" for n in (24, 25, 26, 27)]
#: Not a performance target (measured when quiet: p99 under 50 ms, against 7 s before RE2):
#: the line between "requests go on" and "the event loop stalls", which Python's backtracking
#: ``re`` does for seconds per tag, with room for a loaded CI machine.
P99_BUDGET_S = 1.0


def _latencies(url: str, password: str, stop: threading.Event, out: list[float]) -> None:
    with client(url, "admin", password) as c:
        c.get("/v2/calm/manifests/1.0", headers={"Accept": ACCEPT})  # token fetched first
        while not stop.is_set() and len(out) < 5000:
            started = time.perf_counter()
            r = c.get("/v2/calm/manifests/1.0", headers={"Accept": ACCEPT})
            out.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
            time.sleep(0.005)


def test_a_backtracking_regex_filter_does_not_stall_requests(
    fresh_seawall: SeawallProcess, tmp_path: Path
) -> None:
    local = fresh_seawall.start()
    dist = DistributionProcess(tmp_path / "dist").start()
    stop, latencies = threading.Event(), []
    try:
        with (
            client(local.url, "admin", local.admin_password) as c,
            api(local.url, local.admin_password) as a,
        ):
            push_image(c, "calm", "1.0", seed="calm")
            dest = add_endpoint(a, "dist", dist.url)
            evil = [{"type": "tag", "value": EVIL, "syntax": "regex"}]
            on_push = add_policy(
                a, "evil-events", dest=dest, filters=evil, trigger={"type": "event_based"}
            )
            by_hand = add_policy(a, "evil-manual", dest=dest, filters=evil)
            probe = threading.Thread(
                target=_latencies, args=(local.url, local.admin_password, stop, latencies)
            )
            probe.start()
            time.sleep(0.3)
            for tag in TAGS:  # each push queues an event run that evaluates the filter
                push_image(c, "evil", tag, seed="evil")
            ex = wait(a, start(a, by_hand), 120)
            assert ex["status"] == "Succeed" and ex["total"] == 0, dumps(ex)
            runs = a.get("/replication/executions", params={"policy_id": on_push}).json()
            runs = [wait(a, r["id"], 120) for r in runs]
            assert runs and all(r["total"] == 0 for r in runs), dumps(runs)  # nothing kept
            time.sleep(0.3)
        with httpx.Client(base_url=dist.url) as d:  # nothing matched, nothing was copied
            assert d.get("/v2/evil/tags/list").status_code == 404
    finally:
        stop.set()
        dist.stop()
    assert len(latencies) > 20, "the probe made too few requests to judge"
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    assert p99 < P99_BUDGET_S, f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
