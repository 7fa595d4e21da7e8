"""Read-through between three regions (three ``seawall serve`` processes, each reading through
the other two, each behind a counting proxy that the others' endpoints point at): a push to A
is pullable from B and C at once, with real clients; a herd costs A one fetch per manifest and
blob; corrupt bytes are refused and not stored; unknown content answers 404 without two
Seawalls asking each other in circles; permissions and local deletions hold."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.tools import Registry, Skopeo, require_binary
from tests.replication.support import add_endpoint, add_policy, api, digest_of, dumps, run, wait
from tests.support.client import (
    ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    client,
    image_manifest,
    push_blob,
    push_image,
    sha256,
)
from tests.support.counting_proxy import CountingProxy
from tests.support.server import SeawallProcess, free_port

NAMES = ("a", "b", "c")
#: what Seawall's own clients send: such requests never read through
SEAWALL_AGENT = {"User-Agent": "seawall/test"}


@dataclass
class Region:
    name: str
    proc: SeawallProcess
    proxy: CountingProxy  # in front of proc: the other regions' endpoint for this one

    @property
    def registry(self) -> Registry:
        p = self.proc
        return Registry("seawall", p.url, p.host, "admin", p.admin_password)

    def client(self, **kw: Any) -> httpx.Client:
        return client(self.proc.url, "admin", self.proc.admin_password, **kw)

    def holds(self, repo: str, ref: str, kind: str = "manifests") -> bool:
        """Whether this region itself holds ``ref`` (asked as Seawall: no read-through)."""
        with self.client(headers=SEAWALL_AGENT) as c:
            r = c.head(f"/v2/{repo}/{kind}/{ref}", headers={"Accept": ACCEPT})
        assert r.status_code in (200, 404), (r.status_code, r.text)
        return r.status_code == 200


@pytest.fixture(scope="module")
def dead() -> Iterator[CountingProxy]:
    """A region whose backend is gone: every request answers 502."""
    with CountingProxy(f"http://127.0.0.1:{free_port()}") as proxy:
        yield proxy


def _env(name: str) -> dict[str, str]:
    """Each region reads through the other two; C tries the dead region first (briefly), B
    tries first a region where nothing listens any more (with a long timeout)."""
    others = [o for o in NAMES if o != name]
    if name == "b":
        return {
            "SEAWALL_READ_THROUGH__REGISTRIES": ",".join(["gone", *others]),
            "SEAWALL_READ_THROUGH__TIMEOUT_SECONDS": "120",
        }
    if name == "c":
        return {
            "SEAWALL_READ_THROUGH__REGISTRIES": ",".join(["dead", *others]),
            "SEAWALL_READ_THROUGH__TIMEOUT_SECONDS": "2",
        }
    return {"SEAWALL_READ_THROUGH__REGISTRIES": ",".join(others)}


@pytest.fixture(scope="module")
def regions(
    tmp_path_factory: pytest.TempPathFactory, dead: CountingProxy
) -> Iterator[dict[str, Region]]:
    base = tmp_path_factory.mktemp("regions")
    procs = {n: SeawallProcess(base / n, extra_env=_env(n)) for n in NAMES}
    out: dict[str, Region] = {}
    try:
        with ThreadPoolExecutor(len(procs)) as pool:
            list(pool.map(SeawallProcess.start, procs.values()))
        for n, proc in procs.items():
            out[n] = Region(n, proc, CountingProxy(proc.url).start())
        for n, region in out.items():
            with api(region.proc.url, region.proc.admin_password) as a:
                for o in NAMES:
                    if o != n:
                        other = out[o]
                        add_endpoint(
                            a,
                            o,
                            other.proxy.url,
                            type_="seawall",
                            username="admin",
                            password=other.proc.admin_password,
                        )
                if n == "c":
                    add_endpoint(
                        a, "dead", dead.url, type_="seawall", username="admin", password="x"
                    )
                if n == "b":
                    gone = f"http://127.0.0.1:{free_port()}"
                    add_endpoint(a, "gone", gone, type_="seawall", username="admin", password="x")
        yield out
    finally:
        for region in out.values():
            region.proxy.stop()
        for proc in procs.values():
            proc.stop()


def push_index(c: httpx.Client, repo: str, tag: str) -> tuple[str, list[str]]:
    """An index of two platform images of two layers each; (index digest, child digests)."""
    children: list[dict[str, Any]] = []
    for arch in ("amd64", "arm64"):
        config = json.dumps({"architecture": arch, "os": "linux", "tag": tag}).encode()
        layers = [gzip.compress(os.urandom(64 * 1024)) for _ in range(2)]  # as skopeo keeps
        for blob in (config, *layers):
            push_blob(c, repo, blob)
        data = image_manifest(config, layers)
        digest = sha256(data)
        r = c.put(f"/v2/{repo}/manifests/{digest}", content=data, headers=_ct(OCI_MANIFEST))
        assert r.status_code == 201, r.text
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(data),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    r = c.put(f"/v2/{repo}/manifests/{tag}", content=index, headers=_ct(OCI_INDEX))
    assert r.status_code == 201, r.text
    return sha256(index), [str(ch["digest"]) for ch in children]


def _ct(media_type: str) -> dict[str, str]:
    return {"Content-Type": media_type}


def layout_digest(path: Path) -> str:
    """The digest an OCI layout's index.json names (the one image skopeo copied)."""
    index = json.loads((path / "index.json").read_text())
    [entry] = index["manifests"]
    for blob in (path / "blobs" / "sha256").iterdir():  # every blob is what it is named
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    return str(entry["digest"])


