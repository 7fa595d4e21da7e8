"""The concurrent scenario of ``test_gc_concurrent`` on two ``seawall serve`` nodes sharing one
PostgreSQL database and one S3 bucket (moto): workers push and delete through both nodes in
turn while collections (a third process: this one) run at grace 0. Here the per-digest lock is
a PostgreSQL advisory lock and a manifest ``PUT`` on one node races a claim made elsewhere."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gc.support import Rig
from tests.gc.test_gc_concurrent import run
from tests.postgres.helpers import node
from tests.support.moto import MotoServer
from tests.support.server import SeawallProcess


@pytest.fixture
def cluster(
    tmp_path: Path, postgres_url: str, moto_s3: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Rig, list[SeawallProcess]]]:
    moto_s3.apply(monkeypatch)
    storage = {
        "SEAWALL_STORAGE__DRIVER": "s3",
        "SEAWALL_STORAGE__BUCKET": f"gcpg-{uuid.uuid4().hex[:10]}",
    }
    nodes = [node(tmp_path / name, postgres_url, **storage) for name in ("a", "b")]
    try:
        for n in nodes:
            n.start()
    except Exception:
        for n in nodes:
            n.stop()
        pytest.fail("a node did not start:\n" + "\n".join(n.log() for n in nodes))
    yield Rig.of("s3+postgres", nodes[0], nodes[0].extra_env), nodes
    for n in nodes:
        n.stop()


def test_two_nodes_on_postgres_lose_nothing(cluster: tuple[Rig, list[SeawallProcess]]) -> None:
    rig, nodes = cluster
    run(rig, nodes)
