"""Filters of every kind against real registries, signatures stored under the tag schema
following their subject, a run stopped in the middle of a blob, remote → remote policies."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import httpx

from tests.replication.support import (
    add_endpoint,
    add_policy,
    api,
    digest_of,
    dumps,
    outcomes,
    push_big_images,
    run,
    start,
    tags,
    wait,
)
from tests.support.client import client, push_artifact, push_image
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

MiB = 1 << 20
SPDX = "application/spdx+json"


def test_tag_filters_keep_fallback_signatures_and_type_filters_apply(
    dist: DistributionProcess, local: SeawallProcess
) -> None:
    """Pull from distribution, which has no referrers API: cosign stores signatures under
    ``sha256-<subject>.sig``. A tag filter for ``v*`` keeps v1's signature and drops dev's."""
    with (
        httpx.Client(base_url=dist.url) as d,
        api(local.url, local.admin_password) as a,
        client(local.url, "admin", local.admin_password) as c,
    ):
        v1, _ = push_image(d, "apps/web", "v1", seed="v1")
        dev, _ = push_image(d, "apps/web", "dev", seed="dev")
        for subject in (v1, dev):
            sig_tag = subject.replace(":", "-") + ".sig"
            push_image(d, "apps/web", sig_tag, seed=f"sig-{subject}")
        push_artifact(d, "apps/web", SPDX, b'{"spdxVersion": "SPDX-2.3"}', tag="v1-sbom")
        labelled, _ = push_image(d, "apps/web", "x1", seed="x1", annotations={"team": "web"})
        src = add_endpoint(a, "dist", dist.url)
        pid = add_policy(
            a,
            "releases",
            src=src,
            dest_namespace="mirror",
            dest_namespace_replace_count=1,
            filters=[
                {"type": "tag", "value": "v*"},
                {"type": "artifact_type", "value": ["image", "signature"]},
            ],
        )
        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        v1_sig = v1.replace(":", "-") + ".sig"
        assert tags(c, "mirror/web") == sorted(["v1", v1_sig]), dumps(tasks)
        assert digest_of(c, "mirror/web", "v1") == v1
        # SBOMs only this time (the artifact type is read from each manifest).
        pid2 = add_policy(
            a,
            "sboms",
            src=src,
            dest_namespace="sboms",
            dest_namespace_replace_count=1,
            filters=[{"type": "artifact_type", "value": ["sbom"]}],
        )
        ex, tasks = run(a, pid2)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert tags(c, "sboms/web") == ["v1-sbom"], dumps(tasks)
        # Labels are the manifest's annotations, as key or key=value.
        pid3 = add_policy(
            a,
            "team-web",
            src=src,
            dest_namespace="labelled",
            dest_namespace_replace_count=1,
            filters=[{"type": "label", "value": ["team=web"]}],
        )
        ex, tasks = run(a, pid3)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert tags(c, "labelled/web") == ["x1"], dumps(tasks)
        assert digest_of(c, "labelled/web", "x1") == labelled


def test_a_run_stops_within_seconds_mid_blob(
    local: SeawallProcess, dist: DistributionProcess
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        push_big_images(c, "huge", 1, 48)
        # 48 MiB at 2 MiB/s: ~24 s for the one blob if nothing stopped it.
        pid = add_policy(
            a, "slow", dest=add_endpoint(a, "dist", dist.url), speed_bytes_per_second=2 * MiB
        )
        eid = start(a, pid)
        time.sleep(3)  # well into the blob
        asked = time.monotonic()
        assert a.put(f"/replication/executions/{eid}").status_code == 200
        ex = wait(a, eid, 60)
        took = time.monotonic() - asked
        assert ex["status"] == "Stopped", dumps(ex)
        assert took < 10, f"stopping took {took:.1f}s"
        tasks = a.get(f"/replication/executions/{eid}/tasks").json()
        assert outcomes(tasks) == {"stopped": 1}, dumps(tasks)
    with httpx.Client(base_url=dist.url) as d:
        assert digest_of(d, "huge/r00", "v1") is None  # nothing half-done is visible


def test_waiting_for_the_end_of_a_run(local: SeawallProcess, dist: DistributionProcess) -> None:
    """``GET …/executions/{id}?wait=S`` answers when the run ends, or after S seconds."""
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        push_big_images(c, "waited", 1, 8)
        # 8 MiB at 4 MiB/s: about 2 s of run
        dest = add_endpoint(a, "dist-wait", dist.url)
        pid = add_policy(a, "waited", dest=dest, speed_bytes_per_second=4 * MiB)
        eid = start(a, pid)
        asked = time.monotonic()
        r = a.get(f"/replication/executions/{eid}", params={"wait": 0.3})
        assert r.status_code == 200 and r.json()["status"] == "InProgress", r.text
        assert 0.3 <= time.monotonic() - asked < 10
        r = a.get(f"/replication/executions/{eid}", params={"wait": 60})
        answered = time.time()
        ex = r.json()
        assert ex["status"] == "Succeed", dumps(ex)
        ended = datetime.fromisoformat(ex["end_time"].replace("Z", "+00:00")).timestamp()
        assert answered - ended < 2, (answered, dumps(ex))  # at the end, not after 60 s
        for bad in ("soon", "61", "-1"):
            r = a.get(f"/replication/executions/{eid}", params={"wait": bad})
            assert r.status_code == 400, r.text
            assert "wait must be" in r.text, r.text


def test_remote_to_remote(tmp_path: Path, local: SeawallProcess) -> None:
    """Between two foreign registries: the node streams, stores nothing locally."""
    one = DistributionProcess(tmp_path / "one").start()
    two = DistributionProcess(tmp_path / "two").start()
    try:
        with (
            httpx.Client(base_url=one.url) as s,
            httpx.Client(base_url=two.url) as d,
            api(local.url, local.admin_password) as a,
            client(local.url, "admin", local.admin_password) as c,
        ):
            want = {t: push_image(s, "team/app", t, seed=t, layers=2)[0] for t in ("1", "2")}
            pid = add_policy(
                a,
                "r2r",
                src=add_endpoint(a, "one", one.url),
                dest=add_endpoint(a, "two", two.url),
            )
            ex, tasks = run(a, pid)
            assert ex["status"] == "Succeed", dumps([ex, tasks])
            for tag, digest in want.items():
                assert digest_of(d, "team/app", tag) == digest
            assert c.get("/v2/_catalog").json()["repositories"] == []
            ex, tasks = run(a, pid)  # again: nothing to do
            assert outcomes(tasks) == {"skipped-identical": 2}, dumps(tasks)
    finally:
        one.stop()
        two.stop()
