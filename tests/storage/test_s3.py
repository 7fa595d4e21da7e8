"""The S3 driver against moto server: the shared conformance suite, through the wrapper."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from registry.storage.base import StorageDriver
from registry.storage.checked import CheckedDriver
from registry.storage.drivers.s3 import MIN_PART_BYTES, S3Driver, S3Store, make_client
from registry.storage.testing import StorageDriverSuite
from tests.support.moto import MotoServer


@pytest.fixture(scope="session")
def s3_client(moto_s3: MotoServer) -> Any:
    """One boto3 client for the session (making one costs ~0.4 s)."""
    return make_client(**moto_s3.client_kwargs())


class TestS3Driver(StorageDriverSuite):
    """Parts of S3's least size (5 MiB), so the suite's larger writes go multipart."""

    @pytest.fixture
    async def driver(self, s3_client: Any) -> AsyncIterator[StorageDriver]:
        self._client, self._prefix = s3_client, f"p-{uuid.uuid4().hex[:8]}"
        driver = self._make()
        yield driver
        await driver.close()

    def _make(self) -> StorageDriver:
        store = S3Store(self._client, "suite", part_bytes=MIN_PART_BYTES, owns_client=False)
        return CheckedDriver(S3Driver(store, self._prefix))

    async def reopened(self, driver: StorageDriver) -> StorageDriver:
        return self._make()
