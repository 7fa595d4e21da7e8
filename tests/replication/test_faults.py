"""Faults during a run: the destination goes away and comes back; the engine is killed and
restarted. Runs complete, digests match on the far side, completed work is not redone."""

from __future__ import annotations

import json
import os
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
from tests.support.client import OCI_MANIFEST, client, image_manifest, push_blob, sha256
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


def test_a_failed_task_does_not_break_a_blob_it_shared(
    fresh_seawall: SeawallProcess, tmp_path: Path
) -> None:
    """Two artifacts share a big layer; the first also has a layer the source has lost. Its
    failure cancels its copy of the shared layer mid-flight: the second, waiting on that copy,
    copies the layer itself and lands whole (it once PUT its manifest without the layer). Whether
    the second is already waiting when the first fails is a matter of milliseconds, so four such
    pairs run at once."""
    local = fresh_seawall.start()
    dist = DistributionProcess(tmp_path / "dist").start()
    want: dict[str, str] = {}  # manifest digest -> the task status it must end with
    shared_layers: dict[str, str] = {}  # repository -> its shared layer's digest
    try:
        with (
            client(local.url, "admin", local.admin_password) as c,
            api(local.url, local.admin_password) as a,
        ):
            for n in range(4):
                repo = f"shared/app{n}"
                shared, lost = os.urandom(2 * MiB), os.urandom(1000)
                configs = [
                    json.dumps({"architecture": "amd64", "os": "linux", "n": n, "i": i}).encode()
                    for i in (1, 2)
                ]
                for blob in (shared, lost, *configs):
                    push_blob(c, repo, blob)
                first = image_manifest(configs[0], [shared, lost])
                second = image_manifest(configs[1], [shared])
                for tag, manifest in (("a", first), ("b", second)):
                    r = c.put(
                        f"/v2/{repo}/manifests/{tag}",
                        content=manifest,
                        headers={"Content-Type": OCI_MANIFEST},
                    )
                    assert r.status_code == 201, r.text
                # the source loses a layer of "a" (unlinked from the repository): it fails
                assert c.delete(f"/v2/{repo}/blobs/{sha256(lost)}").status_code == 202
                want[sha256(first)], want[sha256(second)] = "Failed", "Succeed"
                shared_layers[repo] = sha256(shared)
            # capped at 1 MiB/s the shared layers take ~8 s: in flight when the "a"s fail
            pid = add_policy(
                a, "shared", dest=add_endpoint(a, "dist", dist.url), speed_bytes_per_second=MiB
            )
            ex = wait(a, start(a, pid), 120)
            assert ex["status"] == "Failed", dumps(ex)
            tasks = a.get(f"/replication/executions/{ex['id']}/tasks").json()
            assert {t["digest"]: t["status"] for t in tasks} == want, dumps(tasks)
        with httpx.Client(base_url=dist.url) as d:
            for repo, layer in shared_layers.items():
                assert d.head(f"/v2/{repo}/blobs/{layer}").status_code == 200
                assert digest_of(d, repo, "b") is not None
                assert digest_of(d, repo, "a") is None
    finally:
        dist.stop()
