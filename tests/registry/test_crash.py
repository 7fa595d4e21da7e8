"""kill -9 during large pushes: after a restart every stored blob hashes to its digest, nothing
incomplete is visible, and interrupted uploads can be resumed or are simply absent."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.client import client, push_image, sha256
from tests.support.server import SeawallProcess

pytestmark = pytest.mark.slow

MiB = 1 << 20


def _blob(seed: int, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _push_chunked(
    base: str,
    password: str,
    repo: str,
    data: bytes,
    results: dict[str, str],
    under_way: threading.Event,
) -> None:
    """Push one blob in 4 MiB PATCH chunks; record 'done' or the exception. ``under_way`` is
    set once a chunk is stored (the push is mid-way)."""
    digest = sha256(data)
    try:
        with client(base, "admin", password) as c:
            r = c.post(f"/v2/{repo}/blobs/uploads/")
            loc = r.headers["Location"]
            for off in range(0, len(data), 4 * MiB):
                chunk = data[off : off + 4 * MiB]
                r = c.patch(
                    loc,
                    content=chunk,
                    headers={
                        "Content-Range": f"{off}-{off + len(chunk) - 1}",
                        "Content-Type": "application/octet-stream",
                    },
                )
                loc = r.headers["Location"]
                under_way.set()
            r = c.put(loc, params={"digest": digest})
            results[digest] = "done" if r.status_code == 201 else f"status {r.status_code}"
    except httpx.HTTPError as e:
        results[digest] = f"error {type(e).__name__}"


def _verify_storage(data_dir: Path) -> int:
    """Every published blob's bytes hash to its path's digest; return how many were checked."""
    checked = 0
    for path in (data_dir / "storage" / "blobs" / "sha256").glob("*/*/data"):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(MiB):
                h.update(chunk)
        assert h.hexdigest() == path.parent.name, f"corrupt blob at {path}"
        checked += 1
    return checked


def test_kill_during_pushes_leaves_nothing_partial(fresh_seawall: SeawallProcess) -> None:
    server = fresh_seawall.start()
    blobs = [_blob(i, (24 + 8 * i) * MiB) for i in range(4)]
    results: dict[str, str] = {}
    interrupted = 0
    repo = "crash/test"
    for round_no, delay in enumerate((0.0, 0.3, 0.8)):  # after the first chunk is stored
        results.clear()
        under_way = threading.Event()
        threads = [
            threading.Thread(
                target=_push_chunked,
                args=(server.url, server.admin_password, repo, b, results, under_way),
            )
            for b in blobs
        ]
        for t in threads:
            t.start()
        assert under_way.wait(60), f"round {round_no}: no chunk was stored"
        time.sleep(delay)
        server.kill()  # kill -9, the whole process group
        for t in threads:
            t.join(timeout=60)
        interrupted += sum(1 for v in results.values() if v != "done") + len(blobs) - len(results)
        server.start()
        _verify_storage(server.data_dir)
        with client(server.url, "admin", server.admin_password) as c:
            for b in blobs:
                d = sha256(b)
                r = c.head(f"/v2/{repo}/blobs/{d}")
                if results.get(d) == "done":
                    assert r.status_code == 200, f"round {round_no}: completed blob {d} lost"
                if r.status_code == 200:
                    assert int(r.headers["Content-Length"]) == len(b)
                    got = c.get(f"/v2/{repo}/blobs/{d}")
                    assert sha256(got.content) == d, f"round {round_no}: visible blob is corrupt"
                else:
                    assert r.status_code == 404
    assert interrupted > 0, "no push was interrupted: the test did not test a crash"
    # After the crashes the registry still works end to end, and integrity holds.
    with client(server.url, "admin", server.admin_password) as c:
        for b in blobs:
            threads_results: dict[str, str] = {}
            _push_chunked(
                server.url, server.admin_password, repo, b, threads_results, threading.Event()
            )
            assert set(threads_results.values()) == {"done"}
            assert sha256(c.get(f"/v2/{repo}/blobs/{sha256(b)}").content) == sha256(b)
        digest, _ = push_image(c, repo, "after-crash")
        assert c.get(f"/v2/{repo}/manifests/after-crash").headers["Docker-Content-Digest"] == digest
    assert _verify_storage(server.data_dir) >= len(blobs)
    db = sqlite3.connect(server.data_dir / "seawall.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert os.path.isdir(server.data_dir / "storage")


def test_kill_during_manifest_pushes_keeps_tags_consistent(fresh_seawall: SeawallProcess) -> None:
    """Tags written before a kill point at complete manifests whose blobs are all present."""
    server = fresh_seawall.start()
    stop = threading.Event()
    pushed: list[tuple[str, str]] = []

    def pusher() -> None:
        with client(server.url, "admin", server.admin_password) as c:
            i = 0
            while not stop.is_set():
                try:
                    digest, _ = push_image(c, "crash/tags", f"t{i}", layers=2, seed=str(i))
                    pushed.append((f"t{i}", digest))
                except (httpx.HTTPError, AssertionError, KeyError):
                    return
                i += 1

    t = threading.Thread(target=pusher)
    t.start()
    time.sleep(2.0)
    server.kill()
    stop.set()
    t.join(timeout=30)
    server.start()
    assert pushed, "nothing was pushed before the kill"
    with client(server.url, "admin", server.admin_password) as c:
        tags = c.get("/v2/crash/tags/tags/list").json()["tags"]
        for tag, _digest in pushed:
            assert tag in tags
        for tag in tags:
            r = c.get(
                f"/v2/crash/tags/manifests/{tag}",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            )
            assert r.status_code == 200
            assert sha256(r.content) == r.headers["Docker-Content-Digest"]
            for layer in r.json()["layers"] + [r.json()["config"]]:
                assert c.head(f"/v2/crash/tags/blobs/{layer['digest']}").status_code == 200
