"""Fixtures of the garbage-collection tests: a real ``seawall serve`` per storage backend
(filesystem; S3 on moto server), with the same settings in this process for in-process runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.gc.support import Rig
from tests.storage.conftest import moto_s3  # noqa: F401 - the session's moto server
from tests.support.moto import MotoServer
from tests.support.server import SeawallProcess

BACKENDS = ["filesystem", "s3"]


@pytest.fixture(scope="session", params=BACKENDS)
def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """One registry per backend for all the garbage-collection tests (each starts by collecting
    everything unreferenced), and its settings here."""
    backend: str = request.param
    data_dir = tmp_path_factory.mktemp(f"gc-{backend}") / "data"
    env = {"SEAWALL_CACHE_TTL_SECONDS": "2"}
    with pytest.MonkeyPatch.context() as mp:
        if backend == "s3":
            moto: MotoServer = request.getfixturevalue("moto_s3")
            moto.apply(mp)  # this process (in-process runs) and the server's
            env |= {
                "SEAWALL_STORAGE__DRIVER": "s3",
                "SEAWALL_STORAGE__BUCKET": f"gc-{uuid.uuid4().hex[:10]}",
                "SEAWALL_STORAGE__PREFIX": "reg",
            }
        server = SeawallProcess(data_dir, extra_env=env)
        try:
            server.start()
        except Exception:
            pytest.fail(f"seawall serve did not start on {backend}:\n{server.log()}")
        yield Rig.of(backend, server, env)
        server.stop()
