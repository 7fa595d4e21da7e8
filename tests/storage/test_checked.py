"""The wrapper every driver runs in: paths checked before the driver is touched, foreign
exceptions translated once, metrics counted."""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from registry.storage.base import (
    FileInfo,
    FileWriter,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
)
from registry.storage.checked import CheckedDriver
from registry.storage.metrics import StorageMetrics

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class SdkMissing(Exception):
    """What an SDK raises for a missing object."""


class Recording(StorageDriver):
    """Records what reaches it; raises SDK-style exceptions."""

    name = "recording"

    def __init__(self) -> None:
        self.calls: builtins.list[str] = []

    def map_error(self, error: Exception, path: str) -> StorageError | None:
        if isinstance(error, SdkMissing):
            return PathNotFound("gone", driver=self.name, path=path)
        return None

    async def stat(self, path: str) -> FileInfo:
        self.calls.append(f"stat {path}")
        raise SdkMissing(path)

    async def get_content(self, path: str) -> bytes:
        self.calls.append(f"get {path}")
        raise RuntimeError("socket closed")

    async def put_content(self, path: str, data: bytes) -> None:
        self.calls.append(f"put {path}")

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"de"
        raise SdkMissing("mid-stream")

    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        self.calls.append(f"reader {path}")
        return self._chunks()

    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        raise NotImplementedError

    async def move(self, source: str, dest: str) -> None:
        self.calls.append(f"move {source} {dest}")

    async def delete(self, path: str) -> None:
        self.calls.append(f"delete {path}")

    async def list(self, path: str) -> builtins.list[str]:
        return []


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.5  # every reading is half a second later
        return self.now


async def test_invalid_paths_never_reach_the_driver() -> None:
    inner = Recording()
    driver = CheckedDriver(inner)
    for call in (
        lambda: driver.stat("/a/../b"),
        lambda: driver.put_content("relative", b""),
        lambda: driver.move("/ok", "/a b"),
        lambda: driver.delete("/"),
        lambda: driver.url_for("/a\n"),
    ):
        with pytest.raises(InvalidPath):
            await call()
    with pytest.raises(InvalidPath):
        driver.reader("/x/")  # at the call, before any iteration
    with pytest.raises(InvalidOffset):
        driver.reader("/x", -1)
    with pytest.raises(ValueError, match="positive expiry"):
        await driver.url_for("/x", "GET", timedelta(0))
    with pytest.raises(ValueError, match="GET"):
        await driver.url_for("/x", "PUT")
    assert inner.calls == []


async def test_foreign_exceptions_are_translated_once() -> None:
    driver = CheckedDriver(Recording())
    with pytest.raises(PathNotFound, match="gone") as missing:
        await driver.stat("/a")
    assert isinstance(missing.value.__cause__, SdkMissing)
    with pytest.raises(StorageError, match="RuntimeError: socket closed") as other:
        await driver.get_content("/b")
    assert (other.value.driver, other.value.path) == ("recording", "/b")
    with pytest.raises(PathNotFound):
        async for _ in driver.reader("/c"):
            pass


async def test_metrics_count_calls_errors_time_and_bytes() -> None:
    metrics = StorageMetrics(clock=Clock())
    driver = CheckedDriver(Recording(), metrics)
    await driver.put_content("/a", b"12345")
    with pytest.raises(PathNotFound):
        await driver.stat("/a")
    with pytest.raises(PathNotFound):
        async for _ in driver.reader("/a"):
            pass
    stats = metrics.snapshot()
    assert (stats["put_content"].calls, stats["put_content"].bytes_total) == (1, 5)
    assert stats["put_content"].seconds_total == pytest.approx(0.5)
    assert (stats["stat"].calls, stats["stat"].errors) == (1, 1)
    assert (stats["reader"].errors, stats["reader"].bytes_total) == (1, 5)


async def test_default_walk_and_url_for(tmp_path: object) -> None:
    class Tree(Recording):
        files = {"/t/a": 1, "/t/d/b": 2}

        async def stat(self, path: str) -> FileInfo:
            now = datetime.now(UTC)
            if path in self.files:
                return FileInfo(path, self.files[path], now)
            if any(f.startswith(path + "/") for f in self.files):
                return FileInfo(path, 0, now, True)
            raise PathNotFound("no", path=path)

        async def list(self, path: str) -> builtins.list[str]:
            below = {path + "/" + f[len(path) + 1 :].split("/")[0] for f in self.files}
            return sorted(p for p in below if any(f.startswith(p) for f in self.files))

    driver = CheckedDriver(Tree())
    walked = {(i.path, i.size_bytes) async for i in driver.walk("/t")}
    assert walked == {("/t/a", 1), ("/t/d/b", 2)}
    assert await driver.url_for("/t/a") is None
