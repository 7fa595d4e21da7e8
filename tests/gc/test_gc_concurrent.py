"""Garbage collection at grace 0, run again and again, while pushes (uploads, monolithic and
through sessions, and cross-repository mounts), manifest deletes and a whole-repository delete
go on against a real ``seawall serve``. Blobs shared between images become garbage and are
pushed again while collections take them: the race the fence exists for.

Afterwards every image still in the registry is pullable byte for byte, and the store holds
exactly the blobs those images reference. A push may meet a collection that took its blob
between the blob and the manifest (grace 0 allows that): it gets ``MANIFEST_BLOB_UNKNOWN`` or
``503`` and pushes again, as a client does; every push ends stored.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from registry.storage.gc import GcReport
from tests.gc.support import Image, Rig, assert_pullable, layer, push_image, referenced
from tests.support.client import client
from tests.support.server import SeawallProcess

WORKERS = 3
ITERATIONS = 14
SEED = 20261205
#: layers images share: half small (stored in one call), half past 1 MiB (an upload session)
POOL = [layer(f"pool-{i}", 1_100_000 if i % 2 else 1500) for i in range(6)]


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    alive: list[Image] = field(default_factory=list)
    retries: int = 0
    deleted: int = 0


def worker(n: int, ledger: Ledger, nodes: list[SeawallProcess]) -> None:
    """Push ``ITERATIONS`` images to ``conc/w<n>``, each through the next node in turn."""
    rng = random.Random(f"{SEED}-{n}")
    repo = f"conc/w{n}"
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(client(p.url, "admin", p.admin_password)) for p in nodes]
        for i in range(ITERATIONS):
            c = clients[(n + i) % len(clients)]
            blobs = [
                json.dumps({"worker": n, "i": i}).encode(),
                layer(f"w{n}-{i}", rng.choice([900, 1_050_000])),
                rng.choice(POOL),
            ]
            mount_from = f"conc/w{(n + 1) % WORKERS}" if rng.random() < 0.4 else None
            image, retries = push_image(c, repo, f"t{i}", blobs, mount_from=mount_from)
            with ledger.lock:
                ledger.alive.append(image)
                ledger.retries += retries
                mine = [im for im in ledger.alive if im.repo == repo]
            if rng.random() < 0.5:
                victim = rng.choice(mine)
                r = c.delete(f"/v2/{repo}/manifests/{victim.digest}")
                assert r.status_code == 202, r.text
                with ledger.lock:
                    ledger.alive.remove(victim)
                    ledger.deleted += 1
            if n == 1 and i == ITERATIONS // 2:  # the whole repository, through the API
                r = c.delete("/api/v2.0/projects/conc/repositories/w1")
                assert r.status_code == 200, r.text
                with ledger.lock:
                    ledger.alive = [im for im in ledger.alive if im.repo != repo]


def test_collections_during_pushes_and_deletes_lose_nothing(rig: Rig) -> None:
    run(rig, [rig.server])


def run(rig: Rig, nodes: list[SeawallProcess]) -> None:
    """The scenario: workers push and delete through ``nodes`` while ``rig`` collects."""
    rig.collect()
    earlier = set(rig.stored())  # other tests' images on this registry
    ledger = Ledger()
    stop = threading.Event()
    with ThreadPoolExecutor(WORKERS + 1) as pool:
        # paced so that pushes get through: on moto (one request at a time) a push takes longer
        pause_s = 0.15 if rig.backend == "filesystem" else 0.5
        collections = pool.submit(rig.collect_until, stop, pause_s)
        try:
            for future in [pool.submit(worker, n, ledger, nodes) for n in range(WORKERS)]:
                future.result(timeout=120)
        finally:
            stop.set()
        reports: list[GcReport] = collections.result(timeout=120)
    final = rig.collect()
    removed = sum(r.blobs_removed for r in reports) + final.blobs_removed
    print(
        f"{rig.backend}: {len(reports)} collections during the pushes removed {removed} blobs; "
        f"{len(ledger.alive)} images left, {ledger.deleted} deleted, {ledger.retries} re-pushes"
    )
    assert len(reports) >= 3, "the collections did not overlap the pushes"
    assert removed > 0
    assert all(r.errors == 0 for r in [*reports, final])

    assert set(rig.stored()) == earlier | referenced(ledger.alive), "store != referenced"
    assert rig.holds() == 0, "a publication's hold was never consumed by its link"
    with rig.client() as c:
        assert_pullable(c, ledger.alive)
