"""``kill -9`` of ``seawall gc`` in the middle of a collection loses nothing: after each kill
every image is pullable byte for byte; the next collection finishes the job (the store then
holds exactly the referenced blobs), including bytes the killed one had claimed but not yet
deleted.

Kill points: once at a random moment after the collection began writing (its first mark),
once the instant it holds a claim (its links are gone, its bytes maybe not yet).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from tests.gc.support import Image, Rig, assert_pullable, layer, push_image, referenced

SEED = 7399
IMAGES = 10
DELETED = 8


def make_garbage(rig: Rig, round_no: int) -> list[Image]:
    """Push ``IMAGES`` images of five blobs each and delete ``DELETED`` of them; the kept ones."""

    def one(i: int) -> Image:
        blobs = [f'{{"round":{round_no},"i":{i}}}'.encode()]
        blobs += [layer(f"kill-{round_no}-{i}-{j}", 700 + j) for j in range(4)]
        with rig.client() as c:
            image, _ = push_image(c, f"kill/r{round_no}", f"t{i}", blobs)
            if i < DELETED:
                r = c.delete(f"/v2/{image.repo}/manifests/{image.digest}")
                assert r.status_code == 202, r.text
        return image

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, range(IMAGES)))[DELETED:]


def gc_rows(rig: Rig, where: str) -> int:
    with sqlite3.connect(rig.server.data_dir / "seawall.db", timeout=30) as db:
        return int(db.execute(f"SELECT count(*) FROM blob_gc WHERE {where}").fetchone()[0])


def kill_when(rig: Rig, ready: Callable[[], bool], delay_s: float) -> bool:
    """Start ``seawall gc --grace-seconds 0``; once ``ready()`` (polled), wait ``delay_s`` and
    ``kill -9`` it. Whether it was still running when killed."""
    proc = subprocess.Popen(
        rig.gc_command("--grace-seconds", "0"),
        env=rig.cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(delay_s)  # the random kill point, not a wait for anything
    alive = proc.poll() is None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return alive


def test_kill_9_mid_collection_loses_nothing(rig: Rig) -> None:
    rig.collect()
    earlier = set(rig.stored())  # other tests' images on this registry
    rng = random.Random(SEED)
    kept: list[Image] = []
    triggers = [
        (lambda: gc_rows(rig, "1 = 1") > 0, rng.uniform(0, 0.2)),  # a random point
        (lambda: gc_rows(rig, "claimed_at IS NOT NULL") > 0, 0.0),  # holding a claim
    ]
    mid_run = 0
    for round_no, (ready, delay_s) in enumerate(triggers):
        kept += make_garbage(rig, round_no)
        before = set(rig.stored())
        alive = kill_when(rig, ready, delay_s)
        left = set(rig.stored())
        if alive and (
            earlier | referenced(kept) < left < before or gc_rows(rig, "owner IS NOT NULL")
        ):
            mid_run += 1  # it had removed some, or held claims it never released
        with rig.client() as c:
            assert_pullable(c, kept)  # nothing lost, whatever the kill interrupted
    assert mid_run >= 1, "no kill landed in the middle of a collection"

    assert rig.collect().errors == 0  # the next collection finishes the job
    assert set(rig.stored()) == earlier | referenced(kept)
    with rig.client() as c:
        assert_pullable(c, kept)
