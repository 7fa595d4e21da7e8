#!/usr/bin/env python3
"""Push-to-replica latency of event-triggered replication from one local Seawall to others.

    event_latency.py [--rate 5] [--duration 60] [--targets 1] [--grace 30] [--repeats 1]
                     [--out FILE] [--postgres URL | --postgres-auto]

Starts Seawall A (the source) and ``--targets`` replicas B1…BN on 127.0.0.1 and free ports,
registers each replica on A as a ``seawall`` endpoint (admin credentials) and creates one
``event_based`` push policy A → Bj per replica (a fan-out: every push goes to every replica).
The replicas run with read-through off (``SEAWALL_READ_THROUGH__ENABLED=false``): a ``HEAD`` at
a replica answers only what replication put there, never what it would fetch from A.
Then pushes small distinct images (a unique config and one 2–16 KiB layer each) to A at a steady
rate: push *i* starts at ``t0 + i/rate`` (a push that cannot start on time is counted as late).
Each push is timed from the moment its manifest ``PUT`` returned ``201``; a watcher polls every
replica (``--poll`` interval, bearer token, bounded concurrency per replica) and records when
the tag shows the pushed digest there: with ``--watch head`` by a ``HEAD`` of every pending tag
each round (the watcher's own load grows with the backlog: ~20 pending tags per replica at
25/s are ~400 requests/s, on the same cores as the servers it measures), with ``--watch tags``
by each repository's tag list each round (every tag is pushed once, so a listed tag is the
replicated one) and then one ``HEAD`` per push to check its digest, the time of the listing
counting. A push's latency is until it is
visible at *each* replica (figures per replica, and the max over replicas per push); a tag not
visible ``--grace`` seconds after the last push is lost; the drain is from the last push's
``201`` to the last tag becoming visible anywhere (the backlog left when pushing stopped).

With ``--postgres URL`` (an empty database) or ``--postgres-auto`` (a throwaway cluster: initdb +
pg_ctl on 127.0.0.1, as the ``postgres`` user when run as root) the source is two engine nodes
sharing that database and one data directory; pushes alternate between them. Replicas stay
SQLite.

Prints a human summary and appends one JSON line per run to ``--out``: count, lost, latency
p50/p90/p99/max (seconds), push-time and schedule-lag figures, load average, and where the time
went (push → run start → task end per policy, from A's ``/api/v2.0/replication/executions``).
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ADMIN_PASSWORD = "bench-admin-password"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = OCI_MANIFEST


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout_s}s")


@dataclass
class Seawall:
    """One ``seawall serve`` in its own process group; output goes to ``log_path``."""

    name: str
    data_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> Seawall:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
        env.update(SEAWALL_ADMIN_PASSWORD=ADMIN_PASSWORD, **self.env)
        cmd = [sys.executable, "-m", "seawall", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--data-dir", str(self.data_dir)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_http(self.url + "/v2/", timeout_s, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        except ProcessLookupError:
            pass
        self.proc = None


def find_pg_bin() -> Path:
    if env := os.environ.get("SEAWALL_PG_BIN"):
        return Path(env)
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for d in reversed(found):
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    if pg_ctl := shutil.which("pg_ctl"):
        return Path(pg_ctl).parent
    raise SystemExit("--postgres-auto: no initdb/pg_ctl found (set SEAWALL_PG_BIN)")


@dataclass
class Postgres:
    """A throwaway cluster on 127.0.0.1 (trust auth, fsync off); as root it runs as ``postgres``."""

    bin_dir: Path
    port: int = field(default_factory=free_port)
    base: Path | None = None

    def _run(self, *cmd: str | Path) -> str:
        pre = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        out = subprocess.run(
            [*pre, *map(str, cmd)],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.base,
        )
        return out.stdout

    def start(self) -> str:
        """Start the cluster; the URL of a fresh database in it."""
        self.base = Path(tempfile.mkdtemp(prefix="seawall-bench-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        data = self.base / "data"
        self._run(
            self.bin_dir / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.base} -c max_connections=200 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB"
        )
        log = self.base / "server.log"
        self._run(self.bin_dir / "pg_ctl", "-D", data, "-l", log, "-o", opts, "-w", "start")
        name = f"bench_{uuid.uuid4().hex[:8]}"
        self._run(
            self.bin_dir / "psql",
            "-X",
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-c",
            f'CREATE DATABASE "{name}"',
        )
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.base is None:
            return
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(self.bin_dir / "pg_ctl", "-D", self.base / "data", "-m", "fast", "stop")
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None


# --- registry client -------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Answer:
    status: int
    headers: Any  # multidict
    body: bytes


class RegistryClient:
    """The pusher's and the watcher's registry client, on aiohttp (httpx cost the bench ~3x
    the CPU, on the cores it measures): the Docker token flow, a ``Bearer`` challenge
    answered with a token fetched from the realm with Basic credentials, tokens kept per
    repository — as docker and podman push. (``bench_registry.Client`` sends Basic on every
    request where the registry takes it, as Seawall does by default: another load.)"""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        self.basic = {"Authorization": aiohttp.encode_basic_auth("admin", ADMIN_PASSWORD)}
        self.tokens: dict[str, str] = {}
        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60.0)
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        m = re.match(r"/v2/(.+?)/(blobs|manifests|tags)/", path)
        key = m.group(1) if m else path
        for _ in range(2):
            sent = dict(headers or {})
            if key in self.tokens:
                sent["Authorization"] = "Bearer " + self.tokens[key]
            async with self.session.request(method, self.url + path, data=data, headers=sent) as r:
                answer = Answer(r.status, r.headers, await r.read())
            challenge = answer.headers.get("WWW-Authenticate", "")
            if answer.status != 401 or not challenge.lower().startswith("bearer"):
                return answer
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            realm = params.pop("realm")
            async with self.session.get(realm, params=params, headers=self.basic) as t:
                if t.status != 200:
                    return answer
                body = json.loads(await t.read())
            self.tokens[key] = body.get("token") or body["access_token"]
        return answer

    async def close(self) -> None:
        await self.session.close()


async def push_blob(c: RegistryClient, repo: str, data: bytes) -> None:
    digest = sha256(data)
    headers = {"Content-Type": "application/octet-stream"}
    r = await c.request(
        "POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data=data, headers=headers
    )
    if r.status == 202:  # no monolithic POST: POST then PUT
        loc = r.headers["Location"]
        loc = loc.removeprefix(c.url)
        r = await c.request(
            "PUT", f"{loc}{'&' if '?' in loc else '?'}digest={digest}", data=data, headers=headers
        )
    if r.status != 201:
        raise RuntimeError(f"blob upload to {repo}: {r.status} {r.body[:200]!r}")


def make_image(i: int, size: int, nonce: str) -> tuple[bytes, bytes, bytes]:
    """(config, layer, manifest) of a distinct small image."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "bench": f"{nonce}-{i}"}).encode()
    layer = random.Random(f"{nonce}-{i}").randbytes(size)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return config, layer, manifest


