"""Garbage collection from the outside, on each backend: a dry run removes nothing and reports
what a run then removes; the grace period keeps what was uploaded, mounted or read recently
(clocks injected: no waiting); abandoned upload sessions go once idle past the grace period.

Each test starts from a registry with no garbage (a collection at grace 0 runs first), so the
counts it asserts are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.gc.support import Rig, assert_pullable, layer, push_image, send_blob
from tests.support.client import OCI_MANIFEST, image_manifest, sha256

HOUR = timedelta(hours=1)


@pytest.fixture
def clean(rig: Rig) -> Iterator[Rig]:
    rig.collect(timedelta(0))
    yield rig


def test_dry_run_removes_nothing_then_a_run_removes_what_it_reported(clean: Rig) -> None:
    rig = clean
    shared = layer("dry-shared", 1500)
    with rig.client() as c:
        keep, _ = push_image(c, "dry/app", "keep", [b'{"k":1}', layer("dry-k", 3000), shared])
        big = layer("dry-big", 1_300_000)  # > 1 MiB: through an upload session
        gone, _ = push_image(c, "dry/app", "gone", [b'{"g":1}', big, shared])
        assert c.delete(f"/v2/dry/app/manifests/{gone.digest}").status_code == 202
    garbage = {sha256(b'{"g":1}'), sha256(big)}
    before = rig.stored()
    assert garbage <= set(before)

    dry = rig.gc_cli("--dry-run", "--grace-seconds", "0")
    assert dry["dry_run"] is True
    assert (dry["blobs_removed"], dry["uploads_removed"]) == (2, 0)
    assert dry["bytes_reclaimed"] == sum(before[d] for d in garbage) == 7 + 1_300_000
    assert rig.stored() == before, "a dry run removed something"

    real = rig.gc_cli("--grace-seconds", "0")
    assert real["dry_run"] is False
    for key in ("blobs_removed", "bytes_reclaimed", "uploads_removed"):
        assert real[key] == dry[key], key
    assert set(rig.stored()) == set(before) - garbage
    with rig.client() as c:
        assert_pullable(c, [keep])
        assert c.head(f"/v2/dry/app/blobs/{sha256(big)}").status_code == 404
    assert rig.collect(timedelta(0)).blobs_removed == 0


def test_grace_keeps_what_was_uploaded_or_read_recently(clean: Rig) -> None:
    rig = clean
    t0 = datetime.now(UTC)
    cfg, old, read = b'{"m":1}', layer("mark-old", 2000), layer("mark-read", 2000)
    late_cfg, late = b'{"late":1}', layer("mark-late", 2000)
    with rig.client() as c:
        image, _ = push_image(c, "mark/app", "v1", [cfg, old, read])
        assert c.delete(f"/v2/mark/app/manifests/{image.digest}").status_code == 202
        for blob in (late_cfg, late):  # a push whose manifest comes after the collection
            send_blob(c, "mark/late", blob)

        first = rig.collect(HOUR, clock=lambda: t0)
        assert (first.blobs_marked, first.blobs_removed, first.blobs_kept) == (5, 0, 5)
        # a client checks a blob before referencing it: that read keeps it another grace
        assert c.head(f"/v2/mark/app/blobs/{sha256(read)}").status_code == 200
        manifest = image_manifest(late_cfg, [late])
        r = c.put(
            "/v2/mark/late/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 201, r.text

        second = rig.collect(HOUR, clock=lambda: t0 + 2 * HOUR)
        assert (second.blobs_removed, second.blob_bytes_reclaimed) == (2, 7 + 2000)
        assert second.blobs_marked == 1  # the one read: marked again
        stored = rig.stored()
        assert sha256(read) in stored and sha256(late) in stored
        assert sha256(old) not in stored and sha256(cfg) not in stored

        third = rig.collect(HOUR, clock=lambda: t0 + 4 * HOUR)
        assert (third.blobs_removed, third.blob_bytes_reclaimed) == (1, 2000)
        assert sha256(read) not in rig.stored()
        r = c.get("/v2/mark/late/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        for blob in (late_cfg, late):
            r = c.get(f"/v2/mark/late/blobs/{sha256(blob)}", follow_redirects=True)
            assert r.status_code == 200 and r.content == blob


def test_abandoned_uploads_go_once_idle_past_the_grace(clean: Rig) -> None:
    rig = clean
    with rig.client() as c:
        locations = []
        for i in range(3):
            r = c.post(f"/v2/up/app{i}/blobs/uploads/")
            assert r.status_code == 202
            r = c.patch(
                r.headers["Location"],
                content=layer(f"up{i}", 1000 + i),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert r.status_code == 202, r.text
            locations.append(r.headers["Location"])
        assert len(rig.stored("/uploads")) == 3

        now = rig.collect(HOUR)
        assert (now.uploads_scanned, now.uploads_removed) == (3, 0)
        later = datetime.now(UTC) + 2 * HOUR
        dry = rig.collect(HOUR, dry_run=True, clock=lambda: later)
        assert (dry.uploads_removed, dry.upload_bytes_reclaimed) == (3, 3003)
        assert len(rig.stored("/uploads")) == 3
        real = rig.collect(HOUR, clock=lambda: later)
        assert (real.uploads_removed, real.upload_bytes_reclaimed) == (3, 3003)
        assert rig.stored("/uploads") == {}
        r = c.patch(
            locations[0], content=b"more", headers={"Content-Type": "application/octet-stream"}
        )
        assert r.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in r.text