def test_a_push_to_a_is_pullable_from_b_and_c_at_once(
    regions: dict[str, Region], tmp_path: Path
) -> None:
    require_binary("skopeo")
    a, b, c = (regions[n] for n in NAMES)
    repo = "rt/multi"
    with a.client() as ca:
        index, (amd64, arm64) = push_index(ca, repo, "1.0")
    skopeo = Skopeo(tmp_path)
    amd = ("--override-arch", "amd64")
    copies = {  # at once after the push: replication is not even configured
        "b-tag": (b, "1.0", ()),
        "b-digest": (b, index, ("--all",)),
        "c-tag": (c, "1.0", ("--all",)),
        "c-digest": (c, arm64, ()),
    }
    for name, (region, ref, extra) in copies.items():
        dest = f"oci:{tmp_path / name}"
        skopeo.run(
            *amd,
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            str(region.registry.creds),
            *extra,
            region.registry.docker(repo, ref),
            "--preserve-digests",
            dest,
        )
    assert layout_digest(tmp_path / "b-tag") == amd64  # one platform: the child
    assert layout_digest(tmp_path / "b-digest") == index
    assert layout_digest(tmp_path / "c-tag") == index
    assert layout_digest(tmp_path / "c-digest") == arm64
    # what was read through is stored: the index whole (every child fetched), with its tag
    for region in (b, c):
        assert region.holds(repo, index) and region.holds(repo, amd64) and region.holds(repo, arm64)
        assert not region.holds(repo, "1.0")  # tags come with replication (its own to delete)
        with region.client() as rc:
            assert digest_of(rc, repo, "1.0") == index

    # the replication that comes later finds it there: no conflict, nothing changes
    with api(a.proc.url, a.proc.admin_password) as admin_a:
        for target in ("b", "c"):
            pid = add_policy(
                admin_a,
                f"rt-later-{target}",
                dest=_endpoint_id(admin_a, target),
                filters=[{"type": "name", "value": repo}],
                override=False,
            )
            ex, tasks = run(admin_a, pid)
            assert ex["status"] == "Succeed", dumps([ex, tasks])
    for region in (b, c):
        assert region.holds(repo, "1.0")  # the policy put the tag (the rest was there)
        with region.client() as rc:
            assert digest_of(rc, repo, "1.0") == index
            assert digest_of(rc, repo, amd64) == amd64
            assert digest_of(rc, repo, arm64) == arm64