# --- management API --------------------------------------------------------------------------


def api(url: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/api/v2.0", auth=("admin", ADMIN_PASSWORD), timeout=60.0)


def setup_replication(a_url: str, b_url: str, repo_prefix: str, j: int = 0) -> int:
    """Register replica ``j`` on A and create its event-based policy; the policy id."""
    with api(a_url) as c:
        r = c.post(
            "/registries",
            json={
                "name": f"replica-{j}",
                "type": "seawall",
                "url": b_url,
                "insecure": True,
                "credential": {
                    "type": "basic",
                    "access_key": "admin",
                    "access_secret": ADMIN_PASSWORD,
                },
            },
        )
        if r.status_code != 201:
            raise RuntimeError(f"add endpoint: {r.status_code} {r.text}")
        dest = int(r.headers["Location"].rsplit("/", 1)[1])
        r = c.post(
            "/replication/policies",
            json={
                "name": f"on-push-{j}",
                "src_registry": None,
                "dest_registry": {"id": dest},
                "trigger": {"type": "event_based"},
                "filters": [{"type": "name", "value": f"{repo_prefix}/**"}],
                "enabled": True,
                "override": True,
            },
        )
        if r.status_code != 201:
            raise RuntimeError(f"add policy: {r.status_code} {r.text}")
        return int(r.headers["Location"].rsplit("/", 1)[1])


def paged(c: httpx.Client, path: str, **params: Any) -> Iterator[dict[str, Any]]:
    page = 1
    while True:
        r = c.get(path, params={**params, "page": page, "page_size": 100})
        r.raise_for_status()
        items: list[dict[str, Any]] = r.json()
        yield from items
        if len(items) < 100:
            return
        page += 1


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()


# --- the measurement -------------------------------------------------------------------------


@dataclass
class Push:
    i: int
    repo: str
    tag: str
    node: int
    lag_s: float = 0.0  # how late the push started against its schedule
    push_s: float = 0.0  # blobs + manifest
    digest: str = ""
    pushed_mono: float | None = None  # manifest PUT returned 201
    pushed_wall: float | None = None
    visible: list[float | None] = field(default_factory=list)  # per replica, monotonic
    error: str = ""

    def latency_at(self, j: int) -> float | None:
        """Push → visible at replica ``j`` (None: not seen)."""
        seen = self.visible[j] if j < len(self.visible) else None
        if self.pushed_mono is None or seen is None:
            return None
        return seen - self.pushed_mono

    @property
    def latency(self) -> float | None:
        """Push → visible at every replica (None: not seen at one of them)."""
        each = [self.latency_at(j) for j in range(len(self.visible))]
        if not each or any(x is None for x in each):
            return None
        return max(x for x in each if x is not None)


def quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (None for no values)."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(-(-q * len(s) // 1)) - 1))]


def r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


async def measure(args: argparse.Namespace, a_urls: list[str], b_urls: list[str]) -> list[Push]:
    n = int(args.rate * args.seconds)
    nonce = uuid.uuid4().hex[:8]
    rng = random.Random(nonce)
    pushes = [
        Push(
            i,
            f"{args.repo_prefix}/app{i % args.repos}",
            f"t{i:05d}-{nonce}",
            i % len(a_urls),
            visible=[None] * len(b_urls),
        )
        for i in range(n)
    ]
    sources = [RegistryClient(u, args.max_inflight) for u in a_urls]
    replicas = [RegistryClient(u, args.watch_concurrency) for u in b_urls]
    pending: dict[tuple[int, int], Push] = {}  # (push, replica) not seen there yet
    inflight = asyncio.Semaphore(args.max_inflight)
    pushing_done = asyncio.Event()
    last_pushed = [time.monotonic()]

    async def push_one(p: Push, scheduled: float) -> None:
        async with inflight:
            start = time.monotonic()
            p.lag_s = start - scheduled
            config, layer, manifest = make_image(p.i, rng.randint(2048, 16384), nonce)
            c = sources[p.node]
            try:
                await push_blob(c, p.repo, config)
                await push_blob(c, p.repo, layer)
                r = await c.request(
                    "PUT",
                    f"/v2/{p.repo}/manifests/{p.tag}",
                    data=manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                if r.status != 201:
                    raise RuntimeError(f"manifest: {r.status} {r.body[:200]!r}")
            except Exception as e:  # recorded, the run goes on
                p.error = f"{type(e).__name__}: {e}"
                return
            p.pushed_mono, p.pushed_wall = time.monotonic(), time.time()
            p.push_s = p.pushed_mono - start
            p.digest = sha256(manifest)
            last_pushed[0] = max(last_pushed[0], p.pushed_mono)
            for j in range(len(replicas)):
                pending[(p.i, j)] = p

    async def pusher() -> None:
        t0 = time.monotonic()
        tasks = []
        for p in pushes:
            scheduled = t0 + p.i / args.rate
            if (delay := scheduled - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(push_one(p, scheduled)))
        await asyncio.gather(*tasks)
        pushing_done.set()

    watch_slots = [asyncio.Semaphore(args.watch_concurrency) for _ in replicas]
    head_errors: dict[str, int] = {}

    async def check(p: Push, j: int) -> None:
        async with watch_slots[j]:
            try:
                r = await replicas[j].request(
                    "HEAD", f"/v2/{p.repo}/manifests/{p.tag}", headers={"Accept": ACCEPT}
                )
            except (aiohttp.ClientError, TimeoutError) as e:
                head_errors[type(e).__name__] = head_errors.get(type(e).__name__, 0) + 1
                return
            now = time.monotonic()
            if r.status == 200 and r.headers.get("Docker-Content-Digest") == p.digest:
                p.visible[j] = now
                pending.pop((p.i, j), None)
            elif r.status not in (200, 404):
                head_errors[str(r.status)] = head_errors.get(str(r.status), 0) + 1

    confirming: set[tuple[int, int]] = set()

    async def listed(j: int, repo: str, after: str) -> set[str]:
        """The tags ``repo`` has at replica ``j`` that sort after ``after`` (``last=``: only
        the newest, so a round costs the same at the 10th and the 1,500th push; following
        ``Link`` pages)."""
        found: set[str] = set()
        url: str | None = f"/v2/{repo}/tags/list?n=10000&last={after}"
        async with watch_slots[j]:
            while url:
                try:
                    r = await replicas[j].request("GET", url)
                except (aiohttp.ClientError, TimeoutError) as e:
                    head_errors[type(e).__name__] = head_errors.get(type(e).__name__, 0) + 1
                    return found
                if r.status != 200:
                    if r.status != 404:
                        head_errors[str(r.status)] = head_errors.get(str(r.status), 0) + 1
                    return found
                found.update(json.loads(r.body).get("tags") or [])
                nxt = re.search(r"<([^>]+)>", r.headers.get("Link", ""))
                url = nxt.group(1) if nxt else None
        return found

    async def confirm(p: Push, j: int, seen_at: float) -> None:
        """A tag seen listed: its digest checked once (a ``HEAD``); visible when listed."""
        async with watch_slots[j]:
            try:
                r = await replicas[j].request(
                    "HEAD", f"/v2/{p.repo}/manifests/{p.tag}", headers={"Accept": ACCEPT}
                )
            except (aiohttp.ClientError, TimeoutError) as e:
                head_errors[type(e).__name__] = head_errors.get(type(e).__name__, 0) + 1
                confirming.discard((p.i, j))
                return
        if r.status == 200 and r.headers.get("Docker-Content-Digest") == p.digest:
            p.visible[j] = seen_at
            pending.pop((p.i, j), None)
        else:
            head_errors["listed, digest differs"] = head_errors.get("listed, digest differs", 0) + 1
        confirming.discard((p.i, j))

    async def list_round() -> None:
        by_key = {(j, p.repo, p.tag): p for (_, j), p in list(pending.items())}
        oldest: dict[tuple[int, str], int] = {}  # the oldest push pending there
        for (j, repo, _), p in by_key.items():
            oldest[(j, repo)] = min(p.i, oldest.get((j, repo), p.i))
        wanted = sorted(oldest)
        # tags are t<5-digit push number>-<nonce>: "t00042" sorts just before push 42's tag
        results = await asyncio.gather(
            *(listed(j, repo, f"t{oldest[(j, repo)]:05d}") for j, repo in wanted)
        )
        now = time.monotonic()
        confirms = []
        for (j, repo), tags in zip(wanted, results, strict=True):
            for tag in tags:
                p = by_key.get((j, repo, tag))
                if p is not None and (p.i, j) not in confirming:
                    confirming.add((p.i, j))
                    confirms.append(confirm(p, j, now))
        await asyncio.gather(*confirms)

    async def watcher() -> None:
        while True:
            round_start = time.monotonic()
            if pushing_done.is_set() and (not pending or round_start > last_pushed[0] + args.grace):
                return
            if args.watch == "tags":
                await list_round()
            else:
                await asyncio.gather(*(check(p, j) for (_, j), p in list(pending.items())))
            await asyncio.sleep(max(0.0, round_start + args.poll - time.monotonic()))

    try:
        await asyncio.gather(pusher(), watcher())
    finally:
        for c in (*sources, *replicas):
            await c.close()
    if head_errors:
        print(f"watcher errors (HEAD on the replicas): {head_errors}", file=sys.stderr)
    last_push = max((p.pushed_mono for p in pushes if p.pushed_mono is not None), default=None)
    seen = [t for p in pushes for t in p.visible if t is not None]
    args.drain_s = (max(seen) - last_push) if seen and last_push is not None else None
    return pushes


def profile(a_url: str, policy_id: int, pushes: list[Push], j: int = 0) -> dict[str, Any]:
    """Where the time went for replica ``j``'s policy, from A's executions and tasks: push →
    run start → task end."""
    with api(a_url) as c:
        runs = list(paged(c, "/replication/executions", policy_id=policy_id))
        by_digest: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
        plan, copy = [], []  # run start → its first task starts; → the run ends
        for run in runs:
            starts = []
            for task in paged(c, f"/replication/executions/{run['id']}/tasks"):
                if (t := parse_time(task.get("start_time"))) is not None:
                    starts.append(t)
                if task.get("digest") and task.get("outcome") == "copied":
                    by_digest.setdefault(task["digest"], (run, task))
            s, e = parse_time(run["start_time"]), parse_time(run["end_time"])
            if starts and s is not None and e is not None:
                plan.append(min(starts) - s)
                copy.append(e - min(starts))
    durations = [
        e - s
        for run in runs
        if (s := parse_time(run["start_time"])) and (e := parse_time(run["end_time"]))
    ]
    to_start, to_task_end, to_visible, per_run = [], [], [], []
    for p in pushes:
        if p.digest not in by_digest or p.pushed_wall is None:
            continue
        run, task = by_digest[p.digest]
        s, e = parse_time(run["start_time"]), parse_time(task["end_time"])
        if s is not None:
            to_start.append(s - p.pushed_wall)
        if e is not None:
            to_task_end.append(e - p.pushed_wall)
            if (seen := p.latency_at(j)) is not None:
                to_visible.append(seen - (e - p.pushed_wall))
    for run in runs:
        per_run.append(int(run.get("total") or 0))
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    return {
        "runs": len(runs),
        "run_statuses": statuses,
        "tasks_per_run_p50": quantile([float(x) for x in per_run], 0.5),
        "tasks_per_run_max": max(per_run, default=None),
        "run_duration_p50": r3(quantile(durations, 0.5)),
        "run_duration_max": r3(max(durations, default=None)),
        "run_plan_p50": r3(quantile(plan, 0.5)),
        "run_plan_p90": r3(quantile(plan, 0.9)),
        "run_plan_max": r3(max(plan, default=None)),
        "run_copy_p50": r3(quantile(copy, 0.5)),
        "run_copy_max": r3(max(copy, default=None)),
        "push_to_run_start_p50": r3(quantile(to_start, 0.5)),
        "push_to_run_start_p99": r3(quantile(to_start, 0.99)),
        "push_to_task_end_p50": r3(quantile(to_task_end, 0.5)),
        "push_to_task_end_p99": r3(quantile(to_task_end, 0.99)),
        "task_end_to_seen_p50": r3(quantile(to_visible, 0.5)),
        "pushes_matched_to_tasks": len(to_task_end),
    }


#: replicas measure replication, not read-through (which would answer a HEAD from A)
REPLICA_ENV = {"SEAWALL_READ_THROUGH__ENABLED": "false"}


def per_target(pushes: list[Push], j: int) -> dict[str, Any]:
    """Replica ``j``'s figures: push → visible there."""
    ok = [p for p in pushes if p.pushed_mono is not None]
    lat = [x for p in ok if (x := p.latency_at(j)) is not None]
    return {
        "target": j,
        "lost": len(ok) - len(lat),
        "p50": r3(quantile(lat, 0.5)),
        "p90": r3(quantile(lat, 0.9)),
        "p99": r3(quantile(lat, 0.99)),
        "max": r3(max(lat, default=None)),
    }


def pushed_rate(ok: list[Push]) -> float | None:
    """Pushes per second between the first and the last push's ``201``."""
    times = [p.pushed_mono for p in ok if p.pushed_mono is not None]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    return (len(times) - 1) / span if span > 0 else None


def run_once(args: argparse.Namespace, pg_url: str | None, work: Path, k: int) -> dict[str, Any]:
    if pg_url is None:
        env = {"SEAWALL_WORKERS": str(args.source_workers), **dict(args.source_env)}
        nodes = [Seawall("A", work / f"a{k}", work / f"a{k}.log", env)]
    else:
        env = {"SEAWALL_DATABASE_URL": pg_url}
        nodes = [Seawall(f"A{j}", work / f"a{k}", work / f"a{k}-{j}.log", env) for j in (1, 2)]
    replicas = [
        Seawall(f"B{j}", work / f"b{k}-{j}", work / f"b{k}-{j}.log", dict(REPLICA_ENV))
        for j in range(args.targets)
    ]
    code = code_version()  # before the servers import it
    try:
        for node in (*nodes, *replicas):  # one by one: the nodes share the generated token key
            node.start()
        policies = [
            setup_replication(nodes[0].url, b.url, args.repo_prefix, j)
            for j, b in enumerate(replicas)
        ]
        load_before = os.getloadavg()
        started = time.time()
        pushes = asyncio.run(measure(args, [n.url for n in nodes], [b.url for b in replicas]))
        load_after = os.getloadavg()
        elapsed = time.time() - started
        profs = [profile(nodes[0].url, pid, pushes, j) for j, pid in enumerate(policies)]
    finally:
        for node in (*nodes, *replicas):
            node.stop()
    prof = profs[0]
    ok = [p for p in pushes if p.pushed_mono is not None]
    if args.pushes_out:  # the timeline: where the tail's pushes fall in the run
        with args.pushes_out.open("a") as f:
            for p in ok:
                f.write(
                    json.dumps(
                        {
                            "run": k,
                            "i": p.i,
                            "at": p.pushed_wall,
                            "push_s": r3(p.push_s),
                            "latency": [r3(p.latency_at(j)) for j in range(len(p.visible))],
                        }
                    )
                    + "\n"
                )
    lat = [x for p in ok if (x := p.latency) is not None]
    lags = [p.lag_s for p in pushes]
    quarters: list[list[float]] = [[], [], [], []]
    for p in ok:
        if (x := p.latency) is not None:
            quarters[min(3, 4 * p.i // len(pushes))].append(x)
    return {
        "bench": "event_latency",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "postgres-2-nodes" if pg_url else "sqlite",
        "targets": args.targets,
        "read_through": False,
        "rate": args.rate,
        "seconds": args.seconds,
        "repos": args.repos,
        "poll_s": args.poll,
        "watch": args.watch,
        "client": "aiohttp",
        "source_workers": args.source_workers,
        "source_env": dict(args.source_env),
        "note": args.note,
        "grace_s": args.grace,
        "count": len(ok),
        "push_errors": len(pushes) - len(ok),
        "lost": len(ok) - len(lat),
        "p50": r3(quantile(lat, 0.5)),
        "p90": r3(quantile(lat, 0.9)),
        "p99": r3(quantile(lat, 0.99)),
        "max": r3(max(lat, default=None)),
        "mean": r3(sum(lat) / len(lat) if lat else None),
        "drain_s": r3(args.drain_s),
        "per_target": [per_target(pushes, j) for j in range(args.targets)],
        # by quarter of the push schedule: does latency grow as the repositories fill up?
        "p50_by_quarter": [r3(quantile(q, 0.5)) for q in quarters],
        "p99_by_quarter": [r3(quantile(q, 0.99)) for q in quarters],
        # pushes/s actually offered (the pusher falls behind when pushes slow down)
        "pushed_rate": r3(pushed_rate(ok)),
        "push_s_p50": r3(quantile([p.push_s for p in ok], 0.5)),
        "push_s_p99": r3(quantile([p.push_s for p in ok], 0.99)),
        "schedule_lag_max_s": r3(max(lags, default=0.0)),
        "late_starts": sum(1 for x in lags if x > 0.1),
        "elapsed_s": round(elapsed, 1),
        "load1_before": round(load_before[0], 2),
        "load1_after": round(load_after[0], 2),
        "load5_after": round(load_after[1], 2),
        "cpus": os.cpu_count(),
        "code": code,
        **prof,
        "profile_per_target": profs,
        "errors": sorted({p.error for p in pushes if p.error})[:5],
        "logs": str(work),
    }


def code_version() -> str:
    """The commit the engine ran from, ``+dirty`` if its packages had uncommitted changes: the
    servers run ``python -m seawall`` from the current directory, so a checkout there (e.g. an
    older commit's worktree) is what ran; else this bench's own checkout."""
    here = Path.cwd()
    root = here if (here / "seawall" / "__init__.py").exists() else Path(__file__).parents[1]

    def git(*a: str) -> str:
        out = subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True)
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    packages = ("adapters", "engine", "registry", "schedules", "seawall", "pyproject.toml")
    return head + ("+dirty" if git("status", "--porcelain", "--", *packages) else "")


def summary(row: dict[str, Any]) -> str:
    met = (
        row["lost"] == 0
        and row["push_errors"] == 0
        and row["p50"] is not None
        and row["p50"] < 1.0
        and row["p99"] < 3.0
    )
    fanout = (
        f"p99 {'<' if (row['p99'] or 99) < 0.25 else '>='} 0.25 s, lost {row['lost']}, "
        f"drain {'<=' if (row['drain_s'] or 99) <= 5 else '>'} 5 s"
    )
    targets = "".join(
        f"\n  replica {t['target']}: p50 {t['p50']} s, p99 {t['p99']} s, max {t['max']} s, "
        f"lost {t['lost']}"
        for t in row["per_target"]
    )
    head = (
        f"[{row['mode']}, {row['targets']} target(s), read-through off] {row['count']} pushes "
        f"at {row['rate']}/s for {row['seconds']} s, lost {row['lost']}, push errors "
        f"{row['push_errors']}: p50 {row['p50']} s, p90 {row['p90']} s, p99 {row['p99']} s, "
        f"max {row['max']} s, drain {row['drain_s']} s after the last push "
        f"(poll {row['poll_s']} s; p50 by quarter {row['p50_by_quarter']}){targets}\n"
        "  one-target targets p50 < 1 s, p99 < 3 s, none lost: "
        f"{'MET' if met else 'NOT MET'}; fan-out targets (p99 < 0.25 s and none lost; none "
        f"lost and drained within 5 s): {fanout}\n"
        f"  pusher: {row['pushed_rate']} pushes/s offered; push p50 {row['push_s_p50']} s, p99 "
        f"{row['push_s_p99']} s; "
        f"{row['late_starts']} starts > 0.1 s late (max {row['schedule_lag_max_s']} s)\n"
    )
    engines = "".join(_engine_line(j, prof) for j, prof in enumerate(row["profile_per_target"]))
    return (
        head
        + engines
        + f"  load average {row['load1_before']} → {row['load1_after']} on {row['cpus']} CPUs; "
        f"logs in {row['logs']}"
    )


def _engine_line(j: int, row: dict[str, Any]) -> str:
    return (
        f"  engine, policy {j}: {row['runs']} runs {row['run_statuses']}, tasks/run p50 "
        f"{row['tasks_per_run_p50']} max {row['tasks_per_run_max']}, run p50 "
        f"{row['run_duration_p50']} s max {row['run_duration_max']} s (planning: p50 "
        f"{row['run_plan_p50']} s, max {row['run_plan_max']} s; copying: p50 {row['run_copy_p50']} "
        f"s, max {row['run_copy_max']} s)\n          push → run start p50 "
        f"{row['push_to_run_start_p50']} s p99 {row['push_to_run_start_p99']} s; push → task "
        f"end p50 {row['push_to_task_end_p50']} s p99 {row['push_to_task_end_p99']} s\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rate", type=float, default=5.0, help="pushes per second (default 5)")
    ap.add_argument(
        "--duration",
        "--seconds",
        dest="seconds",
        type=float,
        default=60.0,
        help="push for this long, s (default 60)",
    )
    ap.add_argument(
        "--targets", type=int, default=1, help="replicas, one event policy each (default 1)"
    )
    ap.add_argument(
        "--grace",
        type=float,
        default=30.0,
        help="lost if not seen this long after the last push (default 30)",
    )
    ap.add_argument("--poll", type=float, default=0.05, help="watcher round interval, s")
    ap.add_argument(
        "--watch",
        choices=("head", "tags"),
        default="head",
        help="how replicas are watched: a HEAD per pending push and replica each round (head), "
        "or each repository's tag list per replica each round, then one HEAD per push seen "
        "to check its digest (tags: a fixed cost per round, not one growing with the backlog)",
    )
    ap.add_argument("--repos", type=int, default=5, help="pushes go round-robin to N repos")
    ap.add_argument("--repo-prefix", default="bench")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument(
        "--source-env",
        action="append",
        default=[],
        type=lambda kv: tuple(kv.split("=", 1)),
        metavar="SEAWALL_NAME=VALUE",
        help="a setting for A (repeatable), e.g. SEAWALL_ENGINE_MAX_PARALLEL_RUNS=4",
    )
    ap.add_argument("--note", default="", help="written into each JSON line (what the run is)")
    ap.add_argument("--max-inflight", type=int, default=16, help="pushes in flight at most")
    ap.add_argument(
        "--source-workers", type=int, default=1, help="A's server worker processes (SQLite mode)"
    )
    ap.add_argument("--watch-concurrency", type=int, default=8, help="HEADs in flight at most")
    ap.add_argument("--out", type=Path, help="append one JSON line per run to this file")
    ap.add_argument("--keep", action="store_true", help="keep data dirs and logs")
    ap.add_argument(
        "--pushes-out", type=Path, help="append each push (time, push, latencies) to this file"
    )
    pg = ap.add_mutually_exclusive_group()
    pg.add_argument("--postgres", metavar="URL", help="two source nodes on this (empty) database")
    pg.add_argument("--postgres-auto", action="store_true", help="… on a throwaway cluster")
    args = ap.parse_args()
    if args.rate <= 0 or args.seconds <= 0 or args.rate * args.seconds > 10_000:
        ap.error("--rate and --seconds must be positive, at most 10000 pushes in all")
    if not 1 <= args.targets <= 8:
        ap.error("--targets must be 1..8")
    if args.postgres and args.repeats > 1:
        ap.error("--postgres URL: one run per (empty) database; use --postgres-auto to repeat")

    work = Path(tempfile.mkdtemp(prefix="seawall-event-latency-"))
    cluster: Postgres | None = None
    try:
        for k in range(args.repeats):
            pg_url = args.postgres
            if args.postgres_auto:
                cluster = Postgres(find_pg_bin())
                pg_url = cluster.start()
            try:
                row = run_once(args, pg_url, work, k)
            finally:
                if cluster is not None:
                    cluster.stop()
            print(summary(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
