"""A real ``seawall serve`` on each object store (S3 on moto, Azure Blob on azurite, GCS on its
emulator): skopeo pushes an image and pulls it back byte for byte; a chunked upload of more than
one S3 part goes through the driver; blob GETs redirect to the store where it can sign a URL.

Every server runs with ``SEAWALL_STORAGE__REDIRECT=true``: skopeo's pull follows the ``307``s
(S3, Azure) or gets the bytes from Seawall (GCS on the emulator: no signing credentials).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.storage.testing import MiB, payload
from tests.clients.layouts import Layout, build_image, sha256
from tests.clients.tools import Registry, Skopeo, require_binary
from tests.support.azurite import AzuriteProcess
from tests.support.client import client
from tests.support.gcs_emulator import GcsEmulatorProcess
from tests.support.moto import MotoServer
from tests.support.server import SeawallProcess

BACKENDS = ["s3", "azure", "gcs"]


def backend_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """``seawall serve``'s environment for ``backend`` on its emulator (a fresh bucket)."""
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    env = {"SEAWALL_STORAGE__DRIVER": backend, "SEAWALL_STORAGE__REDIRECT": "true"}
    if backend == "s3":
        moto: MotoServer = request.getfixturevalue("moto_s3")
        return env | moto.env() | {"SEAWALL_STORAGE__BUCKET": name, "SEAWALL_STORAGE__PREFIX": "r"}
    if backend == "azure":
        azurite: AzuriteProcess = request.getfixturevalue("azurite")
        return env | {
            "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "SEAWALL_STORAGE__CONTAINER": name,
        }
    gcs: GcsEmulatorProcess = request.getfixturevalue("gcs_emulator")
    return env | {"STORAGE_EMULATOR_HOST": gcs.host, "SEAWALL_STORAGE__BUCKET": name}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, SeawallProcess]]:
    """One server per backend for this module's tests (starting one takes seconds)."""
    tmp_path = tmp_path_factory.mktemp(f"serve-{request.param}")
    proc = SeawallProcess(tmp_path / "data", extra_env=backend_env(request, request.param))
    try:
        proc.start()
    except Exception:
        pytest.fail(f"seawall serve did not start on {request.param}:\n{proc.log()}")
    yield request.param, proc
    proc.stop()
    assert not (tmp_path / "data" / "storage").exists(), "bytes went to the local disk"


def test_skopeo_push_pull_round_trip(server: tuple[str, SeawallProcess], tmp_path: Path) -> None:
    backend, proc = server
    skopeo = Skopeo(tmp_path, require_binary("skopeo"))
    registry = Registry("seawall", proc.url, proc.host, "admin", proc.admin_password)
    image = build_image(tmp_path / "src", "v1", seed=f"e2e-{backend}", layers=3)
    skopeo.copy(
        f"oci:{tmp_path / 'src'}:v1",
        registry.docker("e2e/app", "v1"),
        "--preserve-digests",
        dest_registry=registry,
    )
    skopeo.copy(
        registry.docker("e2e/app", "v1"),
        f"oci:{tmp_path / 'back'}:v1",
        "--preserve-digests",
        src_registry=registry,
    )
    back = Layout(tmp_path / "back")
    assert back.resolve("v1")[1] == image.manifest
    pulled = back.all_blobs()
    for digest, data in image.blobs.items():
        assert pulled.get(digest) == data, f"{backend}: blob {digest} differs after the trip"


def test_chunked_upload_and_reads(server: tuple[str, SeawallProcess]) -> None:
    """Chunks past S3's 5 MiB part minimum; then a whole GET (redirected where the store can
    sign, else served) and a ranged GET (always through the driver)."""
    backend, proc = server
    data = payload(11 * MiB + 7, seed=21)
    digest = sha256(data)
    with client(proc.url, "admin", proc.admin_password) as c:
        r = c.post("/v2/e2e/chunked/blobs/uploads/")
        assert r.status_code == 202, r.text
        location = r.headers["Location"]
        for start, end in [(0, 6 * MiB), (6 * MiB, 6 * MiB + 5), (6 * MiB + 5, len(data))]:
            r = c.patch(
                location,
                content=data[start:end],
                headers={
                    "Content-Range": f"{start}-{end - 1}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert r.status_code == 202, r.text
            assert r.headers["Range"] == f"0-{end - 1}"
            location = r.headers["Location"]
        r = c.put(location, params={"digest": digest})
        assert r.status_code == 201, r.text

        r = c.get(f"/v2/e2e/chunked/blobs/{digest}", follow_redirects=False)
        if backend == "gcs":  # the emulator's anonymous client cannot sign: bytes from Seawall
            assert r.status_code == 200 and r.content == data
        else:
            assert r.status_code == 307, r.text
            fetched = httpx.get(r.headers["Location"], timeout=60)
            assert fetched.status_code == 200 and fetched.content == data

        r = c.get(f"/v2/e2e/chunked/blobs/{digest}", headers={"Range": f"bytes={MiB - 3}-"})
        assert r.status_code == 206 and r.content == data[MiB - 3 :]