def _endpoint_id(admin: httpx.Client, name: str) -> int:
    found = [e for e in admin.get("/registries").json() if e["name"] == name]
    return int(found[0]["id"])


def test_a_read_through_is_announced_by_no_event(regions: dict[str, Region]) -> None:
    """B's event policy to C replicates what is pushed to B, never what B read through."""
    a, b = regions["a"], regions["b"]
    with a.client() as ca:
        pulled, _ = push_image(ca, "rt-events/pulled", "v1", layers=2, seed="pulled")
    with b.client() as cb:
        assert digest_of(cb, "rt-events/pulled", "v1") == pulled
        for blob in _blobs(cb, "rt-events/pulled", pulled):
            assert cb.get(f"/v2/rt-events/pulled/blobs/{blob}").status_code == 200
    assert b.holds("rt-events/pulled", pulled)  # stored (no outbox event written for it)
    with api(b.proc.url, b.proc.admin_password) as admin_b:
        pid = add_policy(
            admin_b,
            "rt-events",
            dest=_endpoint_id(admin_b, "c"),
            filters=[{"type": "name", "value": "rt-events/*"}],
            trigger={"type": "event_based"},
        )
        with b.client() as cb:
            push_image(cb, "rt-events/pushed", "v1", seed="pushed")
        repos = _replicated_repositories(admin_b, pid, "rt-events/pushed")
    assert repos == {"rt-events/pushed"}, repos


def _replicated_repositories(admin: httpx.Client, policy_id: int, expected: str) -> set[str]:
    """Every repository the policy's runs copied, once a run has copied ``expected`` (events
    are consumed in order: a run for an earlier event has been queued by then)."""
    deadline = time.monotonic() + 60
    while True:
        executions = admin.get("/replication/executions", params={"policy_id": policy_id}).json()
        repos: set[str] = set()
        for ex in executions:
            wait(admin, ex["id"])
            tasks = admin.get(f"/replication/executions/{ex['id']}/tasks").json()
            repos |= {t["src_resource"].split(":")[0] for t in tasks}
        if expected in repos or time.monotonic() > deadline:
            return repos
        time.sleep(0.2)


def _blobs(c: httpx.Client, repo: str, ref: str) -> list[str]:
    doc = c.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}).json()
    return [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


def pull(c: httpx.Client, repo: str, tag: str) -> tuple[str, float]:
    """What a client does: the manifest by tag, then every blob, each checked against its
    digest; (manifest digest, seconds until the manifest's first byte)."""
    started = time.perf_counter()
    with c.stream("GET", f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT}) as r:
        first = time.perf_counter() - started
        r.read()
    assert r.status_code == 200, (r.status_code, r.text)
    assert sha256(r.content) == r.headers["Docker-Content-Digest"]
    doc = json.loads(r.content)
    for d in [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]:
        blob = c.get(f"/v2/{repo}/blobs/{d}")
        assert blob.status_code == 200, (blob.status_code, blob.text)
        assert sha256(blob.content) == d
    return r.headers["Docker-Content-Digest"], first


def test_a_herd_of_pulls_costs_the_upstream_one_fetch_each(regions: dict[str, Region]) -> None:
    a, b, c = (regions[n] for n in NAMES)
    repo, pulls = "rt/herd", 40
    with a.client() as ca:
        digest, data = push_image(ca, repo, "v1", layers=3, seed="herd")
    blobs = [d["digest"] for d in [json.loads(data)["config"], *json.loads(data)["layers"]]]
    clients = [b.client() for _ in range(pulls)]
    for each in clients:  # log in first, so the herd arrives together
        assert each.get("/v2/").status_code == 200
    start = threading.Barrier(pulls)

    def one(i: int) -> tuple[str, float]:
        start.wait()
        return pull(clients[i], repo, "v1")

    try:
        with ThreadPoolExecutor(pulls) as pool:
            results = list(pool.map(one, range(pulls)))
    finally:
        for each in clients:
            each.close()
    assert {d for d, _ in results} == {digest}
    expected = {("GET", "manifests", "v1"): 1} | {("GET", "blobs", d): 1 for d in blobs}
    assert a.proxy.counts(repo) == expected
    assert c.proxy.counts(repo) == {}  # A had it: C was never asked
    assert b.holds(repo, digest)


