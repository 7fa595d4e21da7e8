"""The local-filesystem storage driver: storage paths are files under one root directory.

Storage path ``/a/b/c`` is the file ``<root>/a/b/c``. Every method checks the path with
:func:`~registry.storage.base.check_path`, then checks that the path, with symlinks resolved,
still lies under the root — nothing outside the root is ever read, written or returned.

How each promise of the contract is kept here:

* ``put_content``: write a temporary file in the same directory, fsync it, ``os.replace`` it over
  the target, fsync the directory. Temporary names start with ``~``, a character no storage path
  may contain, so they never collide with stored paths and :meth:`FilesystemDriver.list` hides
  them (a crash can leave one behind; it is never visible through the driver).
* ``writer``: small writes are copied into a 1 MiB buffer on the event loop; a write that does
  not fit goes, together with the buffer, to a worker thread in one ``writev``. Measured on a
  busy two-core machine, 1 GiB in 64 KiB chunks: ~780 MiB/s accepted (median; 0.6-1.2 GiB/s),
  against ~220 MiB/s and five times the CPU for one thread hop per chunk. Plain ``os.write`` on
  the event loop peaks ~2x higher but stalls every task whenever the kernel throttles dirty
  pages (single 64 KiB writes took up to 13 ms), so uploads pay one hop per MiB instead.
* ``move``: ``os.replace`` (atomic on one filesystem), then fsync of the destination directory.
* Directories made on the way (by ``put_content``, ``writer`` or ``move``) have their parent
  fsynced as they are made, so a new file's whole path survives a power cut, not only its own
  directory entry.
* ``delete`` and ``move`` remove directories they leave empty, up to (not including) the root,
  as object stores have no empty directories. A concurrent create retries if its freshly made
  parent directory is removed underneath it.

OS errors are translated once, in :func:`_translated`: ``FileNotFoundError`` becomes
:class:`PathNotFound`; when reading, so does finding a file where a directory is expected or the
reverse; everything else is a :class:`StorageError` naming the path.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import os
import secrets
import shutil
import stat
import weakref
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from registry.storage.base import (
    DriverUnavailable,
    FileInfo,
    FileWriter,
    InvalidOffset,
    InvalidPath,
    PathNotFound,
    StorageDriver,
    StorageError,
    check_path,
)

if TYPE_CHECKING:
    from registry.storage.factory import DriverConfig

__all__ = ["CHUNK_BYTES", "WRITE_BUFFER_BYTES", "FilesystemDriver", "FilesystemWriter"]

NAME = "filesystem"
CHUNK_BYTES = 1 << 20  # largest chunk a reader yields
WRITE_BUFFER_BYTES = 1 << 20  # writes are gathered up to this size before a thread hop
_TEMP_PREFIX = "~tmp-"  # "~" is not allowed in storage paths: no collision, hidden by list()
_CREATE_ATTEMPTS = 5  # retries when a concurrent delete prunes a parent we just created


@contextlib.contextmanager
def _translated(path: str, *, reading: bool = False) -> Iterator[None]:
    """Map ``OSError`` to the storage error tree; the one place that does."""
    try:
        yield
    except FileNotFoundError as err:
        raise PathNotFound("nothing is stored at this path", driver=NAME, path=path) from err
    except (NotADirectoryError, IsADirectoryError) as err:
        if reading:
            raise PathNotFound("no such file or directory", driver=NAME, path=path) from err
        raise StorageError(f"{err.strerror}", driver=NAME, path=path) from err
    except OSError as err:
        raise StorageError(f"{err.strerror or err}", driver=NAME, path=path) from err


def _writev_all(fd: int, views: list[memoryview]) -> None:
    """Write every byte of ``views``, resuming after partial writes."""
    pending = [v for v in views if v.nbytes]
    while pending:
        written = os.writev(fd, pending)
        while pending and written >= pending[0].nbytes:
            written -= pending.pop(0).nbytes
        if pending and written:
            pending[0] = pending[0][written:]


_INSIDE_CACHE_SIZE = 65_536


def _kind(path: str) -> str:
    """``dir`` (a real directory), ``missing`` or ``other`` (a symlink, a file…)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "missing"
    return "dir" if stat.S_ISDIR(mode) else "other"


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_directories(directory: str) -> None:
    """Create ``directory`` and its missing ancestors, fsyncing the parent of each one made: a
    file later fsynced below a new directory must not lose its path to a power cut."""
    missing: list[str] = []
    while not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for new in reversed(missing):
        try:
            os.mkdir(new)
        except FileExistsError:
            continue  # made meanwhile (or a file: the next mkdir, or the open, says so)
        _fsync_dir(os.path.dirname(new))


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


