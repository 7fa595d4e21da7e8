"""Event-triggered replication from the registry's outbox: pushes, tags, deletions and late
referrers reach the other side on their own, runs merge and stay idempotent."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.replication.support import add_endpoint, add_policy, api, digest_of, dumps, tags
from tests.replication.test_seawall_to_seawall import COSIGN, SPDX
from tests.support.client import ACCEPT, OCI_MANIFEST, client, push_artifact, push_image
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

EVENT = {"type": "event_based"}


def eventually(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "") -> Any:
    """``check()``'s first truthy value; fails after ``timeout_s`` (a bound, not a target)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {timeout_s}s: {what or check}")
        time.sleep(0.05)


def executions(a: httpx.Client, pid: int) -> list[dict[str, Any]]:
    r = a.get("/replication/executions", params={"policy_id": pid, "page_size": 100})
    assert r.status_code == 200, r.text
    return list(r.json())


def test_push_and_every_tag_of_the_digest_replicate(
    local: SeawallProcess, dist: DistributionProcess
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
        httpx.Client(base_url=dist.url) as d,
    ):
        pid = add_policy(
            a,
            "on-push",
            dest=add_endpoint(a, "dist", dist.url),
            trigger=EVENT,
            filters=[{"type": "name", "value": "apps/**"}],
        )
        digest, manifest = push_image(c, "apps/web", "1.0", seed="web")
        eventually(lambda: digest_of(d, "apps/web", "1.0") == digest, what="apps/web:1.0")
        # A second tag on the same digest (no new manifest): the tag event carries it.
        r = c.put(
            "/v2/apps/web/manifests/latest",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201
        eventually(lambda: tags(d, "apps/web") == ["1.0", "latest"], what="both tags")
        assert digest_of(d, "apps/web", "latest") == digest
        # A repository outside the policy's filter never moves.
        push_image(c, "other/thing", "1", seed="other")
        time.sleep(1.5)
        assert tags(d, "other/thing") == []
        runs = executions(a, pid)
        assert runs and all(x["trigger"] == "event_based" for x in runs), dumps(runs)
        assert all(x["status"] == "Succeed" for x in runs if x["status"] != "InProgress")


def test_deletions_replicate_only_when_the_policy_says_so(
    local: SeawallProcess, dist: DistributionProcess, tmp_path: Path
) -> None:
    keep = DistributionProcess(tmp_path / "keep").start()
    try:
        with (
            client(local.url, "admin", local.admin_password) as c,
            api(local.url, local.admin_password) as a,
            httpx.Client(base_url=dist.url) as d,
            httpx.Client(base_url=keep.url) as k,
        ):
            add_policy(
                a,
                "mirror",
                dest=add_endpoint(a, "dist", dist.url),
                trigger=EVENT,
                deletion=True,
                max_deletion_fraction=0.5,  # 2 of the 6 tags go (the guard holds at 0.25)
            )
            add_policy(a, "keep", dest=add_endpoint(a, "keep", keep.url), trigger=EVENT)
            for tag in ("a", "b", "c", "d", "e"):
                push_image(c, "svc/api", tag, seed=tag)
            unique, _ = push_image(c, "svc/api", "f", seed="f")
            for side in (d, k):
                eventually(lambda s=side: len(tags(s, "svc/api")) == 6, what="six tags")
            assert c.delete("/v2/svc/api/manifests/a").status_code == 202  # a tag
            assert c.delete(f"/v2/svc/api/manifests/{unique}").status_code == 202  # an artifact
            eventually(lambda: tags(d, "svc/api") == ["b", "c", "d", "e"], what="deletions")
            time.sleep(1.0)
            assert tags(k, "svc/api") == ["a", "b", "c", "d", "e", "f"]  # deletion off
    finally:
        keep.stop()


def test_late_referrers_follow_their_subject(local: SeawallProcess, tmp_path: Path) -> None:
    remote = SeawallProcess(tmp_path / "remote").start()
    try:
        with (
            client(local.url, "admin", local.admin_password) as c,
            api(local.url, local.admin_password) as a,
            client(remote.url, "admin", remote.admin_password) as r,
        ):
            dest = add_endpoint(a, "remote", remote.url, "seawall", "admin", remote.admin_password)
            add_policy(a, "signed", dest=dest, trigger=EVENT)
            image, data = push_image(c, "apps/signed", "v1", seed="signed")
            eventually(lambda: digest_of(r, "apps/signed", "v1") == image, what="subject")
            # Signed and SBOM'd after the subject was replicated: untagged, found by events.
            sig = push_artifact(c, "apps/signed", COSIGN, b"signature", subject=(image, len(data)))
            sbom = push_artifact(c, "apps/signed", SPDX, b'{"spdx": 1}', subject=(image, len(data)))

            def listed() -> set[tuple[str, str]]:
                got = r.get(f"/v2/apps/signed/referrers/{image}", headers={"Accept": ACCEPT})
                return {(m["digest"], m["artifactType"]) for m in got.json()["manifests"]}

            eventually(lambda: listed() == {(sig, COSIGN), (sbom, SPDX)}, what="referrers")
            assert tags(r, "apps/signed") == ["v1"]
    finally:
        remote.kill()


def test_events_pushed_while_the_engine_is_stopped_replicate_when_it_starts(
    fresh_seawall: SeawallProcess, dist: DistributionProcess
) -> None:
    """The registry runs with its engine off (a registry-only node); events wait in the outbox,
    across a restart, until an engine starts."""
    fresh_seawall.extra_env = {"SEAWALL_ENGINE_ENABLED": "false"}
    local = fresh_seawall.start()
    with api(local.url, local.admin_password) as a:
        pid = add_policy(a, "durable", dest=add_endpoint(a, "dist", dist.url), trigger=EVENT)
    want = {}
    with client(local.url, "admin", local.admin_password) as c:
        for i in range(5):
            want[f"t{i}"], _ = push_image(c, "late/app", f"t{i}", seed=f"late{i}")
    time.sleep(1.0)
    with httpx.Client(base_url=dist.url) as d, api(local.url, local.admin_password) as a:
        assert tags(d, "late/app") == [] and executions(a, pid) == []  # nothing ran
    local.stop()
    fresh_seawall.extra_env = {}
    local.start()
    with httpx.Client(base_url=dist.url) as d:
        for tag, digest in want.items():
            eventually(lambda t=tag, g=digest: digest_of(d, "late/app", t) == g, 60, tag)
    with api(local.url, local.admin_password) as a:
        runs = executions(a, pid)
        assert runs and all(x["trigger"] == "event_based" for x in runs), dumps(runs)


def test_deleting_a_whole_repository_replicates(
    local: SeawallProcess, dist: DistributionProcess
) -> None:
    with (
        client(local.url, "admin", local.admin_password) as c,
        api(local.url, local.admin_password) as a,
        httpx.Client(base_url=dist.url) as d,
    ):
        add_policy(
            a,
            "mirror",
            dest=add_endpoint(a, "dist", dist.url),
            trigger=EVENT,
            deletion=True,
            max_deletion_fraction=0.5,
        )
        for repo in ("gone/app", "stay/app"):
            for tag in ("1", "2", "3"):
                push_image(c, repo, tag, seed=f"{repo}{tag}")
        for repo in ("gone/app", "stay/app"):
            eventually(lambda r=repo: tags(d, r) == ["1", "2", "3"], what=repo)
        # Harbor's shape: project, then the rest of the name (encoded twice when it has a /)
        assert a.delete("/projects/gone/repositories/app").status_code == 200
        assert a.delete("/projects/gone/repositories/app").status_code == 404
        assert "gone/app" not in c.get("/v2/_catalog").json()["repositories"]
        eventually(lambda: tags(d, "gone/app") == [], what="repository deleted at destination")
        assert tags(d, "stay/app") == ["1", "2", "3"]
        # the name can be pushed again
        digest, _ = push_image(c, "gone/app", "4", seed="again")
        eventually(lambda: digest_of(d, "gone/app", "4") == digest, what="pushed again")