def test_corrupt_upstream_bytes_are_refused_and_not_stored(regions: dict[str, Region]) -> None:
    a, b = regions["a"], regions["b"]
    repo = "rt/corrupt"
    with a.client() as ca:
        digest, data = push_image(ca, repo, "v1", layers=1, seed="corrupt")
    layer = json.loads(data)["layers"][0]["digest"]
    with b.client() as cb:
        a.proxy.corrupt = True
        try:
            r = cb.get(f"/v2/{repo}/manifests/v1", headers={"Accept": ACCEPT})
            assert r.status_code == 503 and r.json()["errors"][0]["code"] == "UNAVAILABLE", r.text
            assert not b.holds(repo, "v1") and not b.holds(repo, digest)
            a.proxy.corrupt = False
            assert digest_of(cb, repo, "v1") == digest  # verified now; waits for its blobs
            a.proxy.corrupt = True
            r = cb.get(f"/v2/{repo}/blobs/{layer}")
            assert r.status_code == 503, (r.status_code, r.text)
            assert not b.holds(repo, layer, "blobs")
        finally:
            a.proxy.corrupt = False
        assert sha256(cb.get(f"/v2/{repo}/blobs/{layer}").content) == layer
    assert b.holds(repo, layer, "blobs")


def test_unknown_everywhere_is_404_and_two_seawalls_do_not_ask_each_other_back(
    regions: dict[str, Region],
) -> None:
    """A reads through B and C, and they through A: a miss asks each once, and neither asks A
    back (A's proxy sees nothing)."""
    a, b, c = (regions[n] for n in NAMES)
    for region in regions.values():
        region.proxy.reset()
    repo, blob = "rt/nowhere", sha256(b"nowhere")
    with a.client() as ca:
        r = ca.get(f"/v2/{repo}/manifests/1.0", headers={"Accept": ACCEPT})
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        r = ca.get(f"/v2/{repo}/blobs/{blob}")
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    asked = {("GET", "manifests", "1.0"): 1, ("GET", "blobs", blob): 1}
    assert b.proxy.counts() == asked and c.proxy.counts() == asked
    assert a.proxy.counts() == {}


def test_read_through_needs_pull_permission(regions: dict[str, Region]) -> None:
    """Authorization comes first: a client that may not pull there asks no upstream."""
    a, b = regions["a"], regions["b"]
    with a.client() as ca:
        push_image(ca, "rt/secret", "v1", seed="secret")
    a.proxy.reset()
    with client(b.proc.url, None, None) as anonymous:  # anonymous_pull is off
        r = anonymous.get("/v2/rt/secret/manifests/v1", headers={"Accept": ACCEPT})
        assert r.status_code == 401, (r.status_code, r.text)
        r = anonymous.get(f"/v2/rt/secret/blobs/{sha256(b'x')}")
        assert r.status_code == 401, (r.status_code, r.text)
    assert a.proxy.counts() == {}


def test_a_tag_deleted_here_is_not_read_back(regions: dict[str, Region]) -> None:
    """Deleted in B while A still has it (the deletion not replicated yet): B does not bring
    it back from A."""
    a, b = regions["a"], regions["b"]
    repo = "rt/deleted"
    with a.client() as ca, b.client() as cb:
        digest, _ = push_image(ca, repo, "v1", seed="deleted")
        push_image(cb, repo, "v1", seed="deleted")
        assert cb.delete(f"/v2/{repo}/manifests/v1").status_code == 202
        r = cb.get(f"/v2/{repo}/manifests/v1", headers={"Accept": ACCEPT})
        assert r.status_code == 404, (r.status_code, r.text)
        assert digest_of(cb, repo, digest) == digest  # the manifest itself stays