class FilesystemDriver(StorageDriver):
    """Stores files under ``root`` (created if missing)."""

    name = NAME

    def __init__(self, root: str | os.PathLike[str]) -> None:
        os.makedirs(root, exist_ok=True)
        self.root = os.path.realpath(root)
        self._root_prefix = os.path.join(self.root, "")
        self._inside = {self.root}  # directories known to resolve inside the root

    def __repr__(self) -> str:
        return f"FilesystemDriver({self.root!r})"

    @classmethod
    def from_config(cls, config: DriverConfig) -> FilesystemDriver:
        """The driver over ``config.root`` (created if missing)."""
        if not config.root:
            raise DriverUnavailable(
                "the filesystem driver needs a root directory: set SEAWALL_STORAGE__ROOT",
                driver=NAME,
            )
        return cls(config.root)

    # ------------------------------------------------------------------ paths
    def _resolve(self, path: str) -> str:
        """The OS path of ``path``. Blocking: may stat its components.

        Real directories found to resolve inside the root are remembered (resolving in full
        stats every component of the path, the root's own included): a path under a known
        directory, or under new ones (real or not there yet) up to three levels below a known
        one, costs an ``lstat`` or two, and its last component is resolved in full if it is a
        symlink. Directories this driver removes are forgotten. A remembered directory that
        someone else replaces by a symlink is not noticed: whoever can do that can write the
        storage anyway.

        :raises InvalidPath: when the path is malformed or resolves outside the root
        """
        full = os.path.join(self.root, check_path(path)[1:])
        parent = os.path.dirname(full)
        if not self._dir_inside(parent) or (
            os.path.islink(full) and not self._is_inside(os.path.realpath(full))
        ):
            raise InvalidPath("path resolves outside the storage root", driver=NAME, path=path)
        return full

    def _dir_inside(self, directory: str) -> bool:
        """Whether ``directory`` resolves inside the root: it, or an ancestor a few levels up
        with no symlink between them, is known to; else resolved in full."""
        walked: list[str] = []
        known = directory
        while known not in self._inside and len(walked) < 3:
            walked.append(known)
            known = os.path.dirname(known)
        if not walked:
            return True
        kinds = [_kind(d) for d in walked]
        if known in self._inside and all(k != "other" for k in kinds):
            inside = True  # real directories (or none yet) below a known one
        else:
            inside = self._is_inside(os.path.realpath(directory))
        if inside:
            if len(self._inside) >= _INSIDE_CACHE_SIZE:
                self._inside = {self.root}
            self._inside.update(d for d, k in zip(walked, kinds, strict=True) if k == "dir")
        return inside

    def _forget_inside(self, directory: str) -> None:
        """``directory`` (and what is below it) was removed: check it afresh if it returns."""
        below = os.path.join(directory, "")
        self._inside = {d for d in self._inside if d != directory and not d.startswith(below)}

    def _is_inside(self, real: str) -> bool:
        return real == self.root or real.startswith(self._root_prefix)

    def _prune(self, directory: str) -> None:
        """Remove ``directory`` and its ancestors while they are empty, stopping at the root."""
        while directory.startswith(self._root_prefix):
            try:
                os.rmdir(directory)
            except OSError:
                return
            self._inside.discard(directory)
            directory = os.path.dirname(directory)

    @staticmethod
    def _open_creating(full: str, flags: int) -> int:
        """Open ``full`` with ``O_CREAT``, making parent directories as needed."""
        for attempt in itertools.count():
            try:
                return os.open(full, flags | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                if attempt >= _CREATE_ATTEMPTS:
                    raise
            with contextlib.suppress(FileNotFoundError):
                _make_directories(os.path.dirname(full))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ small files
    async def stat(self, path: str) -> FileInfo:
        check_path(path)
        return await anyio.to_thread.run_sync(self._stat, path)

    def _stat(self, path: str) -> FileInfo:
        full = self._resolve(path)
        with _translated(path, reading=True):
            st = os.stat(full)
        is_dir = stat.S_ISDIR(st.st_mode)
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        return FileInfo(path, 0 if is_dir else st.st_size, modified, is_dir)

    async def get_content(self, path: str) -> bytes:
        check_path(path)
        return await anyio.to_thread.run_sync(self._get_content, path)

    def _get_content(self, path: str) -> bytes:
        full = self._resolve(path)
        with _translated(path, reading=True), open(full, "rb") as f:
            return f.read()

    async def put_content(self, path: str, data: bytes) -> None:
        check_path(path)
        await anyio.to_thread.run_sync(self._put_content, path, data)

    def _put_content(self, path: str, data: bytes) -> None:
        full = self._resolve(path)
        directory = os.path.dirname(full)
        temp = os.path.join(directory, _TEMP_PREFIX + secrets.token_hex(8))
        with _translated(path):
            fd = self._open_creating(temp, os.O_WRONLY | os.O_EXCL)
            try:
                try:
                    _writev_all(fd, [memoryview(data)])
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(temp, full)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temp)
                raise
            _fsync_dir(directory)

    # ------------------------------------------------------------------ streams
    def reader(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        check_path(path)
        if offset < 0 or (length is not None and length < 0):
            raise InvalidOffset(
                f"negative offset {offset} or length {length}", driver=NAME, path=path
            )
        return self._read(path, offset, length)

    async def _read(self, path: str, offset: int, length: int | None) -> AsyncIterator[bytes]:
        fd, end = await anyio.to_thread.run_sync(self._open_for_read, path, offset, length)
        try:
            position = offset
            while position < end:
                with _translated(path, reading=True):
                    chunk = await anyio.to_thread.run_sync(
                        os.pread, fd, min(CHUNK_BYTES, end - position), position
                    )
                if not chunk:  # truncated underneath us: stop at what exists
                    return
                position += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    def _open_for_read(self, path: str, offset: int, length: int | None) -> tuple[int, int]:
        """Open for reading; return the fd and the offset to stop at."""
        full = self._resolve(path)
        with _translated(path, reading=True):
            fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
            try:
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    raise IsADirectoryError(21, "is a directory")
                if offset > st.st_size:
                    raise InvalidOffset(
                        f"offset {offset} is past the end ({st.st_size} bytes)",
                        driver=NAME,
                        path=path,
                    )
                if hasattr(os, "posix_fadvise"):
                    os.posix_fadvise(fd, offset, 0, os.POSIX_FADV_SEQUENTIAL)
            except BaseException:
                os.close(fd)
                raise
        end = st.st_size if length is None else min(st.st_size, offset + length)
        return fd, end

    async def writer(self, path: str, *, append: bool = False) -> FileWriter:
        """See the contract; ``append=True`` on a missing path raises :class:`PathNotFound`."""
        check_path(path)
        full, fd, size = await anyio.to_thread.run_sync(self._open_for_write, path, append)
        return FilesystemWriter(self, path, full, fd, size)

    def _open_for_write(self, path: str, append: bool) -> tuple[str, int, int]:
        full = self._resolve(path)
        with _translated(path):
            if not append:
                return full, self._open_creating(full, os.O_WRONLY | os.O_TRUNC), 0
            fd = os.open(full, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                return full, fd, os.fstat(fd).st_size
            except BaseException:
                os.close(fd)
                raise

    # ------------------------------------------------------------------ tree
    async def move(self, source: str, dest: str) -> None:
        check_path(source)
        check_path(dest)
        await anyio.to_thread.run_sync(self._move, source, dest)

    def _move(self, source: str, dest: str) -> None:
        src, dst = self._resolve(source), self._resolve(dest)
        with _translated(dest):
            for attempt in itertools.count():
                try:
                    os.replace(src, dst)
                    break
                except FileNotFoundError:
                    if not os.path.lexists(src):
                        raise PathNotFound("nothing to move", driver=NAME, path=source) from None
                    if attempt >= _CREATE_ATTEMPTS:
                        raise
                with contextlib.suppress(FileNotFoundError):
                    _make_directories(os.path.dirname(dst))
            _fsync_dir(os.path.dirname(dst))
        self._prune(os.path.dirname(src))

    async def delete(self, path: str) -> None:
        check_path(path)
        await anyio.to_thread.run_sync(self._delete, path)

    def _delete(self, path: str) -> None:
        full = self._resolve(path)
        with _translated(path, reading=True):
            if stat.S_ISDIR(os.lstat(full).st_mode):
                shutil.rmtree(full)
                self._forget_inside(full)
            else:
                os.unlink(full)
        self._prune(os.path.dirname(full))

    async def list(self, path: str) -> list[str]:
        """Children whose names are valid path components; others (temporary files) are hidden.

        :raises PathNotFound: when ``path`` is missing or is a file
        """
        check_path(path)
        return await anyio.to_thread.run_sync(self._list, path)

    def _list(self, path: str) -> builtins.list[str]:
        full = self._resolve(path)
        with _translated(path, reading=True), os.scandir(full) as entries:
            children = [f"{path}/{entry.name}" for entry in entries]
        return sorted(child for child in children if _is_valid(child))

    def local_file(self, path: str) -> str | None:
        """The OS path of the file at ``path`` (inside the root), or None if there is no file.

        Blocking, but only a few ``lstat`` calls.
        """
        full = self._resolve(path)
        return full if os.path.isfile(full) else None


def _is_valid(path: str) -> bool:
    try:
        check_path(path)
    except InvalidPath:
        return False
    return True


class FilesystemWriter(FileWriter):
    """Appends to an open file; see the module docstring for the buffering.

    After the writer ends (commit, close or cancel), ``write`` and ``commit`` raise
    :class:`StorageError` and ``close``/``cancel`` do nothing. After an I/O error the file
    descriptor is released and only ``cancel`` still acts (it removes the file).
    ``close`` and ``cancel`` are shielded from cancellation so that cleanup always releases the
    file descriptor.
    """

    def __init__(self, driver: FilesystemDriver, path: str, full: str, fd: int, size: int) -> None:
        self.size_bytes = size
        self._driver, self._path, self._full, self._fd = driver, path, full, fd
        self._buffer: memoryview | None = None  # allocated on the first small write
        self._fill = 0
        self._ended: str | None = None  # "committed", "closed", "cancelled" or "failed"
        self._finalizer = weakref.finalize(self, _close_quietly, fd)  # a writer never ended

    def __repr__(self) -> str:
        return f"FilesystemWriter({self._path!r}, size_bytes={self.size_bytes})"

    def _check_open(self) -> None:
        if self._ended is not None:
            raise StorageError(
                f"writer already {self._ended}; open a new writer", driver=NAME, path=self._path
            )

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        self._check_open()
        view = memoryview(data).cast("B")
        size = view.nbytes
        if self._buffer is None:
            self._buffer = memoryview(bytearray(WRITE_BUFFER_BYTES))
        if self._fill + size <= WRITE_BUFFER_BYTES:  # hot path: a copy, no thread hop
            self._buffer[self._fill : self._fill + size] = view
            self._fill += size
        else:
            await anyio.to_thread.run_sync(self._flush, view)
        self.size_bytes += size
        return size

    def _flush(self, extra: memoryview | None = None) -> None:
        """Write the buffer (and ``extra``) to the file. Runs in a worker thread."""
        views = [self._buffer[: self._fill]] if self._buffer is not None else []
        try:
            with _translated(self._path):
                _writev_all(self._fd, [*views, extra] if extra is not None else views)
        except StorageError:
            self._release("failed")
            raise
        self._fill = 0

    def _release(self, ended: str) -> None:
        """End the writer and close its file descriptor (once)."""
        if self._ended in (None, "failed") and self._finalizer.detach() is not None:
            _close_quietly(self._fd)
        self._ended, self._buffer = ended, None

    async def commit(self) -> None:
        self._check_open()
        await anyio.to_thread.run_sync(self._commit)

    def _commit(self) -> None:
        self._flush()
        try:
            with _translated(self._path):
                os.fsync(self._fd)
                _fsync_dir(os.path.dirname(self._full))
        except StorageError:
            self._release("failed")
            raise
        self._release("committed")

    async def close(self) -> None:
        if self._ended is not None:
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._close)

    def _close(self) -> None:
        self._flush()
        self._release("closed")

    async def cancel(self) -> None:
        if self._ended not in (None, "failed"):
            return
        self._release("cancelled")
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self._remove)

    def _remove(self) -> None:
        with _translated(self._path), contextlib.suppress(FileNotFoundError):
            os.unlink(self._full)
        self._driver._prune(os.path.dirname(self._full))
