"""The Azure Blob driver against azurite: the shared conformance suite, through the wrapper."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from registry.storage.base import StorageDriver
from registry.storage.checked import CheckedDriver
from registry.storage.drivers.azure_blob import AzureBlobDriver, AzureBlobStore, make_service
from registry.storage.testing import StorageDriverSuite
from tests.support.azurite import AzuriteProcess


class TestAzureBlobDriver(StorageDriverSuite):
    """Blocks of 1 MiB, so the suite's writes stage several blocks per commit."""

    @pytest.fixture
    async def driver(self, azurite: AzuriteProcess) -> AsyncIterator[StorageDriver]:
        self._azurite, self._prefix = azurite, f"p-{uuid.uuid4().hex[:8]}"
        driver = self._make()
        yield driver
        await driver.close()

    def _make(self) -> StorageDriver:
        env = {"AZURE_STORAGE_CONNECTION_STRING": self._azurite.connection_string}
        store = AzureBlobStore(make_service(env), "suite")
        store.part_bytes = 1 << 20
        return CheckedDriver(AzureBlobDriver(store, self._prefix))

    async def reopened(self, driver: StorageDriver) -> StorageDriver:
        return self._make()
