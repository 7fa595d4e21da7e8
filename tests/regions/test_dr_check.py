"""``seawall region`` and ``seawall dr check`` against three real Seawalls.

A is this Seawall (region ``a``); B and C are regions, each a ``seawall`` endpoint of A kept
in step by a manual push policy. After replicating, C loses a tag (missing), B holds one
tag at another digest (differs) and one of its own (extra); the check must report exactly
those, then a stopped C as unhealthy (exit 1, one alert however often it is checked), a
pending change as lag, and, once repaired, exit 0 and a recovery alert.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from seawall.cli import main
from tests.replication.support import add_endpoint, add_policy, api, run
from tests.support.client import client, push_image
from tests.support.distribution import DistributionProcess
from tests.support.server import SeawallProcess

CANARY = "seawall-canary"
Done = tuple[int, str, str]  # exit code, stdout, stderr


def started(tmp_path: Path, count: int) -> list[SeawallProcess]:
    """``count`` Seawalls started at once; the first is region ``a`` (this Seawall)."""
    env = {"SEAWALL_DR__REGION_NAME": "a", "SEAWALL_DR__CHECK_TIMEOUT_SECONDS": "20"}
    procs = [SeawallProcess(tmp_path / "a", extra_env=env)]
    procs += [SeawallProcess(tmp_path / name) for name in "bc"[: count - 1]]
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda p: p.start(timeout_s=120), procs))
    return procs


@pytest.fixture
def three(tmp_path: Path) -> Iterator[list[SeawallProcess]]:
    procs: list[SeawallProcess] = []
    try:
        procs = started(tmp_path, 3)
        yield procs
    finally:
        for proc in procs:
            proc.kill()


@pytest.fixture
def two(tmp_path: Path) -> Iterator[list[SeawallProcess]]:
    procs: list[SeawallProcess] = []
    try:
        procs = started(tmp_path, 2)
        yield procs
    finally:
        for proc in procs:
            proc.kill()


def seawall(a: SeawallProcess, *args: str) -> Done:
    """The CLI (``seawall.cli.main``, in this process) against A as admin."""
    out, err = io.StringIO(), io.StringIO()
    env = {"SEAWALL_URL": a.url, "SEAWALL_ADMIN_PASSWORD": a.admin_password}
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("SEAWALL_")]:
            mp.delenv(key)
        for key, value in env.items():
            mp.setenv(key, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse's usage errors
                code = int(e.code or 0)
    return code, out.getvalue(), err.getvalue()


def check(a: SeawallProcess) -> tuple[int, dict[str, dict[str, Any]]]:
    code, out, err = seawall(a, "dr", "check", "--json")
    assert err == "", err
    return code, {r["name"]: r for r in json.loads(out)["regions"]}


def deliveries(c: httpx.Client, policy_id: int) -> list[str]:
    found = c.get(f"/replication/policies/{policy_id}/deliveries", params={"page_size": 100})
    return sorted(d["event_type"] for d in found.json())


def replicated(a: SeawallProcess, regions: dict[str, SeawallProcess]) -> dict[str, int]:
    """A holds apps/web:1.0, apps/web:2.0, apps/api:1.0 (and scratch/tmp:x, which no policy
    selects); a manual push policy per region, ``apps/**`` (to C under the namespace
    ``mirror``), run once; each region declared with the CLI. Returns the policies' ids."""
    policies = {}
    with client(a.url, "admin", a.admin_password) as pa, api(a.url, a.admin_password) as c:
        for repo, tag in (("apps/web", "1.0"), ("apps/web", "2.0"), ("apps/api", "1.0")):
            push_image(pa, repo, tag, seed=f"{repo}{tag}")
        push_image(pa, "scratch/tmp", "x", seed="not protected")
        for name, proc in regions.items():
            endpoint = add_endpoint(
                c, f"{name}-seawall", proc.url, "seawall", "admin", proc.admin_password
            )
            policies[name] = add_policy(
                c,
                f"to-{name}",
                dest=endpoint,
                filters=[{"type": "name", "value": "apps/**"}],
                dest_namespace="mirror" if name == "c" else "",
            )
            assert run(c, policies[name])[0]["status"] == "Succeed"
            added = seawall(a, "region", "add", name, "--registry", f"{name}-seawall")
            assert added[0] == 0, added
    return policies


def check_in_a_process(a: SeawallProcess) -> tuple[int, dict[str, dict[str, Any]]]:
    """The real command, in a process of its own: exit status and JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    env.update(SEAWALL_URL=a.url, SEAWALL_ADMIN_PASSWORD=a.admin_password)
    done = subprocess.run(
        [sys.executable, "-m", "seawall", "dr", "check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stderr == ""
    return done.returncode, {r["name"]: r for r in json.loads(done.stdout)["regions"]}


def test_dr_check_reports_health_lag_and_differences(three: list[SeawallProcess]) -> None:
    a, b, c = three
    policies = replicated(a, {"b": b, "c": c})
    hook = {
        "name": "alerts",
        "address": "http://127.0.0.1:9/alerts",  # never answers: the rows are what counts
        "event_types": ["REGION_UNHEALTHY", "REGION_RECOVERED"],
    }
    with (
        client(a.url, "admin", a.admin_password) as pa,
        client(b.url, "admin", b.admin_password) as pb,
        client(c.url, "admin", c.admin_password) as pc,
        api(a.url, a.admin_password) as api_a,
    ):
        assert api_a.post(f"/replication/policies/{policies['c']}/webhooks", json=hook).is_success
        # C loses a tag; B moves one and gains one of its own
        gone = pc.head("/v2/mirror/api/manifests/1.0").headers["Docker-Content-Digest"]
        assert pc.delete(f"/v2/mirror/api/manifests/{gone}").status_code == 202
        push_image(pb, "apps/web", "2.0", seed="moved in b")
        push_image(pb, "apps/web", "hotfix", seed="only in b")

        code, found = check_in_a_process(a)
        assert code == 1
        assert list(found) == ["a", "b", "c"]
        assert found["a"]["self"] is True and found["a"]["healthy"] is True
        for name in ("b", "c"):
            assert found[name]["healthy"] is True, found[name]
            assert found[name]["health"]["canary"] is True
            assert found[name]["health"]["canary_removed"] is True
            assert found[name]["lag_seconds"] == 0.0  # caught up: nothing pushed since
        assert (found["b"]["missing"], found["b"]["differs"]) == ([], ["apps/web:2.0"])
        assert found["b"]["extra"] == ["apps/web:hotfix"]
        assert (found["c"]["missing"], found["c"]["differs"]) == (["mirror/api:1.0"], [])
        assert found["c"]["consistency"]["protected_repositories"] == 2
        for proc in (a, b, c):  # the canaries were cleaned up
            with client(proc.url, "admin", proc.admin_password) as x:
                for region in ("a", "b", "c"):
                    r = x.get(f"/v2/{CANARY}/{region}/tags/list")
                    assert r.status_code == 404 or r.json().get("tags") in (None, [])

        # a pending change: lag at both regions; C stopped: unhealthy, one alert
        push_image(pa, "apps/web", "3.0", seed="pending")
        c.stop()
        for _ in range(2):
            code, found = check(a)
            assert code == 1
            assert found["b"]["healthy"] is True and found["b"]["lag_seconds"] > 0
            assert found["c"]["healthy"] is False
            assert found["c"]["health"]["reachable"] is False
            assert found["c"]["lag_seconds"] > 0
            assert found["c"]["lag"][0]["policy"] == "to-c"
        assert deliveries(api_a, policies["c"]) == ["REGION_UNHEALTHY"]

        # repaired: C back, both policies run again (B's moved tag is overwritten)
        c.start(timeout_s=120)
        for name in ("b", "c"):
            assert run(api_a, policies[name])[0]["status"] == "Succeed"
        code, found = check(a)
        assert code == 0, found
        assert all(r["missing"] == r["differs"] == [] for r in found.values())
        assert found["c"]["lag_seconds"] == 0.0
        assert deliveries(api_a, policies["c"]) == ["REGION_RECOVERED", "REGION_UNHEALTHY"]
        code, table, _ = seawall(a, "dr", "check")
        assert code == 0 and "all regions healthy and consistent" in table


def test_region_cli_and_latest_results(
    two: list[SeawallProcess], dist: DistributionProcess
) -> None:
    a, b = two
    with api(a.url, a.admin_password) as api_a:
        add_endpoint(api_a, "b-seawall", b.url, "seawall", "admin", b.admin_password)
        add_endpoint(api_a, "d-distribution", dist.url)
    added = seawall(a, "region", "add", "b", "--registry", "b-seawall", "--protect", "lib/**")
    assert added[0] == 0 and "added region b" in added[1], added
    listed = json.loads(seawall(a, "region", "list", "--json")[1])
    assert [(r["name"], r["self"]) for r in listed] == [("a", True), ("b", False)]
    assert listed[1]["repositories"] == ["lib/**"] and listed[1]["status"] is None
    code, out, _ = seawall(a, "dr", "check", "--latest")
    assert code == 1 and "never checked" in out
    assert seawall(a, "dr", "check", "--region", "b")[0] == 0
    latest = json.loads(seawall(a, "dr", "check", "--latest", "--json")[1])
    assert [r["name"] for r in latest["regions"]] == ["b"]
    table = seawall(a, "region", "list")[1]
    assert "a (this Seawall)" in table and "b-seawall" in table
    shown = seawall(a, "region", "show", "b")[1]
    assert "healthy:     yes" in shown and "lib/**" in shown
    # --protect: lib/** here must be there too, under the same name
    with client(a.url, "admin", a.admin_password) as pa:
        push_image(pa, "lib/base", "1", seed="base")
    code, out, _ = seawall(a, "dr", "check", "--region", "b")
    assert code == 1 and "b: missing 1" in out and "lib/base:1" in out
    with client(b.url, "admin", b.admin_password) as pb:
        push_image(pb, "lib/base", "1", seed="base")
    assert seawall(a, "dr", "check", "--region", "b")[0] == 0
    # a registry that is not a Seawall (CNCF distribution, tags listed without digests)
    added = seawall(a, "region", "add", "d", "--registry", "d-distribution", "--protect", "lib/*")
    assert added[0] == 0, added
    code, out, _ = seawall(a, "dr", "check", "--region", "d", "--json")
    (d,) = json.loads(out)["regions"]
    assert code == 1 and d["healthy"] and d["health"]["canary_removed"], d
    assert (d["missing"], d["differs"], d["extra"]) == (["lib/base:1"], [], [])
    with httpx.Client(base_url=dist.url) as pd:
        push_image(pd, "lib/base", "1", seed="base")
    assert seawall(a, "dr", "check", "--region", "d")[0] == 0
    # reachable, but the credentials are refused: unhealthy, said why
    with api(a.url, a.admin_password) as api_a:
        add_endpoint(api_a, "b-wrong", b.url, "seawall", "admin", "not-the-password")
    assert seawall(a, "region", "add", "w", "--registry", "b-wrong")[0] == 0
    code, out, _ = seawall(a, "dr", "check", "--region", "w", "--json")
    (w,) = json.loads(out)["regions"]
    assert code == 1 and not w["healthy"] and w["consistency"]["checked"] is False
    assert (w["health"]["reachable"], w["health"]["authenticated"]) == (True, False)
    assert "401" in w["health"]["detail"], w["health"]
    # usage and lookup errors: one line, exit 2 / 1
    for args, code, words in (
        (("region", "add", "b2", "--registry", "nope"), 1, "no registry named 'nope'"),
        (("region", "add", "Bad!", "--registry", "b-seawall"), 1, "region name 'Bad!'"),
        (("region", "add", "b", "--registry", "b-seawall"), 1, "CONFLICT"),
        (("region", "remove", "a"), 1, "own region"),
        (("dr", "check", "--region", "zz"), 1, "no region named 'zz'"),
        (("dr", "check", "--latest", "--region", "b"), 2, "--latest"),
        (("dr", "frobnicate"), 2, "invalid choice"),
    ):
        done, _, err = seawall(a, *args)
        assert done == code, (args, err)
        assert words in err, err
        if code == 1:  # argparse's usage errors (2) come with the usage line
            assert len(err.strip().splitlines()) == 1, err
    assert seawall(a, "region", "remove", "b")[0] == 0
    listed = json.loads(seawall(a, "region", "list", "--json")[1])
    assert [r["name"] for r in listed] == ["a", "d", "w"]
