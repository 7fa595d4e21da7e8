#!/usr/bin/env python3
"""The failover drill (``seawall dr drill``) under a steady push stream, three local Seawalls.

    drill_bench.py [--rate 25] [--seconds 20] [--after-kill 5] [--repeats 1]
                   [--drills a,b] [--topology mesh|star] [--out FILE] [--keep]

Per repeat, a fresh world: Seawalls A (``dr.region_name = a``), B and C on 127.0.0.1 (fresh data
dirs, free ports, ``seawall serve`` in a process group each, as the tests start them); on A,
endpoints for B and C, event-based push policies ``drill/**`` A → B and A → C, and regions
``b`` and ``c`` declared; with ``--topology mesh`` (default) B and C also declare the other two
as regions (no policies), so each survivor reads through from the other what it lacks (``star``:
only A declares regions; a survivor then cannot serve what only the other one holds). Then,
for each drilled region in turn (default A, then B):

1. Small distinct images (a unique config and a 2–16 KiB layer) are pushed to A at ``--rate``
   per second (push *i* starts at ``t0 + i/rate``, at most 16 in flight), round-robin over
   five repositories. A push is *acknowledged* when its manifest ``PUT`` returned 201.
2. After ``--seconds``, ``seawall dr drill --region R --json`` runs beside A with A's data dir
   and port, ``--fail-command 'kill -9 -PGID'`` (R's server process group: every pid of
   it) and a ``--restore-command`` that starts R again as it was started. The stream keeps
   pushing until ``--after-kill`` seconds after the bench sees R's server die (then stops, so
   the drill's re-convergence watch can settle); pushes that fail are counted, not
   acknowledged.
3. Right after the kill the bench asks B and C itself (as Seawall: no read-through) which
   acknowledged pushes neither holds — a cross-check of the drill's RPO, dated by the bench's
   own acknowledgement times.

One JSON line per drill (``--out``, default ``bench/results/drill-DATE.jsonl``): the drill's
``passed``, ``reasons``, ``rpo_artifacts``, ``rpo_seconds``, the lost artifacts' ages and how
many were acknowledged more than 1 s before the kill (target 0), ``rto_seconds`` (target
< 10 s), when the region answered again and re-converged, pushes acknowledged / failed, the
load average at start and end, and the commit the servers ran.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-admin-password"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
PREFIX = "drill"
REPOS = 5
GRACE_SECONDS = 1.0  # the drill's default --ack-grace-seconds
SEAWALL_AGENT = {"User-Agent": "seawall/bench"}  # asked as Seawall: no read-through

RESTART = """\
import json, os, subprocess, sys
spec = json.load(open(sys.argv[1]))[os.environ["SEAWALL_DRILL_REGION"]]
log = open(spec["log"], "ab")
p = subprocess.Popen(spec["cmd"], env=spec["env"], cwd=spec["cwd"], stdin=subprocess.DEVNULL,
                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
open(spec["pgid"], "w").write(str(p.pid))
"""


# --- processes -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """One ``seawall serve`` in its own process group (pid = pgid, kept in ``pgid_file``)."""

    name: str
    work: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.work / self.name

    @property
    def pgid_file(self) -> Path:
        return self.work / f"{self.name}.pgid"

    def spec(self) -> dict[str, Any]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
        env.update(SEAWALL_ADMIN_PASSWORD=PASSWORD, **self.env)
        cmd = [sys.executable, "-m", "seawall", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        log = str(self.work / f"{self.name}.log")
        return {"cmd": cmd, "env": env, "cwd": str(ROOT), "log": log, "pgid": str(self.pgid_file)}

    def start(self) -> None:
        s = self.spec()
        with open(s["log"], "ab") as log:
            self.proc = subprocess.Popen(
                s["cmd"], env=s["env"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.pgid_file.write_text(str(self.proc.pid))

    def wait_up(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + "/v2/", timeout=2.0)
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not answer within {timeout_s}s")

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            os.killpg(int(self.pgid_file.read_text()), signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(OSError, ValueError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)


def api(url: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/api/v2.0", auth=("admin", PASSWORD), timeout=60.0)


def declare(a: Server, others: list[Server], mesh: bool) -> None:
    """On A: an endpoint, an event-based push policy and a region per other Seawall. With
    ``mesh``, B and C also declare each other and A as regions (no policies): each survivor
    then reads through from the others what it lacks."""
    for s in others:
        endpoint = add_region(a, s)
        policy = {
            "name": f"to-{s.name}",
            "src_registry": None,
            "dest_registry": {"id": endpoint},
            "trigger": {"type": "event_based"},
            "filters": [{"type": "name", "value": f"{PREFIX}/**"}],
            "enabled": True,
            "override": True,
        }
        with api(a.url) as c:
            c.post("/replication/policies", json=policy).raise_for_status()
    if mesh:
        everyone = [a, *others]
        for here in others:
            for there in everyone:
                if there is not here:
                    add_region(here, there)


def add_region(here: Server, there: Server) -> int:
    """``there`` as a ``seawall`` endpoint and a region on ``here``; the endpoint's id."""
    credential = {"type": "basic", "access_key": "admin", "access_secret": PASSWORD}
    body = {"name": f"{there.name}-seawall", "type": "seawall", "url": there.url}
    with api(here.url) as c:
        r = c.post("/registries", json={**body, "insecure": True, "credential": credential})
        r.raise_for_status()
        endpoint = int(r.headers["Location"].rsplit("/", 1)[1])
        r = c.post("/regions", json={"name": there.name, "registry": {"id": endpoint}})
        r.raise_for_status()
    return endpoint


# --- registry client -------------------------------------------------------------------------
def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class TokenAuth(httpx.Auth):
    """The Docker token flow, a token kept per repository."""

    requires_response_body = True

    def __init__(self) -> None:
        self.basic = httpx.BasicAuth("admin", PASSWORD)
        self.tokens: dict[str, str] = {}

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        m = re.match(r"/v2/(.+?)/(blobs|manifests|tags)/", request.url.path)
        key = m.group(1) if m else request.url.path
        if key in self.tokens:
            request.headers["Authorization"] = "Bearer " + self.tokens[key]
        response = yield request
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code != 401 or not challenge.lower().startswith("bearer"):
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        token_request = httpx.Request("GET", params.pop("realm"), params=params)
        token_response = yield next(self.basic.auth_flow(token_request))
        if token_response.status_code != 200:
            return
        body = json.loads(token_response.content)
        self.tokens[key] = body.get("token") or body["access_token"]
        request.headers["Authorization"] = "Bearer " + self.tokens[key]
        yield request


def registry(url: str, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    return httpx.AsyncClient(
        base_url=url, auth=TokenAuth(), timeout=10.0, limits=limits, headers=headers
    )


def make_image(i: int, nonce: str) -> tuple[bytes, bytes, bytes]:
    """(config, layer, manifest) of a distinct small image."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "bench": f"{nonce}-{i}"}).encode()
    rng = random.Random(f"{nonce}-{i}")
    layer = rng.randbytes(rng.randint(2048, 16384))
    desc = [("application/vnd.oci.image.config.v1+json", config)]
    desc.append(("application/vnd.oci.image.layer.v1.tar+gzip", layer))
    blobs = [{"mediaType": t, "digest": sha256(b), "size": len(b)} for t, b in desc]
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": blobs[0]}
    return config, layer, json.dumps({**manifest, "layers": blobs[1:]}).encode()


async def push_blob(c: httpx.AsyncClient, repo: str, data: bytes) -> None:
    digest, headers = sha256(data), {"Content-Type": "application/octet-stream"}
    r = await c.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=headers
    )
    if r.status_code == 202:
        loc = r.headers["Location"]
        sep = "&" if "?" in loc else "?"
        r = await c.put(f"{loc}{sep}digest={digest}", content=data, headers=headers)
    if r.status_code != 201:
        raise RuntimeError(f"blob: {r.status_code}")


# --- the stream ------------------------------------------------------------------------------
@dataclass
class Push:
    i: int
    repo: str
    tag: str
    digest: str = ""
    acked_wall: float | None = None  # the manifest PUT returned 201
    error: str = ""


class Stream:
    """Pushes to ``url`` at ``rate``/s until :meth:`stop`."""

    def __init__(self, url: str, rate: float) -> None:
        self.url, self.rate = url, rate
        self.nonce = uuid.uuid4().hex[:8]
        self.pushes: list[Push] = []
        self.stopped = asyncio.Event()
        self.started: float | None = None  # wall time

    def stop(self) -> None:
        self.stopped.set()

    async def run(self) -> None:
        slots, tasks = asyncio.Semaphore(16), []
        async with registry(self.url) as c:
            t0, self.started = time.monotonic(), time.time()
            for i in range(10**6):
                delay = t0 + i / self.rate - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopped.wait(), max(0.0, delay))
                if self.stopped.is_set():
                    break
                p = Push(i, f"{PREFIX}/app{i % REPOS}", f"t{i:05d}-{self.nonce}")
                self.pushes.append(p)
                tasks.append(asyncio.create_task(self._one(c, p, slots)))
            await asyncio.gather(*tasks)

    async def _one(self, c: httpx.AsyncClient, p: Push, slots: asyncio.Semaphore) -> None:
        config, layer, manifest = make_image(p.i, self.nonce)
        async with slots:
            try:
                await push_blob(c, p.repo, config)
                await push_blob(c, p.repo, layer)
                r = await c.put(
                    f"/v2/{p.repo}/manifests/{p.tag}",
                    content=manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                if r.status_code != 201:
                    raise RuntimeError(f"manifest: {r.status_code}")
            except Exception as e:  # after the kill: expected, counted
                p.error = type(e).__name__
                return
        p.acked_wall, p.digest = time.time(), sha256(manifest)


async def unheld(pushes: list[Push], survivors: list[Server]) -> list[Push]:
    """The acknowledged pushes no survivor holds (asked as Seawall, by tag)."""
    clients = [registry(s.url, SEAWALL_AGENT) for s in survivors]
    slots = asyncio.Semaphore(16)

    async def held(p: Push) -> bool:
        for c in clients:
            async with slots:
                with contextlib.suppress(httpx.HTTPError):
                    r = await c.head(
                        f"/v2/{p.repo}/manifests/{p.tag}", headers={"Accept": OCI_MANIFEST}
                    )
                    if r.status_code == 200 and r.headers.get("Docker-Content-Digest") == p.digest:
                        return True
        return False

    try:
        acked = [p for p in pushes if p.acked_wall is not None]
        found = await asyncio.gather(*(held(p) for p in acked))
        return [p for p, ok in zip(acked, found, strict=True) if not ok]
    finally:
        for c in clients:
            await c.aclose()


# --- one drill -------------------------------------------------------------------------------
def drill_command(a: Server, victim: Server, work: Path) -> list[str]:
    pgid = int(victim.pgid_file.read_text())
    restore = f"{sys.executable} {work / 'restart.py'} {work / 'specs.json'}"
    return [
        sys.executable, "-m", "seawall", "dr", "drill", "--region", victim.name, "--json",
        "--data-dir", str(a.data_dir), "--port", str(a.port),
        "--fail-command", f"kill -9 -{pgid}", "--restore-command", restore,
        "--poll-seconds", "0.2", "--converge-timeout-seconds", "120",
    ]  # fmt: skip


async def watch_death(proc: subprocess.Popen[bytes]) -> float:
    """The wall time at which ``proc`` was first seen dead (polled every 10 ms)."""
    while proc.poll() is None:  # noqa: ASYNC110 (a child's exit is no event here)
        await asyncio.sleep(0.01)
    return time.time()


async def drill_under_stream(
    args: argparse.Namespace, a: Server, victim: Server, others: list[Server], work: Path
) -> dict[str, Any]:
    assert victim.proc is not None and victim.proc.poll() is None, "drill a running server"
    stream = Stream(a.url, args.rate)
    pushing = asyncio.create_task(stream.run())
    await asyncio.sleep(args.seconds)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    env.update(a.env)
    started = time.time()
    drill = await asyncio.create_subprocess_exec(
        *drill_command(a, victim, work), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    done = asyncio.create_task(drill.communicate())
    death = asyncio.create_task(watch_death(victim.proc))
    await asyncio.wait({done, death}, return_when=asyncio.FIRST_COMPLETED)
    killed_wall = death.result() if death.done() else None
    crosscheck: list[Push] = []
    if killed_wall is not None:
        if victim is a:  # B and C frozen: A's engine is dead
            crosscheck = await unheld(stream.pushes, others)
        await asyncio.sleep(max(0.0, killed_wall + args.after_kill - time.time()))
    stream.stop()
    await pushing
    out, err = await asyncio.wait_for(done, 600)
    death.cancel()
    report = json.loads(out) if out.strip() else {}
    (work / f"report-{victim.name}.json").write_bytes(out)
    return row(args, victim.name, stream, report, drill.returncode, err.decode(), killed_wall,
               started, crosscheck)  # fmt: skip


def row(
    args: argparse.Namespace,
    region: str,
    stream: Stream,
    report: dict[str, Any],
    code: int | None,
    stderr: str,
    killed: float | None,
    started: float,
    crosscheck: list[Push],
) -> dict[str, Any]:
    acked = {p.digest: p.acked_wall for p in stream.pushes if p.acked_wall is not None}
    before = [t for t in acked.values() if killed is None or (t is not None and t <= killed)]
    lost = report.get("lost") or []
    ages = [x.get("age_seconds") for x in lost]
    bench_ages = [round(killed - acked[x["digest"]], 3) if killed and x["digest"] in acked
                  else None for x in lost]  # fmt: skip
    recovery = report.get("recovery") or {}
    answered, converged = (
        recovery.get("answered_after_seconds"),
        recovery.get("converged_after_seconds"),
    )
    cross_ages = sorted(
        round(killed - p.acked_wall, 3) for p in crosscheck if killed and p.acked_wall
    )
    return {
        "bench": "drill",
        "region": region,
        "rate": args.rate,
        "seconds": args.seconds,
        "exit_code": code,
        "passed": report.get("passed"),
        "reasons": report.get("reasons"),
        "rpo_artifacts": report.get("rpo_artifacts"),
        "rpo_seconds": report.get("rpo_seconds"),
        "lost_ages_s": ages,
        "lost_ages_bench_s": bench_ages,
        "lost_acked_over_1s": sum(1 for x in ages if x is None or x > GRACE_SECONDS),
        "rto_seconds": report.get("rto_seconds"),
        "artifacts": report.get("artifacts"),
        "served": report.get("served"),
        "failure_confirmed": (report.get("failure") or {}).get("confirmed"),
        "answered_after_s": answered,
        "converged": recovery.get("converged"),
        "converged_after_s": converged,
        "reconverge_after_answer_s": (
            round(converged - answered, 3) if converged is not None and answered else None
        ),
        "pushes": len(stream.pushes),
        "acked": len(acked),
        "acked_before_kill": len(before),
        "failed": sum(1 for p in stream.pushes if p.error),
        "crosscheck_unheld": len(crosscheck),
        "crosscheck_unheld_ages_s": cross_ages[:50],
        "ack_rate_before_kill": ack_rate(stream, killed),
        "drill_wall_s": round(time.time() - started, 1),
        "unserved_count": report.get("unserved_count"),
        "unserved": (report.get("unserved") or [])[:5],
        "problems": report.get("problems"),
        "stderr": stderr[-1000:],
    }


def ack_rate(stream: Stream, killed: float | None) -> float | None:
    """Acknowledged pushes per second from the stream's start to the kill (is the rate kept?)"""
    if killed is None or stream.started is None:
        return None
    n = sum(1 for p in stream.pushes if p.acked_wall is not None and p.acked_wall <= killed)
    return round(n / max(1e-3, killed - stream.started), 2)


# --- a world ---------------------------------------------------------------------------------
def run_world(args: argparse.Namespace, work: Path, k: int) -> list[dict[str, Any]]:
    base = work / f"w{k}"
    base.mkdir()
    a, b, c = (Server(n, base, {"SEAWALL_DR__REGION_NAME": n}) for n in "abc")
    rows = []
    try:
        for s in (a, b, c):
            s.start()
        for s in (a, b, c):
            s.wait_up()
        (base / "specs.json").write_text(json.dumps({s.name: s.spec() for s in (a, b, c)}))
        (base / "restart.py").write_text(RESTART)
        declare(a, [b, c], args.topology == "mesh")
        for name in args.drills.split(","):
            victim = {"a": a, "b": b, "c": c}[name]
            load_start = os.getloadavg()
            result = asyncio.run(drill_under_stream(args, a, victim, [b, c], base))
            a.wait_up()
            victim.proc = None  # restarted by the restore hook (pgid file), not ours
            result.update(load_stamp(load_start), repeat=k, topology=args.topology)
            result["logs"] = str(base)
            print(summary(result), flush=True)
            rows.append(result)
            with open(args.out, "a") as f:
                f.write(json.dumps(result) + "\n")
    finally:
        for s in (a, b, c):
            s.kill()
    return rows


def load_stamp(start: tuple[float, float, float]) -> dict[str, Any]:
    end = os.getloadavg()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "code": args_code,
        "load1_start": round(start[0], 2),
        "load5_start": round(start[1], 2),
        "load1_end": round(end[0], 2),
        "load5_end": round(end[1], 2),
        "cpus": os.cpu_count(),
    }


def code_version() -> str:
    """The commit the servers run (``SEAWALL_BENCH_CODE`` for an exported tree), ``+dirty``
    when its packages have uncommitted changes."""
    if label := os.environ.get("SEAWALL_BENCH_CODE"):
        return label
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    pkgs = ("adapters", "engine", "registry", "schedules", "seawall")
    dirty = subprocess.run([*git, "status", "--porcelain", "--", *pkgs], capture_output=True)
    return (head.stdout.strip() or "unknown") + ("+dirty" if dirty.stdout.strip() else "")


args_code = "unknown"


def summary(r: dict[str, Any]) -> str:
    return (
        f"drill of {r['region']}: passed {r['passed']} (exit {r['exit_code']}), "
        f"RPO {r['rpo_artifacts']} lost (ages {r['lost_ages_s']}; over 1 s: "
        f"{r['lost_acked_over_1s']}), RTO {r['rto_seconds']} s, answered after "
        f"{r['answered_after_s']} s, re-converged {r['converged_after_s']} s after the failure; "
        f"{r['acked']} acked ({r['acked_before_kill']} before the kill), {r['failed']} failed; "
        f"bench cross-check unheld {r['crosscheck_unheld']} {r['crosscheck_unheld_ages_s'][:5]}; "
        f"load {r['load1_start']} -> {r['load1_end']}; reasons {r['reasons']}"
    )


def main() -> None:
    global args_code
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=25.0, help="pushes per second (default 25)")
    ap.add_argument("--seconds", type=float, default=20.0, help="push this long, then drill")
    ap.add_argument("--after-kill", type=float, default=5.0, help="push this long after the kill")
    ap.add_argument("--drills", default="a,b", help="regions drilled in turn (a, b, c)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--topology",
        choices=("mesh", "star"),
        default="mesh",
        help="mesh: B and C also declare each other and A (read-through among survivors); "
        "star: only A declares regions",
    )
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"drill-{day}.jsonl")
    ap.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    args = ap.parse_args()
    if not (0 < args.rate <= 200 and 0 < args.seconds <= 600 and 0 <= args.after_kill <= 60):
        ap.error("--rate 0..200, --seconds 0..600, --after-kill 0..60")
    if not set(args.drills.split(",")) <= {"a", "b", "c"}:
        ap.error("--drills: a comma-separated list of a, b, c")
    args_code = code_version()
    work = Path(tempfile.mkdtemp(prefix="seawall-drill-bench-"))
    try:
        for k in range(args.repeats):
            run_world(args, work, k)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
