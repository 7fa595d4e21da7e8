"""A failed event run's retry is a row in the database: the source Seawall killed (``kill -9``)
during the back-off and restarted still retries it, and the pushed tag arrives without any
reconciliation run (its interval is set far beyond the test)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.replication.support import add_endpoint, add_policy, api, digest_of, dumps
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess, distribution_available
from tests.support.server import SeawallProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not distribution_available(), reason="docker-registry missing"),
]


def _failed_event_run(a: httpx.Client, policy_id: int, timeout_s: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = a.get("/replication/executions", params={"policy_id": policy_id}).json()
        failed = [r for r in runs if r["status"] == "Failed"]
        if failed:
            return failed[0]
        time.sleep(0.1)
    raise AssertionError(f"no event run failed within {timeout_s}s: {dumps(runs)}")


def test_an_event_retry_survives_kill_9_during_its_back_off(tmp_path: Path) -> None:
    local = SeawallProcess(tmp_path / "data", extra_env={"SEAWALL_RECONCILE_SECONDS": "86400"})
    dist = DistributionProcess(tmp_path / "dist").start()
    local.start()
    try:
        with api(local.url, local.admin_password) as a:
            dest = add_endpoint(a, "dist", dist.url)
            pid = add_policy(a, "on-push", dest=dest, trigger={"type": "event_based"})
        dist.stop()  # the destination is down
        with client(local.url, "admin", local.admin_password) as c:
            digest, _ = push_image(c, "team/app", "1.0", seed="retry")
        with api(local.url, local.admin_password) as a:
            failed = _failed_event_run(a, pid)
        local.kill()  # kill -9 within the first back-off (5 s)
        assert failed["trigger"] == "event_based", dumps(failed)
        local.start()
        dist.start()  # the destination is back, on the same port with the same storage
        with httpx.Client(base_url=dist.url) as d:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and digest_of(d, "team/app", "1.0") is None:
                time.sleep(0.3)
            assert digest_of(d, "team/app", "1.0") == digest, local.log()
        with api(local.url, local.admin_password) as a:
            runs = a.get("/replication/executions", params={"policy_id": pid}).json()
        assert all(r["trigger"] == "event_based" for r in runs), dumps(runs)
        assert any(r["status"] == "Succeed" for r in runs), dumps(runs)
    finally:
        local.kill()
        dist.stop()
