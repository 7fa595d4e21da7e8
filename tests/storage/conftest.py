"""Session fixtures that start the storage emulators: moto server (S3), azurite (Azure Blob), the
GCS emulator. Each starts once, on 127.0.0.1, when a test first asks for it.

A missing emulator skips its tests locally and FAILS them under CI (``CI=true``): ``scripts/test``
installs all three, so their absence there is a broken setup, not a reason to pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.azurite import AzuriteProcess, find_azurite
from tests.support.gcs_emulator import GcsEmulatorProcess, find_gcs_emulator
from tests.support.server import free_port, stop_group, wait_http


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(what: str) -> None:
    """Skip (locally) or fail (CI): ``what`` is not installed."""
    message = f"{what} is not installed (scripts/test installs it)"
    if in_ci():
        pytest.fail(f"{message}; CI must run every storage backend", pytrace=False)
    pytest.skip(message)


@dataclass
class MotoS3:
    """``moto_server`` answering S3 on 127.0.0.1 (a fixture of this folder until a shared one
    exists in tests/support/moto.py)."""

    binary: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """boto3's standard variables pointing at this server (loopback only)."""
        return {
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def start(self) -> MotoS3:
        self.proc = subprocess.Popen(
            [self.binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_http(self.url + "/", 60.0, self.proc)
        except Exception:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    local = Path(sys.executable).parent / "moto_server"
    binary = str(local) if local.exists() else shutil.which("moto_server")
    if binary is None:
        missing("moto server (PyPI moto[server])")
    server = MotoS3(binary).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteProcess]:
    binary = find_azurite()
    if binary is None:
        missing("azurite (npm azurite@3.35)")
    proc = AzuriteProcess(binary)
    try:
        proc.start()
    except Exception as e:
        raise RuntimeError(f"starting azurite failed: {e}\n{proc.log()}") from None
    finally:
        if proc.proc is None:  # it did not start: its log went into the error above
            proc.remove()
    yield proc
    proc.stop()
    proc.remove()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[GcsEmulatorProcess]:
    binary = find_gcs_emulator()
    if binary is None:
        missing("the GCS emulator (PyPI gcp-storage-emulator)")
    proc = GcsEmulatorProcess(binary)
    try:
        proc.start()
    except Exception as e:
        raise RuntimeError(f"starting the GCS emulator failed: {e}\n{proc.log()}") from None
    finally:
        if proc.proc is None:  # it did not start: its log went into the error above
            proc.remove()
    yield proc
    proc.stop()
    proc.remove()
