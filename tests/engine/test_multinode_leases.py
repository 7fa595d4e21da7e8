"""Three replication nodes on one PostgreSQL database — one node's clock five minutes ahead, one
five minutes behind, one right — under a stream of runs of the same policies (real replication:
CNCF distribution → CNCF distribution, each node a real replication service in its own process,
``tests/engine/lease_node.py``). Leases are the database's, so whatever the nodes' clocks say:

- no policy ever has two runs in progress at once;
- no run and no task is taken from the node holding it before its lease has passed (with node
  clocks, the node ahead takes every lease it sees: a task then runs twice at once);
- no lease is given that has already ended (with node clocks, the node behind gets only such
  leases: the others take its runs and tasks while it still runs them);
- a node killed (``kill -9``) mid-run leaves nothing in progress once its leases pass: the
  other nodes finish its run and its tasks.

The invariants are read from the database: sampled throughout (each sample one statement: one
snapshot, and the database's own time to compare the leases with), and, since a sample can miss
a takeover that happens between two, also watched by triggers on every lease granted (the
test's own, in its own database: they only write down what they see). Leases are 3 s, so a
takeover costs seconds, not the default 30 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from sqlalchemy import insert, select

import engine.notify.models  # noqa: F401 - registers the tables
from engine.state.models import Execution, Policy, RegistryEndpoint, Task
from engine.state.runs import RunStore
from registry.meta.db import Database, create_engine, init_schema
from tests.support.client import OCI_MANIFEST, image_manifest, push_blob
from tests.support.distribution import DistributionProcess

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]
E = RegistryEndpoint.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]

SKEWS_SECONDS = (300.0, -300.0, 0.0)  # one node ahead, one behind, one right
LEASE_SECONDS = 3.0
#: One run at a time per node: a node polling first would otherwise claim every run of a tick
#: (it has the slots) and a skewed node could go the whole stream without a lease (seen under
#: load: the clock behind, or ahead, never tested). With one slot each, the three runs of a tick
#: need three nodes.
NODE_RUNS = 1
POLICIES = 3
TICKS = 16  # the stream: a new image every tick, a run of every policy every other tick
TICK_SECONDS = 0.4
KILL_FROM_TICK = 5  # from here, the first node seen holding a run with a running task is killed
LAYER_BYTES = 96 << 10
SPEED_BYTES_PER_SECOND = 384 << 10  # ~0.25 s per image and run: runs overlap the stream
DRAIN_SECONDS = 90.0

#: Every lease granted or renewed (on a run or a task) is checked as it is written, against the
#: database's time: it must end in the future, it must not be taken from a holder whose lease
#: has not ended, and a run's claim must find no other run of its policy held that it must not
#: run beside: a whole run another whole run, an event run one whose scope conflicts with its
#: own (a tag in common, or a repository either lists whole: ``engine.scope.Scope.conflicts``).
WATCH = (
    "CREATE TABLE lease_breach (id serial PRIMARY KEY, what text NOT NULL)",
    """
CREATE FUNCTION scope_repos(s jsonb) RETURNS SETOF text LANGUAGE sql AS $$
  SELECT jsonb_object_keys(s->'digests') UNION SELECT jsonb_object_keys(s->'tags')
  UNION SELECT jsonb_array_elements_text(s->'whole')
$$
""",
    """
CREATE FUNCTION scopes_conflict(a jsonb, b jsonb) RETURNS boolean LANGUAGE sql AS $$
  SELECT EXISTS (SELECT 1 FROM jsonb_array_elements_text(a->'whole') w
                  WHERE w IN (SELECT scope_repos(b)))
      OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(b->'whole') w
                  WHERE w IN (SELECT scope_repos(a)))
      OR EXISTS (SELECT 1 FROM jsonb_each(a->'tags') t, jsonb_array_elements_text(t.value) tag
                  WHERE coalesce(b->'tags'->t.key, '[]'::jsonb) ? tag)
$$
""",
    """
CREATE FUNCTION watch_lease() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  now timestamptz := statement_timestamp();
  other bigint;
