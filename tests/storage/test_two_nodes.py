"""Two ``seawall serve`` nodes on one PostgreSQL database and one S3 bucket (moto): a chunked push
whose PATCHes alternate between the nodes succeeds, and either node serves the result.

Nothing of an upload lives in a node: its bytes and its size are in the bucket, its id is signed
with the key the nodes share. Each node keeps only its own running hash; the node that finishes
reads the upload once when it did not see every chunk (tests/storage/test_upload_state.py counts
that read; this test proves it end to end).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.storage.testing import MiB, payload
from tests.clients.layouts import sha256
from tests.postgres.helpers import node
from tests.support.client import client, image_manifest, push_blob
from tests.support.moto import MotoServer
from tests.support.server import SeawallProcess

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture
def nodes(
    tmp_path: Path, postgres_url: str, moto_s3: MotoServer
) -> Iterator[tuple[SeawallProcess, SeawallProcess]]:
    storage = moto_s3.env() | {
        "SEAWALL_STORAGE__DRIVER": "s3",
        "SEAWALL_STORAGE__BUCKET": f"two-{uuid.uuid4().hex[:10]}",
    }
    a = node(tmp_path / "a", postgres_url, **storage)
    b = node(tmp_path / "b", postgres_url, **storage)
    try:
        a.start()
        b.start()
    except Exception:
        a.stop()
        b.stop()
        pytest.fail(f"a node did not start:\n{a.log()}\n{b.log()}")
    yield a, b
    a.stop()
    b.stop()


def test_chunked_push_alternating_nodes(nodes: tuple[SeawallProcess, SeawallProcess]) -> None:
    a, b = nodes
    layer = payload(13 * MiB + 3, seed=31)
    digest = sha256(layer)
    chunks = [(0, 6 * MiB), (6 * MiB, 7 * MiB), (7 * MiB, 12 * MiB), (12 * MiB, len(layer))]
    with (
        client(a.url, "admin", a.admin_password) as on_a,
        client(b.url, "admin", b.admin_password) as on_b,
    ):
        r = on_a.post("/v2/two/app/blobs/uploads/")
        assert r.status_code == 202, r.text
        path = r.headers["Location"]
        for i, (start, end) in enumerate(chunks):
            via = (on_a, on_b)[(i + 1) % 2]  # B, A, B, A
            r = via.patch(
                path,
                content=layer[start:end],
                headers={
                    "Content-Range": f"{start}-{end - 1}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert r.status_code == 202, (i, r.status_code, r.text)
            assert r.headers["Range"] == f"0-{end - 1}"
            path = r.headers["Location"]
            other = (on_b, on_a)[(i + 1) % 2]
            status = other.get(path)  # the other node sees the same progress
            assert status.status_code == 204 and status.headers["Range"] == f"0-{end - 1}"
        r = on_b.put(path, params={"digest": digest})
        assert r.status_code == 201, r.text

        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        push_blob(on_a, "two/app", config)
        manifest = image_manifest(config, [layer])
        r = on_a.put(
            "/v2/two/app/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert r.status_code == 201, r.text

        for via in (on_a, on_b):
            r = via.get("/v2/two/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200 and r.content == manifest
            r = via.get(f"/v2/two/app/blobs/{digest}")
            assert r.status_code == 200 and r.content == layer
