"""``seawall dr drill`` against three real Seawalls, run as the real command in a process of its
own, beside region A's server, with A's settings.

A is this Seawall (region ``a``) with event-based push policies ``apps/**`` to B and C, both
declared regions. The drill's hooks are shell commands: the fail command ``kill -9``s the
region's whole process group (its pid from a file the test keeps current), the restore
command starts the region's server again, detached, as the test started it.

1. Region B killed: nothing is lost (A and C hold everything B held), every artifact is served
   by A and C at once, B comes back and catches up with the push A took while it was down.
2. This Seawall (A) killed while its replication is held back (A runs without its engine: its
   outbox consumer does not run): the push it acknowledged but never replicated is lost, and
   so is one it took after the drill listed it (the fail command pushes, then kills), both
   dated by A's outbox; A comes back with its engine and B and C re-converge.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.replication.support import add_endpoint, add_policy, api
from tests.support.client import (
    OCI_INDEX,
    OCI_MANIFEST,
    client,
    image_manifest,
    push_blob,
    push_image,
    sha256,
)
from tests.support.server import SeawallProcess, wait_http

ROOT = Path(__file__).resolve().parents[2]
SEAWALL_AGENT = {"User-Agent": "seawall/test"}  # asked as Seawall: no read-through
A_ENV = {"SEAWALL_DR__REGION_NAME": "a"}

RESTART = """\
import json, os, subprocess, sys
spec = json.load(open(sys.argv[1]))[os.environ["SEAWALL_DRILL_REGION"]]
log = open(spec["log"], "ab")
p = subprocess.Popen(spec["cmd"], env=spec["env"], stdin=subprocess.DEVNULL, stdout=log,
                     stderr=subprocess.STDOUT, start_new_session=True)
open(spec["pgid"], "w").write(str(p.pid))
print("started", spec["cmd"][-1], "as", p.pid)
"""

PUSH = """\
import sys
sys.path.insert(0, sys.argv[1])
from tests.support.client import client, push_image
root, url, password, repo, tag, seed = sys.argv[1:]
with client(url, "admin", password) as c:
    print(push_image(c, repo, tag, seed=seed)[0])
"""


@dataclass
class World:
    a: SeawallProcess
    b: SeawallProcess
    c: SeawallProcess
    dir: Path

    def procs(self) -> dict[str, SeawallProcess]:
        return {"a": self.a, "b": self.b, "c": self.c}

    def pgid_file(self, name: str) -> Path:
        return self.dir / f"{name}.pgid"


def _serve_spec(proc: SeawallProcess, env: dict[str, str]) -> dict[str, Any]:
    """How ``SeawallProcess.start`` starts ``proc``, for the restore hook."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    full.update(SEAWALL_ADMIN_PASSWORD=proc.admin_password, **env)
    cmd = [sys.executable, "-m", "seawall", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(proc.port), "--data-dir", str(proc.data_dir)]
    return {"cmd": cmd, "env": full, "log": str(proc.log_path)}


@contextlib.contextmanager
def world(tmp_path: Path, a_env: dict[str, str]) -> Iterator[World]:
    """Three Seawalls started at once; afterwards every process group the test or the
    restore hook started is killed."""
    w = World(
        SeawallProcess(tmp_path / "a", extra_env=a_env),
        SeawallProcess(tmp_path / "b"),
        SeawallProcess(tmp_path / "c"),
        tmp_path / "drill",
    )
    w.dir.mkdir()
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda p: p.start(timeout_s=120), w.procs().values()))
        specs = {}
        for name, proc in w.procs().items():
            assert proc.proc is not None
            w.pgid_file(name).write_text(str(proc.proc.pid))
            env = {**A_ENV} if name == "a" else {}  # A comes back with its engine on
            specs[name] = {**_serve_spec(proc, env), "pgid": str(w.pgid_file(name))}
        (w.dir / "specs.json").write_text(json.dumps(specs))
        (w.dir / "restart.py").write_text(RESTART)
        (w.dir / "push.py").write_text(PUSH)
        yield w
    finally:
        for name, proc in w.procs().items():
            with contextlib.suppress(OSError, ValueError):
                os.killpg(int(w.pgid_file(name).read_text()), signal.SIGKILL)
            proc.kill()


def declare(w: World) -> None:
    """On A: endpoints for B and C, event-based push policies ``apps/**``, the regions."""
    with api(w.a.url, w.a.admin_password) as c:
        for name, proc in (("b", w.b), ("c", w.c)):
            endpoint = add_endpoint(
                c, f"{name}-seawall", proc.url, "seawall", "admin", proc.admin_password
            )
            add_policy(
                c,
                f"to-{name}",
                dest=endpoint,
                filters=[{"type": "name", "value": "apps/**"}],
                trigger={"type": "event_based"},
            )
            r = c.post("/regions", json={"name": name, "registry": {"id": endpoint}})
            assert r.status_code == 201, r.text


