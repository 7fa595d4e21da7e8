"""Faults during a run: the destination goes away and comes back; the engine is killed and
restarted. Runs complete, digests match on the far side, completed work is not redone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.replication.support import (
    add_endpoint,
    add_policy,
    api,
    digest_of,
    dumps,
    push_big_images,
    start,
    tags,
    wait,
)
from tests.support.client import client
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.slow
MiB = 1 << 20


def test_destination_outage_mid_run(fresh_seawall: SeawallProcess, tmp_path: Path) -> None:
    local = fresh_seawall.start()
    dist = DistributionProcess(tmp_path / "dist").start()
    try:
        with (
            client(local.url, "admin", local.admin_password) as c,
            api(local.url, local.admin_password) as a,
        ):
            want = push_big_images(c, "big", 6, 8)
            # Capped at 8 MiB/s, the 48 MiB take ~6 s: the outage lands mid-run on any machine.
            pid = add_policy(
                a, "out", dest=add_endpoint(a, "dist", dist.url), speed_bytes_per_second=8 * MiB
            )
            eid = start(a, pid)
            time.sleep(0.8)
            assert a.get(f"/replication/executions/{eid}").json()["status"] in (
                "Pending",
                "InProgress",
            ), "the run ended before the outage: nothing was tested"
            dist.stop()  # the destination goes away mid-run ...
            time.sleep(3)
            dist.start()  # ... and comes back on the same port with the same storage
            ex = wait(a, eid, 240)
            assert ex["status"] == "Succeed", dumps(ex)
        with httpx.Client(base_url=dist.url) as d:
            for (repo, tag), digest in want.items():
                assert digest_of(d, repo, tag) == digest
    finally:
        dist.stop()


def test_engine_killed_mid_run_resumes(tmp_path: Path) -> None:
    local = SeawallProcess(
        tmp_path / "local", extra_env={"SEAWALL_ENGINE_LEASE_SECONDS": "4"}
    ).start()
    dist = DistributionProcess(tmp_path / "dist").start()
    try:
        with (
            client(local.url, "admin", local.admin_password) as c,
            api(local.url, local.admin_password) as a,
        ):
            want = push_big_images(c, "big", 8, 8)
            # Capped at 8 MiB/s, the 64 MiB take ~8 s: the kill lands mid-run on any machine.
            pid = add_policy(
                a, "kill", dest=add_endpoint(a, "dist", dist.url), speed_bytes_per_second=8 * MiB
            )
            eid = start(a, pid)
            done = threading.Event()
            tasks: list[dict[str, object]] = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not done.is_set():
                tasks = a.get(f"/replication/executions/{eid}/tasks").json()
                if any(t["status"] == "Succeed" for t in tasks):
                    done.set()
                time.sleep(0.05)
            assert done.is_set(), "no task finished before the kill"
            before = {t["id"]: t["end_time"] for t in tasks if t["status"] == "Succeed"}
            assert len(before) < len(want), "the run ended before the kill: nothing was tested"
            local.kill()  # kill -9 mid-run
        local.start()
        with api(local.url, local.admin_password) as a:
            ex = wait(a, eid, 240)
            assert ex["status"] == "Succeed", dumps(ex)
            tasks = a.get(f"/replication/executions/{eid}/tasks", params={"page_size": 100}).json()
            assert len(tasks) == len(want)
            assert all(t["status"] == "Succeed" for t in tasks), dumps(tasks)
            # Tasks finished before the kill were not run again (same end time, one attempt).
            after = {t["id"]: t["end_time"] for t in tasks}
            assert all(after[i] == end for i, end in before.items()), dumps([before, after])
        with httpx.Client(base_url=dist.url) as d:
            for (repo, tag), digest in want.items():
                assert digest_of(d, repo, tag) == digest
                assert tags(d, repo) == ["v1"]
    finally:
        local.kill()
        dist.stop()
