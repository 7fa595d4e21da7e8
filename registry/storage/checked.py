"""The one wrapper every driver runs inside (distribution's ``driver/base``): what is the same for
all backends is done here, once, so drivers hold only what differs.

* **Paths and offsets** are checked before the inner driver is touched: :func:`check_path` on every
  path (a reader's at the call), negative offsets and lengths refused, ``url_for``'s method and
  expiry checked.
* **Errors** leave as the storage tree only: a :class:`StorageError` passes through; any other
  exception is offered to the driver's :meth:`~StorageDriver.map_error` (botocore, azure, google
  → ``PathNotFound``, …) and otherwise becomes a plain :class:`StorageError` naming the exception.
  Cancellation and ``BaseException`` pass untouched.
* **Metrics**: calls, failures, seconds and bytes per operation (:mod:`registry.storage.metrics`).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from registry.storage.base import (
    DEFAULT_URL_EXPIRY,
    FileInfo,
    FileWriter,
    InvalidOffset,
    StorageDriver,
    StorageError,
    check_path,
)
from registry.storage.metrics import StorageMetrics

__all__ = ["CheckedDriver", "CheckedWriter", "translate"]

T = TypeVar("T")
_URL_METHODS = frozenset({"GET", "HEAD"})


def translate(driver: StorageDriver, error: Exception, path: str) -> StorageError:
    """``error`` as a :class:`StorageError` (the driver's own mapping first)."""
    if isinstance(error, StorageError):
        return error
    mapped = driver.map_error(error, path)
    if mapped is not None:
        return mapped
    detail = str(error) or type(error).__name__
    return StorageError(f"{type(error).__name__}: {detail}", driver=driver.name, path=path)


class CheckedDriver(StorageDriver):
    """Wraps ``inner``; see the module docstring. ``inner`` is reachable for driver-specific
    tests only; the registry talks to the wrapper."""

    def __init__(self, inner: StorageDriver, metrics: StorageMetrics | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.metrics = metrics if metrics is not None else StorageMetrics()

    def __repr__(self) -> str:
        return f"CheckedDriver({self.inner!r})"

    async def _call(self, op: str, path: str, call: Callable[[], Awaitable[T]], size: int = 0) -> T:
        started = self.metrics.started()
        try:
            result = await call()
        except Exception as e:
            self.metrics.record(op, started, error=True)
            raise translate(self.inner, e, path) from e
        self.metrics.record(op, started, bytes_moved=size)
        return result

    async def stat(self, path: str) -> FileInfo:
        check_path(path)
        return await self._call("stat", path, lambda: self.inner.stat(path))

    async def get_content(self, path: str) -> bytes:
        check_path(path)
        data = await self._call("get_content", path, lambda: self.inner.get_content(path))
        self.metrics.add_bytes("get_content", len(data))
        return data

    async def put_content(self, path: str, data: bytes) -> None:
        check_path(path)
        await self._call("put_content", path, lambda: self.inner.put_content(path, data), len(data))

    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        check_path(path)
        if offset < 0 or (length is not None and length < 0):
            raise InvalidOffset(
                f"negative offset {offset} or length {length}", driver=self.name, path=path
            )
        return self._read(path, offset, length)

    async def _read(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        started = self.metrics.started()
        stream = self.inner.reader(path, offset, length)
        moved = 0
        try:
            async for chunk in stream:
                moved += len(chunk)
                yield chunk
        except Exception as e:
            self.metrics.record("reader", started, error=True, bytes_moved=moved)
            raise translate(self.inner, e, path) from e
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        self.metrics.record("reader", started, bytes_moved=moved)

    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        check_path(path)
        inner = await self._call("writer", path, lambda: self.inner.writer(path, append=append))
        return CheckedWriter(self, path, inner)

    async def move(self, source: str, dest: str) -> None:
        check_path(source)
        check_path(dest)
        await self._call("move", source, lambda: self.inner.move(source, dest))

    async def delete(self, path: str) -> None:
        check_path(path)
        await self._call("delete", path, lambda: self.inner.delete(path))

    async def list(self, path: str) -> builtins.list[str]:
        check_path(path)
        return await self._call("list", path, lambda: self.inner.list(path))

    def local_file(self, path: str) -> str | None:
        check_path(path)
        try:
            return self.inner.local_file(path)
        except Exception as e:
            raise translate(self.inner, e, path) from e

    async def url_for(
        self, path: str, method: str = "GET", expires: timedelta = DEFAULT_URL_EXPIRY
    ) -> str | None:
        check_path(path)
        if method not in _URL_METHODS:
            raise ValueError(f"url_for supports {sorted(_URL_METHODS)}, not {method!r}")
        if expires <= timedelta(0):
            raise ValueError(f"url_for needs a positive expiry, not {expires}")
        return await self._call("url_for", path, lambda: self.inner.url_for(path, method, expires))

    async def walk(self, path: str) -> AsyncIterator[FileInfo]:
        check_path(path)
        started = self.metrics.started()
        try:
            async for info in self.inner.walk(path):
                yield info
        except Exception as e:
            self.metrics.record("walk", started, error=True)
            raise translate(self.inner, e, path) from e
        self.metrics.record("walk", started)

    def map_error(self, error: Exception, path: str) -> StorageError | None:
        return translate(self.inner, error, path)

    async def close(self) -> None:
        await self.inner.close()


class CheckedWriter(FileWriter):
    """A driver's writer with errors translated and bytes counted."""

    def __init__(self, driver: CheckedDriver, path: str, inner: FileWriter) -> None:
        self._driver, self._path, self._inner = driver, path, inner
        self.size_bytes = inner.size_bytes

    async def _call(self, op: str, call: Callable[[], Awaitable[T]], size: int = 0) -> T:
        try:
            return await self._driver._call(f"writer.{op}", self._path, call, size)
        finally:
            self.size_bytes = self._inner.size_bytes

    def __repr__(self) -> str:
        return f"CheckedWriter({self._inner!r})"

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        size = memoryview(data).nbytes
        return await self._call("write", lambda: self._inner.write(data), size)

    async def commit(self) -> None:
        await self._call("commit", self._inner.commit)

    async def close(self) -> None:
        await self._call("close", self._inner.close)

    async def cancel(self) -> None:
        await self._call("cancel", self._inner.cancel)
