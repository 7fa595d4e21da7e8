"""Upload state across nodes: two BlobStores (two nodes) over one storage. A chunked upload whose
PATCHes alternate between them costs at most one extra read of the upload (at publish), never a
read per chunk; one node alone reads nothing back."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.oci.digest import Digest
from registry.storage.blobs import BlobStore, DigestMismatch
from registry.storage.checked import CheckedDriver
from registry.storage.drivers.filesystem import FilesystemDriver
from registry.storage.testing import MiB, payload, read_all

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _sha256(data: bytes) -> Digest:
    h = Digest.parse("sha256:" + "0" * 64).hasher()
    h.update(data)
    return h.digest()


async def _chunks(data: bytes):  # type: ignore[no-untyped-def]
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


def _bytes_read(driver: CheckedDriver) -> int:
    stats = driver.metrics.snapshot().get("reader")
    return stats.bytes_total if stats else 0


@pytest.mark.parametrize(
    ("nodes", "expected_reads"),
    [
        ("AAAAA", 0),  # one node: its running hash covers everything
        ("ABABA", 1),  # alternating: one read at publish, not one per chunk
        ("ABBBB", 1),
        ("BBBBA", 1),  # B never saw the start; A's state is stale by then
    ],
)
async def test_chunks_on_several_nodes_cost_at_most_one_read(
    tmp_path: Path, nodes: str, expected_reads: int
) -> None:
    driver = CheckedDriver(FilesystemDriver(tmp_path))
    stores = {"A": BlobStore(driver), "B": BlobStore(driver)}
    data = payload(5 * MiB + 17, seed=3)
    upload_id = "u" * 32
    await stores["A"].create(upload_id)
    cuts = [0, MiB, 2 * MiB + 5, 3 * MiB, 4 * MiB + 1, len(data)]
    for node, start, end in zip(nodes, cuts, cuts[1:], strict=False):
        size = await stores[node].append(
            upload_id, _chunks(data[start:end]), commit=end == len(data)
        )
        assert size == end
    digest = _sha256(data)
    await stores[nodes[-1]].publish(upload_id, digest, len(data))
    assert _bytes_read(driver) == expected_reads * len(data)
    assert await read_all(stores["B"].read(digest)) == data


async def test_a_mismatch_is_caught_after_a_node_switch(tmp_path: Path) -> None:
    driver = CheckedDriver(FilesystemDriver(tmp_path))
    a, b = BlobStore(driver), BlobStore(driver)
    await a.create(upload_id := "v" * 32)
    await a.append(upload_id, _chunks(b"first"))
    await b.append(upload_id, _chunks(b"second"))
    size = await a.append(upload_id, _chunks(b"third"), commit=True)
    with pytest.raises(DigestMismatch):
        await a.publish(upload_id, _sha256(b"firstsecondTHIRD"), size)
    assert [info async for info in driver.walk("/uploads")] == []
