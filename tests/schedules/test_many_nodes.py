"""Several Seawall nodes on one PostgreSQL database (a real server started by the suite) and one
storage directory: a cron policy fires once per fire time across nodes, a run's tasks spread
over the nodes, and when a node dies mid-run another finishes its work."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
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
    wait,
)
from tests.schedules.test_events import eventually, executions
from tests.support.client import OCI_MANIFEST, client, image_manifest, push_blob, sha256
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.slow
MiB = 1 << 20
NODE = re.compile(r"on node (\S+)")


@pytest.fixture
def nodes(tmp_path: Path, postgres_url: str) -> Iterator[list[SeawallProcess]]:
    env = {"SEAWALL_DATABASE_URL": postgres_url, "SEAWALL_ENGINE_LEASE_SECONDS": "4"}
    shared = tmp_path / "shared"
    procs = [SeawallProcess(shared, extra_env=env) for _ in range(2)]
    for p in procs:
        p.start()
    yield procs
    for p in procs:
        p.kill()


def test_cron_fires_once_across_nodes(
    nodes: list[SeawallProcess], dist: DistributionProcess
) -> None:
    a_node, b_node = nodes
    with api(a_node.url, a_node.admin_password) as a, api(b_node.url, b_node.admin_password) as b:
        trigger = {"type": "scheduled", "trigger_settings": {"cron": "*/4 * * * * *"}}
        pid = add_policy(a, "both", dest=add_endpoint(a, "dist", dist.url), trigger=trigger)
        eventually(lambda: len(executions(b, pid)) >= 4, 40, "four firings")
        a.put(f"/replication/policies/{pid}", json={"enabled": False})
        time.sleep(1)
        runs = executions(b, pid)
    fired = []
    for x in runs:
        started = datetime.fromisoformat(x["start_time"].replace("Z", "+00:00"))
        late = started.second % 4 + started.microsecond / 1e6  # after its fire time
        assert late < 3.5, dumps(runs)
        fired.append(int(started.timestamp() - late))
    assert len(fired) == len(set(fired)), dumps(runs)  # each fire time ran once, on one node
    assert all(x["trigger"] == "scheduled" for x in runs)


def _nodes_of(a: httpx.Client, eid: int) -> set[str]:
    found: set[str] = set()
    for t in a.get(f"/replication/executions/{eid}/tasks", params={"page_size": 100}).json():
        log = a.get(f"/replication/executions/{eid}/tasks/{t['id']}/log").text
        found.update(NODE.findall(log))
    return found


def test_tasks_spread_and_a_dead_nodes_work_is_finished(
    nodes: list[SeawallProcess], dist: DistributionProcess
) -> None:
    a_node, b_node = nodes
    with (
        client(a_node.url, "admin", a_node.admin_password) as c,
        api(a_node.url, a_node.admin_password) as a,
    ):
        want = push_big_images(c, "spread", 16, 4)
        # 64 MiB, each node capped at 4 MiB/s: long enough to kill a node mid-run.
        pid = add_policy(
            a, "spread", dest=add_endpoint(a, "dist", dist.url), speed_bytes_per_second=4 * MiB
        )
        eid = start(a, pid)
        # (a task's log, naming its node, is stored when the task ends)
        eventually(lambda: len(_nodes_of(a, eid)) == 2, 60, "tasks finished on both nodes")
        tasks = a.get(f"/replication/executions/{eid}/tasks", params={"page_size": 100}).json()
        done = [t for t in tasks if t["status"] == "Succeed"]
        assert len(done) < len(want), "the run ended before the kill: nothing was tested"
    a_node.kill()  # kill -9 one node mid-run: its leases expire and the other takes over
    with api(b_node.url, b_node.admin_password) as b:
        ex = wait(b, eid, 240)
        assert ex["status"] == "Succeed", dumps(ex)
        tasks = b.get(f"/replication/executions/{eid}/tasks", params={"page_size": 100}).json()
        assert len(tasks) == len(want) and all(t["status"] == "Succeed" for t in tasks)
    with httpx.Client(base_url=dist.url) as d:
        for (repo, tag), digest in want.items():
            assert digest_of(d, repo, tag) == digest


def test_events_on_a_registry_only_node_replicate_through_another(
    tmp_path: Path, postgres_url: str, dist: DistributionProcess
) -> None:
    """Node A serves the registry with its engine off; node B's engine reads A's events from
    the shared outbox and replicates them, once each."""
    env = {"SEAWALL_DATABASE_URL": postgres_url}
    shared = tmp_path / "shared"
    a_node = SeawallProcess(shared, extra_env={**env, "SEAWALL_ENGINE_ENABLED": "false"}).start()
    b_node = SeawallProcess(shared, extra_env=env).start()
    try:
        with (
            client(a_node.url, "admin", a_node.admin_password) as c,
            api(a_node.url, a_node.admin_password) as a,
            httpx.Client(base_url=dist.url) as d,
        ):
            trigger = {"type": "event_based"}
            pid = add_policy(a, "ev", dest=add_endpoint(a, "dist", dist.url), trigger=trigger)
            want = {}
            for i in range(6):
                config = json.dumps({"n": i, "architecture": "amd64", "os": "linux"}).encode()
                layer = f"layer {i}".encode() * 50
                push_blob(c, "edge/app", config)
                push_blob(c, "edge/app", layer)
                manifest = image_manifest(config, [layer])
                r = c.put(
                    f"/v2/edge/app/manifests/v{i}",
                    content=manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                assert r.status_code == 201, r.text
                want[f"v{i}"] = sha256(manifest)
            for tag, digest in want.items():
                eventually(lambda t=tag, g=digest: digest_of(d, "edge/app", t) == g, 60, tag)
            runs = [wait(a, int(x["id"]), 60) for x in executions(a, pid)]
            assert all(x["status"] == "Succeed" for x in runs), dumps(runs)
            copied = sum(
                1
                for x in runs
                for t in a.get(f"/replication/executions/{x['id']}/tasks").json()
                if t["outcome"] == "copied"
            )
            assert copied == len(want), dumps(runs)  # each artifact copied once
    finally:
        a_node.kill()
        b_node.kill()
