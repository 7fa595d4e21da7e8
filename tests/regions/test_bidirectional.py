"""Bidirectional replication between three real Seawalls (regions a, b, c), each replicating
to the others with event-based push policies, deletion on, override on, through endpoints
whose conflict rule is last-writer-wins (or primary).

A tag moved to different digests in two regions at once (pushed while the policies were
disabled, then every run started together) ends at the same digest everywhere, the one the
rule names — the last writer's, or the primary region's — with the conflict in the runs'
tasks and the log; the runs then stop. A tag deleted in one region is deleted everywhere and
stays deleted: a full run from a region that still had it does not bring it back.

Each test uses its own repository and policies (their filters name only it), so the three
Seawalls are shared by the module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.replication.support import api, digest_of, start, wait
from tests.support.client import client, push_image
from tests.support.server import SeawallProcess

NAMES = ("a", "b", "c")


@dataclass
class Region:
    name: str
    proc: SeawallProcess
    endpoints: dict[str, int] = field(default_factory=dict)  # other region -> endpoint id

    def api(self) -> httpx.Client:
        return api(self.proc.url, self.proc.admin_password)

    def registry(self) -> httpx.Client:
        return client(self.proc.url, "admin", self.proc.admin_password)

    def digest(self, repo: str, tag: str) -> str | None:
        with self.registry() as c:
            return digest_of(c, repo, tag)

    def push(self, repo: str, tag: str, seed: str) -> str:
        with self.registry() as c:
            return push_image(c, repo, tag, seed=seed)[0]

    def delete(self, repo: str, tag: str) -> None:
        with self.registry() as c:
            assert c.delete(f"/v2/{repo}/manifests/{tag}").status_code == 202


@pytest.fixture(scope="module")
def regions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Region]]:
    base = tmp_path_factory.mktemp("bidi")
    procs = {n: SeawallProcess(base / n, extra_env={"SEAWALL_DR__REGION_NAME": n}) for n in NAMES}
    try:
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(lambda p: p.start(timeout_s=120), procs.values()))
        out = {n: Region(n, p) for n, p in procs.items()}
        for region in out.values():
            for other in out.values():
                if other is not region:
                    region.endpoints[other.name] = endpoint(
                        region, other, conflict_rule="last-writer-wins"
                    )
        yield out
    finally:
        for proc in procs.values():
            proc.kill()


def endpoint(region: Region, other: Region, suffix: str = "", **options: str) -> int:
    body: dict[str, Any] = {
        "name": f"{other.name}{suffix}",
        "type": "seawall",
        "url": other.proc.url,
        "credential": {
            "type": "basic",
            "access_key": "admin",
            "access_secret": other.proc.admin_password,
        },
    }
    if options:
        body["options"] = options
    with region.api() as c:
        r = c.post("/registries", json=body)
    assert r.status_code == 201, r.text
    return int(r.headers["Location"].rsplit("/", 1)[1])


@dataclass
class Mesh:
    """Event-based push policies between ``regions``, both ways, for one repository."""

    regions: dict[str, Region]
    policies: dict[tuple[str, str], int]  # (from, to) -> policy id at "from"

    def set_enabled(self, enabled: bool) -> None:
        for (src, _), pid in self.policies.items():
            with self.regions[src].api() as c:
                r = c.put(f"/replication/policies/{pid}", json={"enabled": enabled})
                assert r.status_code == 200, r.text

    def run_all(self) -> None:
        """A full run of every policy, all started at once."""

        def one(key: tuple[str, str]) -> None:
            with self.regions[key[0]].api() as c:
                start(c, self.policies[key])

        with ThreadPoolExecutor(len(self.policies)) as pool:
            list(pool.map(one, self.policies))

    def run(self, src: str, dst: str) -> dict[str, Any]:
        with self.regions[src].api() as c:
            return wait(c, start(c, self.policies[(src, dst)]))

    def executions(self) -> list[dict[str, Any]]:
        out = []
        for (src, _), pid in self.policies.items():
            with self.regions[src].api() as c:
                found = c.get(
                    "/replication/executions", params={"policy_id": pid, "page_size": 100}
                ).json()
            out += [{**e, "region": src} for e in found]
        return out

    def tasks(self) -> list[dict[str, Any]]:
        out = []
        for e in self.executions():
            with self.regions[e["region"]].api() as c:
                url = f"/replication/executions/{e['id']}/tasks"
                out += c.get(url, params={"page_size": 100}).json()
        return out

    def settle(self, timeout_s: float = 60.0) -> int:
        """Wait until no run is pending or in progress, twice in a row half a second apart
        (an event a run wrote may queue the next one); the number of runs then."""
        deadline = time.monotonic() + timeout_s
        quiet = 0
        while time.monotonic() < deadline:
            found = self.executions()
            active = [e for e in found if e["status"] in ("Pending", "InProgress")]
            quiet = 0 if active else quiet + 1
            if quiet == 2:
                return len(found)
            time.sleep(0.5)
        raise AssertionError(f"runs still active after {timeout_s}s: {self.executions()}")


def mesh(
    regions: dict[str, Region],
    repo: str,
    names: str = "ab",
    endpoints: dict[str, int] | None = None,
) -> Mesh:
    """Disabled event-based policies ``repo`` between ``names``, each way (``endpoints``:
    ``{"a>b": id}`` to use other endpoints than the plain ones)."""
    policies = {}
    for src in names:
        for dst in names:
            if src == dst:
                continue
            region = regions[src]
            target = (endpoints or {}).get(f"{src}>{dst}", region.endpoints[dst])
            body = {
                "name": f"{repo.replace('/', '-')}-{src}-to-{dst}",
                "src_registry": None,
                "dest_registry": {"id": target},
                "filters": [{"type": "name", "value": repo}],
                "trigger": {"type": "event_based"},
                "deletion": True,
                "override": True,
                "enabled": False,
            }
            with region.api() as c:
                r = c.post("/replication/policies", json=body)
            assert r.status_code == 201, r.text
            policies[(src, dst)] = int(r.headers["Location"].rsplit("/", 1)[1])
    return Mesh({n: regions[n] for n in names}, policies)


def until(what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> float:
    """Poll ``check`` until it holds; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s}s")
        time.sleep(0.1)
    return time.monotonic() - started


