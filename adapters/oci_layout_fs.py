"""File operations for OCI image layouts that never follow a symbolic link below the root and
never leave a partial file where a reader looks.

Blocking calls: run them in a worker thread. Directories are walked component by component
with ``openat(O_NOFOLLOW | O_DIRECTORY)``, so a symlink anywhere below the root (to ``/etc``, to
another disk) is refused (``ELOOP``), not followed, and a path cannot change under a walk. Files
are written to a temporary name in the same directory (dot-prefixed: never a repository name),
fsynced and renamed into place; the directory is fsynced after. Files are opened
``O_NONBLOCK`` and checked with ``fstat`` before a byte is read: a named pipe, device or socket
where a layout file belongs is refused (:class:`NotRegularFile`), never waited on. Raw
:class:`OSError`\\ s leave this module: the client translates them once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import uuid
from collections.abc import Iterator, Sequence

__all__ = [
    "DIR_FLAGS",
    "DIR_MODE",
    "FILE_FLAGS",
    "FILE_MODE",
    "FileTooLarge",
    "NotRegularFile",
    "StatKey",
    "file_key",
    "fsync_dir",
    "locked",
    "open_dir",
    "open_regular",
    "open_root",
    "read_fd",
    "read_file",
    "regular_size",
    "stat_key",
    "temp_name",
    "write_atomic",
]

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: ``O_NONBLOCK``: opening a named pipe must not wait for a writer (it is refused after
#: ``fstat``; regular files ignore the flag). ``O_NOCTTY``: a terminal never becomes ours.
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
DIR_MODE = 0o755
FILE_MODE = 0o644

#: ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``: a file replaced by a rename or
#: rewritten in place has another key
StatKey = tuple[int, int, int, int, int]


class FileTooLarge(OSError):
    """A file is larger than the caller reads whole."""


class NotRegularFile(OSError):
    """A named pipe, device, socket or directory where a regular file belongs."""

    def __init__(self, name: str, mode: int | None) -> None:
        super().__init__(errno.EINVAL, f"is {_kind(mode)}, not a regular file", name)


def _kind(mode: int | None) -> str:
    if mode is None:
        return "a socket or device"
    for test, kind in (
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a special file"


def open_root(path: str) -> int:
    """The root directory (the root itself may be a symlink, e.g. a mount point's alias)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_dir(parent_fd: int, parts: Sequence[str], *, create: bool = False) -> int:
    """The directory ``parent/parts[0]/parts[1]/…`` (created with ``create``, each new level
    fsynced into its parent). Raises ``ELOOP`` at a symlink, ``ENOTDIR`` at a file."""
    fd = os.dup(parent_fd)
    try:
        for i, part in enumerate(parts):
            try:
                child = _open_child(fd, part, create)
            except (NotADirectoryError, FileNotFoundError) as e:
                e.filename = "/".join(parts[: i + 1])
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _open_child(fd: int, name: str, create: bool) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as e:
        # O_NOFOLLOW | O_DIRECTORY on a symlink fails with ENOTDIR (or ELOOP): say which
        if e.errno in (errno.ENOTDIR, errno.ELOOP) and _is_symlink(fd, name):
            raise OSError(errno.ELOOP, "is a symbolic link (not followed)", name) from None
        raise
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, DIR_MODE, dir_fd=fd)
        os.fsync(fd)
    return os.open(name, DIR_FLAGS, dir_fd=fd)


def _is_symlink(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def fsync_dir(fd: int) -> None:
    os.fsync(fd)


def temp_name(kind: str) -> str:
    """A fresh dot-prefixed name: never a repository component, never a blob."""
    return f".seawall-{uuid.uuid4().hex}.{kind}.tmp"


def regular_size(dir_fd: int, name: str) -> int | None:
    """The size of the regular file ``name``, or None if there is none. A symlink or anything
    else there raises (``ELOOP``/``EISDIR``): it is never taken for the file."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise OSError(errno.ELOOP, "is a symbolic link (not followed)", name)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(name, st.st_mode)
    return st.st_size


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_fd(fd: int, size_bytes: int) -> bytes:
    """Exactly the first ``size_bytes`` of ``fd`` (fewer only if the file is shorter)."""
    parts: list[bytes] = []
    got = 0
    while got < size_bytes:
        chunk = os.pread(fd, min(size_bytes - got, 1 << 20), got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def open_regular(dir_fd: int, name: str) -> tuple[int, os.stat_result]:
    """An fd of the regular file ``name`` (not through a symlink) and its ``fstat``. Never
    blocks on what is not a regular file: the open does not wait (``O_NONBLOCK``), and the
    ``fstat`` of what was opened decides (no window between a check and the open).

    :raises NotRegularFile: a named pipe, device, socket or directory is there.
    """
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ENXIO:  # a socket (or a device without its driver)
            raise NotRegularFile(name, None) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(name, st.st_mode)
        os.set_blocking(fd, True)  # a regular file: reads as usual
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def read_file(dir_fd: int, name: str, max_bytes: int) -> tuple[bytes, StatKey]:
    """The whole regular file ``name`` (not through a symlink) and its stat key.

    :raises FileTooLarge: it is larger than ``max_bytes``.
    :raises NotRegularFile: it is not a regular file.
    """
    fd, st = open_regular(dir_fd, name)
    try:
        if st.st_size > max_bytes:
            raise FileTooLarge(errno.EFBIG, f"is larger than {max_bytes} bytes", name)
        return read_fd(fd, st.st_size), stat_key(st)
    finally:
        os.close(fd)


def file_key(dir_fd: int, name: str) -> StatKey | None:
    """The stat key of ``name`` (not following a symlink), None if absent."""
    try:
        return stat_key(os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    except FileNotFoundError:
        return None


def write_atomic(dir_fd: int, name: str, data: bytes, *, exclusive: bool = False) -> bool:
    """Make ``name`` hold ``data`` all at once (a reader sees the old file or the new one).
    ``exclusive``: only if ``name`` does not exist yet (then False, nothing changed)."""
    tmp = temp_name("write")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE, dir_fd=dir_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if exclusive:
            try:
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                return False
        else:
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        os.fsync(dir_fd)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)


@contextlib.contextmanager
def locked(dir_fd: int) -> Iterator[None]:
    """An exclusive ``flock`` on the directory: excludes every other writer that takes it (other
    Seawall processes, other adapters on the same layout). Blocks: call in a worker thread."""
    fcntl.flock(dir_fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(dir_fd, fcntl.LOCK_UN)
