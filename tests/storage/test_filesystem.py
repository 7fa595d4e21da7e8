"""The filesystem driver: the shared conformance suite, plus what only a local disk can show."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from registry.storage.base import InvalidPath, PathNotFound, StorageDriver, StorageError
from registry.storage.drivers import filesystem
from registry.storage.drivers.filesystem import FilesystemDriver
from registry.storage.testing import MiB, Scope, StorageDriverSuite, payload, read_all


def _on_disk(root: Path) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(parent, name), root)
        for parent, dirs, files in os.walk(root)
        for name in dirs + files
    )


class TestFilesystemDriver(StorageDriverSuite):
    @pytest.fixture
    def driver(self, tmp_path: Path) -> Iterator[FilesystemDriver]:
        root = tmp_path / "root"
        yield FilesystemDriver(root)
        # Runs after the suite's own teardown: nothing at all may remain on disk, not even
        # the hidden temporary files that list() does not show.
        assert root.is_dir(), "the root itself must never be removed"
        assert _on_disk(root) == [], "files or directories left on disk"

    async def reopened(self, driver: StorageDriver) -> StorageDriver:
        assert isinstance(driver, FilesystemDriver)
        return FilesystemDriver(driver.root)

    # ------------------------------------------------------------------ confinement
    async def test_symlinks_out_of_root_are_refused(
        self, driver: FilesystemDriver, scope: Scope, tmp_path: Path
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret").write_bytes(b"secret")
        await driver.put_content(scope.path("file"), b"inside")
        base = Path(driver.root) / scope.prefix[1:]
        (base / "dirlink").symlink_to(outside)
        (base / "filelink").symlink_to(outside / "secret")
        try:
            for bad in ["dirlink/secret", "dirlink", "filelink", "dirlink/new/file"]:
                await self._assert_refused(driver, f"{scope.prefix}/{bad}")
        finally:
            (base / "dirlink").unlink()
            (base / "filelink").unlink()
        assert _on_disk(outside) == ["secret"]
        assert (outside / "secret").read_bytes() == b"secret"

    @staticmethod
    async def _assert_refused(driver: FilesystemDriver, bad: str) -> None:
        calls: list[Callable[[], Any]] = [
            lambda: driver.stat(bad),
            lambda: driver.get_content(bad),
            lambda: driver.put_content(bad, b"overwritten"),
            lambda: read_all(driver.reader(bad)),
            lambda: driver.writer(bad),
            lambda: driver.writer(bad, append=True),
            lambda: driver.delete(bad),
            lambda: driver.list(bad),
        ]
        for call in calls:
            with pytest.raises(InvalidPath, match="outside the storage root"):
                await call()
        with pytest.raises(InvalidPath):
            driver.local_file(bad)

    async def test_a_symlink_planted_where_a_path_was_used_before_is_refused(
        self, driver: FilesystemDriver, scope: Scope, tmp_path: Path
    ) -> None:
        """The driver remembers directories it found inside the root: not ones that did not
        exist yet, nor ones it removed since."""
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        base = Path(driver.root) / scope.prefix[1:]
        with pytest.raises(PathNotFound):
            await driver.stat(f"{scope.prefix}/n1/n2/file")  # n1, n2 not there yet
        await driver.put_content(scope.path("d1", "d2", "file"), b"inside")
        await driver.delete(scope.path("d1"))  # the driver removes d1 (and d2) itself
        base.mkdir(parents=True, exist_ok=True)  # (and the emptied folders above them)
        for name in ("n1", "d1"):
            (base / name).symlink_to(outside)
        try:
            for bad in (f"{scope.prefix}/n1/n2/file", f"{scope.prefix}/d1/d2/file"):
                with pytest.raises(InvalidPath, match="outside the storage root"):
                    await driver.put_content(bad, b"escaped")
        finally:
            (base / "n1").unlink()
            (base / "d1").unlink()
        assert _on_disk(outside) == []

    async def test_symlink_inside_root_is_followed(
        self, driver: FilesystemDriver, scope: Scope
    ) -> None:
        await driver.put_content(scope.path("real", "file"), b"data")
        (Path(driver.root) / scope.prefix[1:] / "alias").symlink_to("real")
        scope.named.add(f"{scope.prefix}/alias/file")  # the walk sees it twice
        assert await driver.get_content(f"{scope.prefix}/alias/file") == b"data"

    async def test_root_may_be_a_symlink(self, tmp_path: Path) -> None:
        (tmp_path / "real").mkdir()
        (tmp_path / "link").symlink_to(tmp_path / "real")
        driver = FilesystemDriver(tmp_path / "link")
        await driver.put_content("/a/b", b"data")
        assert driver.local_file("/a/b") == str(tmp_path / "real" / "a" / "b")
        assert await driver.get_content("/a/b") == b"data"

    async def test_local_file_is_inside_root(self, driver: FilesystemDriver, scope: Scope) -> None:
        path = scope.path("blob", "data")
        await driver.put_content(path, b"bytes")
        local = driver.local_file(path)
        assert local == os.path.join(driver.root, scope.prefix[1:], "blob", "data")
        assert await anyio.Path(local).read_bytes() == b"bytes"
        assert driver.local_file(f"{scope.prefix}/blob") is None  # a directory
        assert driver.local_file(scope.path("missing")) is None
        for bad in ["/../etc/passwd", "/a/../../x", "relative"]:
            with pytest.raises(InvalidPath):
                driver.local_file(bad)

    # ------------------------------------------------------------------ durability, errors
    async def test_fsyncs(
        self, driver: FilesystemDriver, scope: Scope, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        synced: list[str] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        monkeypatch.setattr(filesystem.os, "fsync", fsync)
        directory = os.path.join(driver.root, scope.prefix[1:], "d")
        await driver.put_content(scope.path("d", "put"), b"x")
        assert synced[-1] == directory and "~tmp-" in synced[-2]
        writer = await driver.writer(path := scope.path("d", "written"))
        await writer.write(b"y")
        await writer.commit()
        assert synced[-2:] == [os.path.join(directory, "written"), directory]
        await driver.move(path, scope.path("e", "moved"))
        assert synced[-1] == os.path.join(driver.root, scope.prefix[1:], "e")

    async def test_failed_put_keeps_old_content(
        self, driver: FilesystemDriver, scope: Scope, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = scope.path("file")
        await driver.put_content(path, b"old")

        def full_disk(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(filesystem.os, "fsync", full_disk)
        with pytest.raises(StorageError, match="No space left") as caught:
            await driver.put_content(path, b"new")
        assert caught.value.path == path and not isinstance(caught.value, OSError)
        assert await driver.get_content(path) == b"old"
        assert _on_disk(Path(driver.root) / scope.prefix[1:]) == ["file"]  # no temp file

    async def test_failed_write_ends_writer(
        self, driver: FilesystemDriver, scope: Scope, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        writer = await driver.writer(path := scope.path("data"))

        def full_disk(fd: int, buffers: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(filesystem.os, "writev", full_disk)
        with pytest.raises(StorageError, match="No space left"):
            await writer.write(payload(2 * MiB))
        with pytest.raises(StorageError, match="failed"):
            await writer.write(b"more")
        await writer.close()  # nothing to do, and no error
        await writer.cancel()  # still removes what was there
        assert driver.local_file(path) is None

    # ------------------------------------------------------------------ layout
    async def test_small_writes_stay_on_the_event_loop(
        self, driver: FilesystemDriver, scope: Scope, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        hops = 0
        real_run_sync = anyio.to_thread.run_sync

        async def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal hops
            hops += 1
            return await real_run_sync(*args, **kwargs)

        writer = await driver.writer(path := scope.path("data"))
        monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
        for _ in range(32):
            await writer.write(b"z" * (64 * 1024))
        assert hops == 1, "one thread hop per MiB, not per chunk"
        await writer.commit()
        assert (await driver.stat(path)).size_bytes == 2 * MiB

    async def test_list_hides_temporary_files(self, driver: FilesystemDriver, scope: Scope) -> None:
        await driver.put_content(path := scope.path("dir", "file"), b"x")
        stray = Path(driver.root) / scope.prefix[1:] / "dir" / "~tmp-0123abcd"
        stray.write_bytes(b"left by a crash")
        try:
            assert await driver.list(f"{scope.prefix}/dir") == [path]
        finally:
            stray.unlink()

    async def test_delete_keeps_root_and_nonempty_parents(
        self, driver: FilesystemDriver, scope: Scope
    ) -> None:
        await driver.put_content(keep := scope.path("a", "keep"), b"k")
        await driver.put_content(gone := scope.path("a", "b", "c", "gone"), b"g")
        await driver.delete(gone)
        assert _on_disk(Path(driver.root) / scope.prefix[1:]) == ["a", "a/keep"]
        await driver.delete(keep)
        assert _on_disk(Path(driver.root)) == []
        assert await anyio.Path(driver.root).is_dir()