def push_index(c: httpx.Client, repo: str, tag: str) -> str:
    """An OCI index of two images pushed by digest; its digest."""
    children = []
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux"}).encode()
        layer = f"layer of {arch}".encode() * 50
        for blob in (config, layer):
            push_blob(c, repo, blob)
        manifest = image_manifest(config, [layer])
        digest = sha256(manifest)
        r = c.put(
            f"/v2/{repo}/manifests/{digest}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201, r.text
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    r = c.put(f"/v2/{repo}/manifests/{tag}", content=index, headers={"Content-Type": OCI_INDEX})
    assert r.status_code == 201, r.text
    return sha256(index)


def push_apps(proc: SeawallProcess) -> dict[str, str]:
    """The protected images (and one unprotected); ``repo:tag -> digest``."""
    with client(proc.url, "admin", proc.admin_password) as c:
        pushed = {
            f"{repo}:{tag}": push_image(c, repo, tag, seed=f"{repo}{tag}")[0]
            for repo, tag in (("apps/web", "1.0"), ("apps/web", "2.0"), ("apps/api", "1.0"))
        }
        pushed["apps/multi:1"] = push_index(c, "apps/multi", "1")
        push_image(c, "scratch/tmp", "x", seed="not protected")
    return pushed


def holds(proc: SeawallProcess, ref: str, digest: str) -> bool:
    """Whether ``proc`` itself holds ``ref`` at ``digest`` (asked as Seawall)."""
    repo, tag = ref.rsplit(":", 1)
    with client(proc.url, "admin", proc.admin_password, headers=SEAWALL_AGENT) as c:
        r = c.head(
            f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST + ", " + OCI_INDEX}
        )
    return r.status_code == 200 and r.headers.get("Docker-Content-Digest") == digest


