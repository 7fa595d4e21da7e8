"""The Google Cloud Storage driver against the GCS emulator: the shared conformance suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from registry.storage.base import StorageDriver
from registry.storage.checked import CheckedDriver
from registry.storage.drivers.gcs import GcsDriver, GcsStore, make_client
from registry.storage.testing import StorageDriverSuite
from tests.support.gcs_emulator import GcsEmulatorProcess


@pytest.fixture(scope="session")
def gcs_client(gcs_emulator: GcsEmulatorProcess) -> Any:
    return make_client({"STORAGE_EMULATOR_HOST": gcs_emulator.host})


class TestGcsDriver(StorageDriverSuite):
    """Resumable chunks of 1 MiB, so the suite's larger writes stream through a session."""

    @pytest.fixture
    async def driver(self, gcs_client: Any) -> AsyncIterator[StorageDriver]:
        self._client, self._prefix = gcs_client, f"p-{uuid.uuid4().hex[:8]}"
        driver = self._make()
        yield driver
        await driver.close()

    def _make(self) -> StorageDriver:
        store = GcsStore(self._client, "suite", owns_client=False)
        store.part_bytes = 1 << 20
        return CheckedDriver(GcsDriver(store, self._prefix))

    async def reopened(self, driver: StorageDriver) -> StorageDriver:
        return self._make()
