"""Push- and pull-based replication between Seawall and CNCF distribution, checked on the far
side by digest."""

from __future__ import annotations

import json

import httpx

from tests.replication.support import (
    add_endpoint,
    add_policy,
    api,
    digest_of,
    dumps,
    outcomes,
    run,
    tags,
)
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess


def test_push_based_with_filters_and_flattening(
    local: SeawallProcess, dist: DistributionProcess
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        want = {}
        for repo in ("team/a/app", "team/b/web", "other/x"):
            for tag in ("v1.0", "v1.1", "dev"):
                want[(repo, tag)], _ = push_image(c, repo, tag, layers=2, seed=f"{repo}{tag}")
        dest = add_endpoint(a, "dist", dist.url)
        pid = add_policy(
            a,
            "to-dist",
            dest=dest,
            dest_namespace="mirror",
            dest_namespace_replace_count=-1,
            filters=[{"type": "name", "value": "team/**"}, {"type": "tag", "value": "v*"}],
        )
        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed", dumps([ex, tasks])
        assert ex["total"] == 4 and ex["succeed"] == 4, dumps(ex)
    with httpx.Client(base_url=dist.url) as d:
        assert tags(d, "mirror/app") == ["v1.0", "v1.1"]
        assert tags(d, "mirror/web") == ["v1.0", "v1.1"]
        assert tags(d, "mirror/x") == []
        for repo, short in (("team/a/app", "mirror/app"), ("team/b/web", "mirror/web")):
            for tag in ("v1.0", "v1.1"):
                assert digest_of(d, short, tag) == want[(repo, tag)]


def test_pull_based_then_noop_and_incremental(
    local: SeawallProcess, dist: DistributionProcess
) -> None:
    with httpx.Client(base_url=dist.url) as d:
        src = {tag: push_image(d, "lib/tool", tag, seed=tag)[0] for tag in ("1", "2")}
    with (
        api(local.url, local.admin_password) as a,
        client(local.url, "admin", local.admin_password) as c,
    ):
        source = add_endpoint(a, "dist", dist.url)
        pid = add_policy(
            a,
            "from-dist",
            src=source,
            dest_namespace="",
            filters=[{"type": "name", "value": "lib/tool"}],
        )
        ex, tasks = run(a, pid)
        assert ex["status"] == "Succeed" and ex["succeed"] == 2, dumps([ex, tasks])
        for tag, digest in src.items():
            assert digest_of(c, "lib/tool", tag) == digest
        ex, tasks = run(a, pid)  # nothing changed: everything skipped as identical
        assert outcomes(tasks) == {"skipped-identical": 2}, dumps(tasks)
        with httpx.Client(base_url=dist.url) as d:
            src["3"], _ = push_image(d, "lib/tool", "3", seed="3")
        ex, tasks = run(a, pid)
        assert outcomes(tasks) == {"skipped-identical": 2, "copied": 1}, dumps(tasks)
        assert digest_of(c, "lib/tool", "3") == src["3"]


def test_override_off_leaves_a_differing_destination(
    local: SeawallProcess, dist: DistributionProcess
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        ours, _ = push_image(c, "app", "latest", seed="ours")
        with httpx.Client(base_url=dist.url) as d:
            theirs, _ = push_image(d, "app", "latest", seed="theirs")
        dest = add_endpoint(a, "dist", dist.url)
        pid = add_policy(a, "keep", dest=dest, override=False)
        _, tasks = run(a, pid)
        assert outcomes(tasks) == {"skipped-differs": 1}, dumps(tasks)
        with httpx.Client(base_url=dist.url) as d:
            assert digest_of(d, "app", "latest") == theirs
        pid2 = add_policy(a, "force", dest=dest, override=True)
        _ex, tasks = run(a, pid2)
        assert outcomes(tasks) == {"copied": 1}, dumps(tasks)
        with httpx.Client(base_url=dist.url) as d:
            assert digest_of(d, "app", "latest") == ours


def test_dry_run_changes_nothing(local: SeawallProcess, dist: DistributionProcess) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        push_image(c, "dry/app", "v1")
        dest = add_endpoint(a, "dist", dist.url)
        pid = add_policy(a, "dry", dest=dest)
        ex, tasks = run(a, pid, dry_run=True)
        assert ex["status"] == "Succeed", dumps(ex)
        assert outcomes(tasks) == {"would-copy": 1}, dumps(tasks)
    with httpx.Client(base_url=dist.url) as d:
        assert tags(d, "dry/app") == []


def test_a_blob_missing_from_local_storage_fails_its_task_clearly(
    fresh_seawall: SeawallProcess, dist: DistributionProcess
) -> None:
    """A push run reads blob bytes straight from the local storage: a blob the database links
    but the storage lost fails that artifact with a message saying so; nothing of it lands."""
    local = fresh_seawall.start()
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
    ):
        digest, data = push_image(c, "lost/app", "v1", seed="lost-layer")
        layer = json.loads(data)["layers"][0]["digest"].split(":", 1)[1]
        blob = local.data_dir / "storage" / "blobs" / "sha256" / layer[:2] / layer / "data"
        blob.unlink()
        pid = add_policy(a, "lost", dest=add_endpoint(a, "dist-lost", dist.url))
        ex, tasks = run(a, pid)
        assert ex["status"] == "Failed", dumps([ex, tasks])
        assert outcomes(tasks) == {"failed": 1}, dumps(tasks)
        assert "storage" in dumps(tasks), dumps(tasks)
    with httpx.Client(base_url=dist.url) as d:
        assert digest_of(d, "lost/app", "v1") is None
        assert digest_of(d, "lost/app", digest) is None