def eventually(
    check: Callable[[], bool], what: str, log: Callable[[], str], timeout_s: float = 120.0
) -> None:
    """Poll ``check`` (a condition, not a time) until it holds (a failed event run is
    retried 5 s, then 20 s, then 60 s later: room for two retries on a loaded machine)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s}s\n{log()[-3000:]}"
        time.sleep(0.1)


def drill(
    w: World, region: str, *extra: str, hooks: bool = True
) -> tuple[int, dict[str, Any], str]:
    """``seawall dr drill`` with A's settings (and the hooks): exit code, JSON, stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    env.update(A_ENV)
    args = ["--region", region, "--json", "--data-dir", str(w.a.data_dir), "--port", str(w.a.port)]
    if hooks:
        kill = f'kill -9 -"$(cat {w.dir}/$SEAWALL_DRILL_REGION.pgid)"'
        push = f"{sys.executable} {w.dir / 'push.py'} {ROOT} {w.a.url} {w.a.admin_password}"
        if region == "b":  # and a change B misses while it is down
            fail = f"{kill} && {push} apps/web 3.0 'while b was down'"
        else:  # a push A takes after the drill listed it, just before it dies
            fail = f"{push} apps/web 9.10 'just before the kill' && {kill}"
        restore = f"{sys.executable} {w.dir / 'restart.py'} {w.dir / 'specs.json'}"
        args += ["--fail-command", fail, "--restore-command", restore, "--poll-seconds", "0.2"]
        args += ["--converge-timeout-seconds", "120"]
    args += extra
    done = subprocess.run(
        [sys.executable, "-m", "seawall", "dr", "drill", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    (w.dir / f"report-{region}{'' if hooks else '-simulated'}.json").write_text(done.stdout)
    print(
        json.dumps(
            {
                k: report[k]
                for k in ("region", "passed", "rpo_artifacts", "rpo_seconds", "rto_seconds")
            }
        )
    )
    return done.returncode, report, done.stderr


def points(report: dict[str, Any], region: str) -> list[dict[str, Any]]:
    return [p for p in report["series"] if p["region"] == region]


def test_drill_of_a_killed_region(tmp_path: Path) -> None:
    with world(tmp_path, A_ENV) as w:
        declare(w)
        pushed = push_apps(w.a)
        for proc in (w.b, w.c):
            for ref, digest in pushed.items():
                replicated = lambda p=proc, r=ref, d=digest: holds(p, r, d)  # noqa: E731
                eventually(replicated, f"{ref} replicated", w.a.log)
        b_server = w.b.proc
        assert b_server is not None
        # simulated first: nothing is stopped, the survivors are judged by what they hold
        code, report, err = drill(w, "b", hooks=False)
        assert code == 0 and report["passed"] is True, (report["reasons"], err)
        assert (report["rpo_artifacts"], report["served"]) == (0, 4)
        assert report["failure"]["mode"] == "simulated" and report["recovery"]["attempted"] is False
        assert b_server.poll() is None

        code, report, err = drill(w, "b")

        assert b_server.poll() == -signal.SIGKILL  # the fail hook's kill -9 took B down
        assert code == 0 and report["passed"] is True, (report["reasons"], err)
        assert report["rpo_artifacts"] == 0 and report["lost"] == [] and report["rpo_seconds"] == 0
        assert 0 <= report["rto_seconds"] < 10
        assert (report["artifacts"], report["served"]) == (4, 4)  # 3 images and the index
        assert report["survivors"] == ["a", "c"]
        failure = report["failure"]
        assert failure["mode"] == "hooks" and failure["confirmed"] is True
        assert failure["hook"]["exit_code"] == 0
        # B came back, was sent what it missed and re-converged
        recovery = report["recovery"]
        assert recovery["converged"] is True and recovery["runs_queued"] == ["to-b"], recovery
        assert recovery["answered_after_seconds"] < recovery["converged_after_seconds"]
        b_points = points(report, "b")
        assert b_points[0]["missing"] is None  # down: not listed
        assert b_points[0]["lag_seconds"] > 0  # apps/web:3.0 pushed to A while B was down
        assert (b_points[-1]["missing"], b_points[-1]["lag_seconds"]) == (0, 0)
        with client(w.a.url, "admin", w.a.admin_password) as ca:
            moved = ca.head("/v2/apps/web/manifests/3.0", headers={"Accept": OCI_MANIFEST})
        assert holds(w.b, "apps/web:3.0", moved.headers["Docker-Content-Digest"])
        for ref, digest in pushed.items():
            assert holds(w.b, ref, digest)


def test_drill_of_this_seawall_with_an_unreplicated_push(tmp_path: Path) -> None:
    # A takes pushes but does not replicate them (no engine, its outbox waits)
    with world(tmp_path, {**A_ENV, "SEAWALL_ENGINE_ENABLED": "false"}) as w:
        for proc in (w.a, w.b, w.c):  # the same images everywhere to begin with
            pushed = push_apps(proc)
        declare(w)
        with client(w.a.url, "admin", w.a.admin_password) as ca:
            held_back, _ = push_image(ca, "apps/web", "9.9", seed="acknowledged, not replicated")
        a_server = w.a.proc
        assert a_server is not None

        code, report, err = drill(w, "a", "--ack-grace-seconds", "0")

        assert a_server.poll() == -signal.SIGKILL
        assert code == 1 and report["passed"] is False, err
        # lost: the push held back, and the one A took after the drill listed it (its outbox)
        last_moment = report["failure"]["hook"]["output"].strip()
        assert report["rpo_artifacts"] == 2
        lost = {tuple(x["tags"]): x for x in report["lost"]}
        assert (lost[("9.9",)]["digest"], lost[("9.10",)]["digest"]) == (held_back, last_moment)
        for x in lost.values():
            assert x["repository"] == "apps/web" and x["acknowledged_at"] is not None
            assert sorted(x["survivors"]) == ["b:apps/web", "c:apps/web"]
        assert 0 < lost[("9.10",)]["age_seconds"] < lost[("9.9",)]["age_seconds"]
        assert report["rpo_seconds"] == lost[("9.9",)]["age_seconds"]
        assert any("2 lost artifact(s)" in r for r in report["reasons"]), report["reasons"]
        # everything else B and C serve at once
        assert report["survivors"] == ["b", "c"]
        assert report["artifacts"] == len(pushed) + 2 and report["served"] == len(pushed)
        assert 0 <= report["rto_seconds"] < 10
        # A back with its engine: its outbox and the queued runs bring B and C up to date
        assert report["recovery"]["converged"] is True, report["recovery"]
        assert sorted(report["recovery"]["runs_queued"]) == ["to-b", "to-c"]
        for region in ("b", "c"):
            series = points(report, region)
            assert series[0]["missing"] == 2 and series[0]["lag_seconds"] > 0
            assert (series[-1]["missing"], series[-1]["lag_seconds"]) == (0, 0)
        wait_http(w.a.url + "/v2/")
        for proc in (w.b, w.c):
            assert holds(proc, "apps/web:9.9", held_back)
            assert holds(proc, "apps/web:9.10", last_moment)