def test_a_failing_region_is_passed_over(regions: dict[str, Region], dead: CountingProxy) -> None:
    """C reads through a dead region first: asked once (a 502 and the client's retries), then
    passed over — the next miss goes straight to A."""
    a, c = regions["a"], regions["c"]
    with a.client() as ca:
        first, _ = push_image(ca, "rt/failover", "v1", seed="failover-1")
        second, _ = push_image(ca, "rt/failover", "v2", seed="failover-2")
    with c.client() as cc:
        assert digest_of(cc, "rt/failover", "v1") == first
        asked = dead.total()
        assert digest_of(cc, "rt/failover", "v2") == second
    assert dead.total() == asked


def test_a_region_that_refuses_connections_costs_no_wait(regions: dict[str, Region]) -> None:
    """B asks first a region where nothing listens, with a 120 s read-through timeout: the
    refused connection gives that region up at once (the OCI client alone would retry it for
    7.75–15.5 s), so a pull whose client waits 6 s at most is served from A."""
    a, b = regions["a"], regions["b"]
    with a.client() as ca:
        pushed, _ = push_image(ca, "rt/gone", "v1", seed="gone-1")
    with b.client() as cb:
        cb.timeout = httpx.Timeout(6.0)
        assert pull(cb, "rt/gone", "v1")[0] == pushed  # the manifest, then every blob


def test_a_manifest_is_stored_only_with_what_it_references(regions: dict[str, Region]) -> None:
    """Served at once, stored once its blobs are here (a replication's HEAD never finds half an
    artifact); the same image in another repository, whose layers B stores already, costs one
    manifest fetch and is stored at once."""
    a, b = regions["a"], regions["b"]
    with a.client() as ca:
        digest, data = push_image(ca, "rt/whole", "v1", layers=2, seed="whole")
        assert push_image(ca, "rt/whole-too", "v1", layers=2, seed="whole")[0] == digest
    doc = json.loads(data)
    blobs = [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]
    with b.client() as cb:
        assert digest_of(cb, "rt/whole", "v1") == digest
        assert not b.holds("rt/whole", digest) and not b.holds("rt/whole", "v1")
        for blob in blobs[:-1]:
            assert cb.get(f"/v2/rt/whole/blobs/{blob}").status_code == 200
        assert not b.holds("rt/whole", digest)  # one blob still missing
        assert cb.get(f"/v2/rt/whole/blobs/{blobs[-1]}").status_code == 200
        assert b.holds("rt/whole", digest) and not b.holds("rt/whole", "v1")
        a.proxy.reset()
        assert digest_of(cb, "rt/whole-too", "v1") == digest
    assert b.holds("rt/whole-too", digest) and all(
        b.holds("rt/whole-too", blob, "blobs") for blob in blobs
    )
    assert a.proxy.counts("rt/whole-too") == {("GET", "manifests", "v1"): 1}


def test_a_tag_read_through_is_the_replications_to_delete(regions: dict[str, Region]) -> None:
    """B read v1 through before the replication came; the replication then put the tag (all
    else was there), so its deletion sync removes it when v1 is deleted in A."""
    a, b = regions["a"], regions["b"]
    repo = "rt/deletion-sync"
    with a.client() as ca:
        push_image(ca, repo, "v1", layers=2, seed="deletion-sync")
        with b.client() as cb:
            pull(cb, repo, "v1")
        with api(a.proc.url, a.proc.admin_password) as admin_a:
            pid = add_policy(
                admin_a,
                "rt-deletion-sync",
                dest=_endpoint_id(admin_a, "b"),
                filters=[{"type": "name", "value": repo}],
                deletion=True,
                max_deletion_fraction=1.0,
            )
            ex, tasks = run(admin_a, pid)
            assert ex["status"] == "Succeed", dumps([ex, tasks])
            assert b.holds(repo, "v1")
            assert ca.delete(f"/v2/{repo}/manifests/v1").status_code == 202
            ex, tasks = run(admin_a, pid)
            assert ex["status"] == "Succeed", dumps([ex, tasks])
    assert not b.holds(repo, "v1")
    with b.client() as cb:
        assert cb.get(f"/v2/{repo}/manifests/v1", headers={"Accept": ACCEPT}).status_code == 404