BEGIN
  IF NEW.lease_owner IS NULL OR NEW.lease_expires IS NOT DISTINCT FROM OLD.lease_expires THEN
    RETURN NEW;
  END IF;
  IF NEW.lease_expires <= now THEN
    INSERT INTO lease_breach (what) VALUES (format('%s %s: lease given to %s ended %s ago',
      TG_TABLE_NAME, NEW.id, NEW.lease_owner, now - NEW.lease_expires));
  END IF;
  IF OLD.lease_owner <> NEW.lease_owner AND OLD.lease_expires >= now THEN
    INSERT INTO lease_breach (what) VALUES (format('%s %s: taken by %s from %s %s before '
      'its lease ended', TG_TABLE_NAME, NEW.id, NEW.lease_owner, OLD.lease_owner,
      OLD.lease_expires - now));
  END IF;
  IF TG_TABLE_NAME = 'execution' AND OLD.lease_owner IS DISTINCT FROM NEW.lease_owner THEN
    SELECT o.id INTO other FROM execution o
     WHERE o.policy_id = NEW.policy_id AND o.id <> NEW.id AND o.status = 'InProgress'
       AND o.lease_expires >= now
       AND ((o.scope_json = '' AND NEW.scope_json = '')
            OR (o.scope_json <> '' AND NEW.scope_json <> ''
                AND scopes_conflict(o.scope_json::jsonb, NEW.scope_json::jsonb)))
     LIMIT 1;
    IF other IS NOT NULL THEN
      INSERT INTO lease_breach (what) VALUES (format('policy %s: run %s claimed by %s while '
        'run %s is in progress', NEW.policy_id, NEW.id, NEW.lease_owner, other));
    END IF;
  END IF;
  RETURN NEW;
END $$
""",
    *(
        f"CREATE TRIGGER watch_{table} BEFORE UPDATE ON {table} FOR EACH ROW "
        "EXECUTE FUNCTION watch_lease()"
        for table in ("execution", "task")
    ),
)

SAMPLE = """
SELECT extract(epoch FROM statement_timestamp())::float8,
  (SELECT coalesce(json_agg(json_build_array(id, policy_id, lease_owner,
                                             extract(epoch FROM lease_expires))), '[]')
     FROM execution WHERE status = 'InProgress'),
  (SELECT coalesce(json_agg(json_build_array(id, attempts, lease_owner,
                                             extract(epoch FROM lease_expires),
                                             extract(epoch FROM end_time))), '[]')
     FROM task WHERE status = 'InProgress'),
  (SELECT coalesce(json_agg(what ORDER BY id), '[]') FROM lease_breach)
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def dst(tmp_path: Path) -> Iterator[DistributionProcess]:
    with DistributionProcess(tmp_path / "dst") as d:
        yield d


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    database = Database(create_engine(postgres_url))
    await init_schema(database.engine)
    yield database
    await database.dispose()


