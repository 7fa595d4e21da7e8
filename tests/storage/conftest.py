"""Session fixtures that start the storage emulators: moto server (S3), azurite (Azure Blob), the
GCS emulator. Each starts once, on 127.0.0.1, when a test first asks for it.

A missing emulator skips its tests locally and FAILS them under CI (``CI=true``): ``scripts/test``
installs all three, so their absence there is a broken setup, not a reason to pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.azurite import AzuriteProcess, find_azurite
from tests.support.gcs_emulator import GcsEmulatorProcess, find_gcs_emulator
from tests.support.moto import MotoServer, moto_binary


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(what: str) -> None:
    """Skip (locally) or fail (CI): ``what`` is not installed."""
    message = f"{what} is not installed (scripts/test installs it)"
    if in_ci():
        pytest.fail(f"{message}; CI must run every storage backend", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto server (the shared :class:`tests.support.moto.MotoServer`) answering S3."""
    if moto_binary() is None:
        missing("moto server (PyPI moto[server])")
    with MotoServer(tmp_path_factory.mktemp("moto-s3")) as server:
        yield server


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