def everywhere(m: Mesh, repo: str, want: dict[str, str | None]) -> Callable[[], bool]:
    return lambda: all(
        r.digest(repo, tag) == digest for r in m.regions.values() for tag, digest in want.items()
    )


def test_a_concurrent_conflict_goes_to_the_last_writer_and_the_runs_stop(
    regions: dict[str, Region],
) -> None:
    """t0, t1 pushed at A then at B; t2, t3 at B then at A: each tag ends at its later push
    in both regions, the runs stop, and the settled conflicts are in the tasks."""
    a, b = regions["a"], regions["b"]
    repo = "lww/app"
    m = mesh(regions, repo)
    want = {}
    for tag in ("t0", "t1"):
        a.push(repo, tag, f"a{tag}")
        want[tag] = b.push(repo, tag, f"b{tag}")
    for tag in ("t2", "t3"):
        b.push(repo, tag, f"b{tag}")
        want[tag] = a.push(repo, tag, f"a{tag}")
    m.set_enabled(True)
    m.run_all()
    took = until("the last writer's digests everywhere", everywhere(m, repo, want))
    runs = m.settle()
    assert all(a.digest(repo, t) == d and b.digest(repo, t) == d for t, d in want.items())
    assert len(m.executions()) == runs  # nothing more queued: the policies do not loop
    reasons = [t["reason"] for t in m.tasks() if "conflict settled" in t["reason"]]
    assert any("last writer wins" in r for r in reasons), reasons
    print(f"converged in {took:.2f}s after {runs} runs")


def test_a_primary_region_wins_the_conflict(regions: dict[str, Region]) -> None:
    """With conflict_rule primary (a for prim/**), A's digest wins though B's push is later."""
    a, b = regions["a"], regions["b"]
    repo = "prim/app"
    options = {"conflict_rule": "primary", "primary_region": "prim/**=a,b"}
    ids = {
        "a>b": endpoint(a, b, "-primary", **options),
        "b>a": endpoint(b, a, "-primary", **options),
    }
    m = mesh(regions, repo, endpoints=ids)
    first = a.push(repo, "t", "at a")
    b.push(repo, "t", "at b, later")
    m.set_enabled(True)
    m.run_all()
    until("the primary's digest everywhere", everywhere(m, repo, {"t": first}))
    runs = m.settle()
    assert a.digest(repo, "t") == b.digest(repo, "t") == first
    assert len(m.executions()) == runs
    reasons = [t["reason"] for t in m.tasks() if "conflict settled" in t["reason"]]
    assert any("primary a" in r for r in reasons), reasons


def test_a_deleted_tag_stays_deleted(regions: dict[str, Region]) -> None:
    """t pushed at B reaches A; A deletes it while A → B is disabled (so B still has it): a
    full run B → A does not copy it back; once A → B runs, B deletes it too, and full runs
    both ways after that change nothing."""
    a, b = regions["a"], regions["b"]
    repo = "gone/app"
    m = mesh(regions, repo)
    m.set_enabled(True)
    pushed = b.push(repo, "t", "from b")
    b.push(repo, "keep", "kept")
    until("t at A", lambda: a.digest(repo, "t") == pushed)
    m.settle()
    with a.api() as c:  # the deletion does not reach B yet
        c.put(f"/replication/policies/{m.policies[('a', 'b')]}", json={"enabled": False})
    a.delete(repo, "t")
    assert m.run("b", "a")["status"] == "Succeed"  # a full run from the region that has t
    assert a.digest(repo, "t") is None and b.digest(repo, "t") == pushed
    with a.api() as c:
        c.put(f"/replication/policies/{m.policies[('a', 'b')]}", json={"enabled": True})
    assert m.run("a", "b")["status"] == "Succeed"
    assert b.digest(repo, "t") is None
    for src, dst in (("b", "a"), ("a", "b"), ("b", "a")):
        assert m.run(src, dst)["status"] == "Succeed"
    m.settle()
    assert a.digest(repo, "t") is None and b.digest(repo, "t") is None
    assert a.digest(repo, "keep") is not None


def test_three_regions_converge_and_a_deletion_reaches_all(regions: dict[str, Region]) -> None:
    """Three regions, six policies: t pushed at A, B and C while disabled (C last) ends at C's
    digest everywhere; then t deleted at B is gone from all three, and full runs of all six
    policies do not bring it back."""
    repo = "three/app"
    m = mesh(regions, repo, "abc")
    for name in NAMES:
        last = regions[name].push(repo, "t", f"at {name}")
    m.set_enabled(True)
    m.run_all()
    took = until("C's digest everywhere", everywhere(m, repo, {"t": last}))
    runs = m.settle()
    regions["b"].delete(repo, "t")
    gone = until("t deleted everywhere", everywhere(m, repo, {"t": None}))
    m.settle()
    m.run_all()
    after = m.settle()
    assert all(r.digest(repo, "t") is None for r in m.regions.values())
    print(f"conflict settled in {took:.2f}s ({runs} runs); deletion everywhere in {gone:.2f}s")
    assert after == len(m.executions())