@dataclass
class Node:
    """One ``lease_node`` process (its own process group: ``kill`` takes all of it)."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    node_id: str = ""

    @classmethod
    def start(cls, url: str, skew_seconds: float, log_path: Path) -> Node:
        args = ["--skew-seconds", str(skew_seconds), "--lease-seconds", str(LEASE_SECONDS)]
        args += ["--max-parallel-runs", str(NODE_RUNS)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.engine.lease_node", url, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log_path.open("wb"),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        return cls(proc, log_path)

    async def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        with anyio.fail_after(60):
            line = await anyio.to_thread.run_sync(self.proc.stdout.readline)
        self.node_id = line.decode().strip()
        assert self.node_id, f"node did not start:\n{self.log()}"

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@dataclass
class Sampler:
    """Reads the runs and tasks in progress every few milliseconds; records every breach of
    the invariants (the module's docstring) with the sample that showed it, and what the
    triggers (:data:`WATCH`) wrote down."""

    dsn: str
    samples: int = 0
    seen: list[str] = field(default_factory=list)
    watched: list[str] = field(default_factory=list)
    owners: set[str] = field(default_factory=set)
    runs: dict[int, tuple[str, float]] = field(default_factory=dict)  # id -> owner, lease end
    tasks: dict[int, tuple[int, float, float | None]] = field(default_factory=dict)

    async def run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                now, runs, tasks, watched = await conn.fetchrow(SAMPLE)
                self.check(now, json.loads(runs), json.loads(tasks))
                self.watched = json.loads(watched)
                await anyio.sleep(0.01)
        finally:
            with anyio.CancelScope(shield=True):
                await conn.close()

    @property
    def violations(self) -> list[str]:
        return self.seen + self.watched

    def check(self, now: float, runs: list[list[Any]], tasks: list[list[Any]]) -> None:
        self.samples += 1
        by_policy: dict[int, list[int]] = {}
        for eid, policy_id, owner, expires in runs:
            by_policy.setdefault(policy_id, []).append(eid)
            self.owners.add(owner)
            seen = self.runs.get(eid)
            if seen is not None and seen[0] != owner and now < seen[1]:
                self.seen.append(
                    f"run {eid} taken by {owner} from {seen[0]} {seen[1] - now:.1f}s before "
                    "its lease ended"
                )
            self.runs[eid] = (owner, expires)
        for policy_id, eids in by_policy.items():
            if len(eids) > 1:
                self.seen.append(f"policy {policy_id}: runs {sorted(eids)} in progress")
        for tid, attempts, owner, expires, ended in tasks:
            self.owners.add(owner)
            seen = self.tasks.get(tid)
            # leased again (an attempt more, not ended in between) before its lease ended
            if seen is not None and attempts > seen[0] and ended == seen[2] and now < seen[1]:
                self.seen.append(
                    f"task {tid} leased again by {owner} {seen[1] - now:.1f}s before its "
                    "lease ended: it ran twice at once"
                )
            self.tasks[tid] = (attempts, expires, ended)


async def _setup(db: Database, src_url: str, dst_url: str) -> None:
    async with db.write() as c:
        for ddl in WATCH:
            await c.exec_driver_sql(ddl)
        for eid, url in ((1, src_url), (2, dst_url)):
            values = {"name": f"r{eid}", "type": "docker-registry", "url": url, "insecure": True}
            await c.execute(insert(E).values(id=eid, **values))
        for i in range(1, POLICIES + 1):
            await c.execute(
                insert(P).values(
                    id=i,
                    name=f"mirror-{i}",
                    src_registry_id=1,
                    dest_registry_id=2,
                    dest_namespace=f"m{i}",
                    dest_namespace_replace_count=0,
                    speed_bytes_per_second=SPEED_BYTES_PER_SECOND,
                )
            )


def _push(url: str, n: int) -> None:
    """Image ``app/rN%2:tN`` with a random layer, to the source."""
    with httpx.Client(base_url=url, timeout=30) as c:
        repo = f"app/r{n % 2}"
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": n}).encode()
        layer = os.urandom(LAYER_BYTES)
        push_blob(c, repo, config)
        push_blob(c, repo, layer)
        manifest = image_manifest(config, [layer])
        r = c.put(
            f"/v2/{repo}/manifests/t{n}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201, r.text


async def _held(db: Database) -> tuple[dict[int, str], dict[int, str]]:
    """The runs and the tasks in progress, each id with its lease owner."""
    async with db.read() as c:
        held = select(X.c.id, X.c.lease_owner).where(X.c.status == "InProgress")
        runs = {int(i): str(o) for i, o in (await c.execute(held)).all()}
        running = select(T.c.id, T.c.lease_owner).where(T.c.status == "InProgress")
        tasks = {int(i): str(o) for i, o in (await c.execute(running)).all()}
    return runs, tasks


async def _kill_a_holder(db: Database, nodes: list[Node]) -> tuple[list[int], list[int]] | None:
    """Kill a node holding a run and running a task; the runs and tasks it left in progress
    (read after the kill: what it finished before it died is not among them)."""
    runs, tasks = await _held(db)
    for node in nodes:
        if node.node_id in set(runs.values()) & set(tasks.values()):
            node.kill()
            runs, tasks = await _held(db)
            left = [i for i, o in runs.items() if o == node.node_id]
            return left, [i for i, o in tasks.items() if o == node.node_id]
    return None


async def _start_nodes(url: str, logs: Path) -> list[Node]:
    """The nodes, each with its clock skewed; the first creates the scheduler's tables (nodes
    starting together on a fresh database race there), the others then start together."""
    nodes = [Node.start(url, SKEWS_SECONDS[0], logs / "node-0.log")]
    await nodes[0].wait_ready()
    for i, skew in enumerate(SKEWS_SECONDS[1:], 1):
        nodes.append(Node.start(url, skew, logs / f"node-{i}.log"))
    for node in nodes[1:]:
        await node.wait_ready()
    return nodes


async def _stream(
    db: Database, src_url: str, nodes: list[Node], sampler: Sampler
) -> tuple[list[int], list[int]]:
    """Push images and queue runs of every policy; kill a node mid-run. Returns the runs and
    the tasks the killed node left in progress."""
    store = RunStore(db, "test")
    killed = None
    for tick in range(TICKS):
        await anyio.to_thread.run_sync(_push, src_url, tick)
        if tick % 2 == 1:  # (each repository has a tag by the first run)
            for pid in range(1, POLICIES + 1):
                await store.create_execution(pid, "manual")
        assert not sampler.violations, "\n".join(sampler.violations[:20])
        tick_ends = anyio.current_time() + TICK_SECONDS
        while anyio.current_time() < tick_ends:
            if killed is None and tick >= KILL_FROM_TICK:  # looked for all through the tick
                killed = await _kill_a_holder(db, nodes)  # mid-run: its leases stay until pass
            await anyio.sleep(0.05 if killed is None else tick_ends - anyio.current_time())
    assert killed is not None, "no node was seen holding a run with a running task"
    for pid in range(1, POLICIES + 1):  # a last run after the last push: every image is copied
        await store.create_execution(pid, "manual")
    return killed


async def _drain(db: Database, sampler: Sampler) -> None:
    """Until no run is pending or in progress (failing at once on a breach)."""
    with anyio.fail_after(DRAIN_SECONDS):
        while True:
            assert not sampler.violations, "\n".join(sampler.violations[:20])
            async with db.read() as c:
                active = await c.execute(
                    select(X.c.id).where(X.c.status.in_(("Pending", "InProgress"))).limit(1)
                )
                if active.first() is None:
                    return
            await anyio.sleep(0.2)


async def test_skewed_nodes_never_overlap_and_a_killed_node_leaves_nothing_behind(
    db: Database, postgres_url: str, dist: DistributionProcess, dst: DistributionProcess, tmp_path
) -> None:
    await _setup(db, dist.url, dst.url)
    nodes: list[Node] = []
    sampler = Sampler(postgres_url)
    try:
        nodes = await _start_nodes(postgres_url, tmp_path)
        async with anyio.create_task_group() as tg:
            tg.start_soon(sampler.run)
            its_runs, its_tasks = await _stream(db, dist.url, nodes, sampler)
            await _drain(db, sampler)
            tg.cancel_scope.cancel()
    except BaseException:
        for node in nodes:
            print(f"---- {node.node_id}\n{node.log()}")
        raise
    finally:
        for node in nodes:
            node.kill()

    assert not sampler.violations, "\n".join(sampler.violations[:20])
    assert sampler.samples > 200, sampler.samples
    # every node took part: the skewed ones held runs and tasks next to the others
    idle = [n for n in nodes if n.node_id not in sampler.owners]
    assert not idle, "\n".join(f"---- {n.node_id} held nothing\n{n.log()}" for n in idle)
    async with db.read() as c:
        runs = (await c.execute(select(X))).mappings().all()
        tasks = (await c.execute(select(T))).mappings().all()
    assert len(runs) == POLICIES * (TICKS // 2 + 1)
    failed = [
        (t["execution_id"], t["status"], t["reason"]) for t in tasks if t["status"] != "Succeed"
    ]
    assert not failed, failed
    assert {r["status"] for r in runs} == {"Succeed"}, [dict(r) for r in runs]
    assert all(r["lease_owner"] is None for r in runs)
    # the killed node's work was taken over: its runs ended (above), the tasks it was running
    # ran again on another node
    assert its_runs, "the killed node had finished its runs before it died"
    attempts = {int(t["id"]): int(t["attempts"]) for t in tasks}
    assert all(attempts[tid] >= 2 for tid in its_tasks), (its_runs, its_tasks, attempts)
    # what was copied is at the destination
    async with httpx.AsyncClient(base_url=dst.url) as d:
        for t in tasks:
            for tag in json.loads(t["tags_json"]) if t["outcome"] == "copied" else []:
                path = f"/v2/{t['dst_repository']}/manifests/{tag}"
                r = await d.head(path, headers={"Accept": OCI_MANIFEST})
                assert r.headers.get("Docker-Content-Digest") == t["digest"], (t, r)
    copied = {(t["dst_repository"], t["digest"]) for t in tasks if t["outcome"] == "copied"}
    assert len(copied) == POLICIES * TICKS
    # the clocks were wrong as intended, and each node saw it
    logs = [n.log() for n in nodes]
    assert "300 s ahead of the database's" in logs[0], logs[0]
    assert "300 s behind the database's" in logs[1], logs[1]
