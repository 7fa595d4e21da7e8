"""OCI image layouts on disk, one per repository, under one root directory.

``ROOT/<repository>/`` is an image layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``):
the shape ``skopeo copy … oci:ROOT/team/app:1.0``, ``umoci … --image ROOT/team/app:1.0`` and
oras's OCI-layout targets use. Blocking calls: the client runs each in a worker thread.

Guarantees: a path is built only from a validated repository name and a parsed digest (no
``..``, nothing absolute, no component named like a layout's own files) and walked without
following symlinks (:mod:`adapters.oci_layout_fs`); a blob appears under its digest only once
its bytes hashed to it and reached the disk; ``index.json`` and ``oci-layout`` are replaced
whole. ``index.json`` is read once per change (cached by its stat key); manifest summaries are
cached by digest (content addressed: the same bytes everywhere). What is read is bounded: only
regular files (a named pipe or device is refused, never waited on), ``index.json`` up to
``max_index_bytes``, manifests up to ``max_manifest_bytes``, JSON at most
:data:`~adapters.oci_layout_index.MAX_JSON_DEPTH` levels deep.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Iterator
from typing import Literal

from adapters.oci.errors import NotFound, RequestRejected
from adapters.oci_layout_blobs import BlobWriter, check_digest
from adapters.oci_layout_fs import (
    FileTooLarge,
    NotRegularFile,
    StatKey,
    file_key,
    open_dir,
    open_regular,
    open_root,
    read_fd,
    read_file,
    regular_size,
    write_atomic,
)
from adapters.oci_layout_index import (
    BLOBS_DIR,
    INDEX_FILE,
    LAYOUT_FILE,
    LAYOUT_FILE_BYTES,
    RESERVED_NAMES,
    LayoutFormatError,
    LayoutIndex,
    ManifestSummary,
    check_layout_file,
    empty_index_bytes,
    summarize,
)
from registry.oci.digest import Digest
from registry.oci.reference import is_valid_name

__all__ = ["Layout", "LayoutStore", "LinkResult", "repository_parts"]

MiB = 1 << 20
MAX_WALK_DIRS = 100_000  # directories a catalog walk visits at most
MAX_LAYOUT_FILE_BYTES = 64 * 1024  # oci-layout: {"imageLayoutVersion": "1.0.0"}
_SUMMARY_CACHE_ENTRIES = 50_000
_SUMMARY_CACHE_BYTES = 64 * MiB
LinkResult = Literal["linked", "absent", "unlinkable"]


def repository_parts(repo: str) -> list[str]:
    """The path components of ``repo``.

    :raises RequestRejected: not a valid OCI repository name, or a component is a name the
        layout uses for itself (``blobs``, ``index.json``, ``oci-layout``).
    """
    if not is_valid_name(repo):
        raise RequestRejected(f"{repo[:300]!r} is not a valid repository name")
    parts = repo.split("/")
    reserved = RESERVED_NAMES.intersection(parts)
    if reserved:
        raise RequestRejected(
            f"repository {repo!r}: {sorted(reserved)[0]!r} is a name OCI image layouts use for "
            "their own files and cannot be a path component"
        )
    return parts


class LayoutStore:
    """The root directory and what is cached about its layouts."""

    def __init__(
        self, root: str, *, max_manifest_bytes: int = 8 * MiB, max_index_bytes: int = 8 * MiB
    ) -> None:
        self.root = root
        self.max_manifest_bytes = max_manifest_bytes
        #: parsing JSON takes up to ~30 times its size in memory: 8 MiB (some 40 000 tagged
        #: descriptors) is a few hundred MiB at worst
        self.max_index_bytes = max_index_bytes
        self._indexes: dict[str, tuple[StatKey, LayoutIndex]] = {}
        self._summaries: dict[str, ManifestSummary | None] = {}
        self._summary_bytes = 0

    def where(self, repo: str = "") -> str:
        return os.path.join(self.root, repo) if repo else self.root

    def _open_root(self) -> int:
        try:
            return open_root(self.root)
        except FileNotFoundError:
            raise NotFound(
                f"the layout root {self.root} does not exist: create the directory, or mount "
                "the drive that holds it",
                code="NAME_UNKNOWN",
            ) from None

    @contextlib.contextmanager
    def open(self, repo: str, *, create: bool = False) -> Iterator[Layout]:
        """The layout of ``repo``; with ``create`` it is made if missing (directories, then
        ``blobs/sha256``, an empty ``index.json`` and ``oci-layout`` last, each only if absent).

        :raises NotFound: (without ``create``) no such directory, or no ``oci-layout`` in it.
        """
        parts = repository_parts(repo)
        root_fd = self._open_root()
        try:
            fd = open_dir(root_fd, parts, create=create)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(
                f"repository {repo}: no OCI image layout at {self.where(repo)}",
                code="NAME_UNKNOWN",
            ) from None
        finally:
            os.close(root_fd)
        try:
            layout = Layout(self, repo, fd)
            layout.ensure() if create else layout.check()
            yield layout
        finally:
            os.close(fd)

    def forget(self) -> None:
        """Drop the caches (the next reads go to the files)."""
        self._indexes.clear()
        self._summaries.clear()
        self._summary_bytes = 0

    def cached_index(self, repo: str, key: StatKey) -> LayoutIndex | None:
        found = self._indexes.get(repo)
        return found[1] if found is not None and found[0] == key else None

    def remember_index(self, repo: str, key: StatKey, index: LayoutIndex) -> None:
        self._indexes[repo] = (key, index)

    def cached_summary(self, digest: Digest) -> tuple[bool, ManifestSummary | None]:
        key = str(digest)
        return (key in self._summaries, self._summaries.get(key))

    def remember_summary(self, digest: Digest, summary: ManifestSummary | None) -> None:
        cost = summary.cost_bytes if summary is not None else 100
        full = self._summary_bytes + cost > _SUMMARY_CACHE_BYTES
        if full or len(self._summaries) >= _SUMMARY_CACHE_ENTRIES:
            self._summaries.clear()
            self._summary_bytes = 0
        self._summaries[str(digest)] = summary
        self._summary_bytes += cost

    def catalog(self, prefix: str = "") -> list[str]:
        """Repositories under the root whose names start with ``prefix``: directories that hold
        an ``oci-layout`` file and whose paths are valid repository names. Never follows a
        symlink; skips dot-names, ``blobs`` and anything that cannot be a name component.

        :raises RequestRejected: more than :data:`MAX_WALK_DIRS` directories to look at.
        """
        start = prefix.split("/")[:-1]
        if any(not is_valid_name(p) or p in RESERVED_NAMES for p in start):
            return []
        root_fd = self._open_root()
        try:
            try:
                start_fd = open_dir(root_fd, start)
            except (FileNotFoundError, NotADirectoryError):
                return []
        finally:
            os.close(root_fd)
        return sorted(self._walk(start_fd, "/".join(start), prefix))

    def _walk(self, start_fd: int, start: str, prefix: str) -> list[str]:
        found: list[str] = []
        stack = [(start_fd, start)]
        visited = 0
        try:
            while stack:
                fd, rel = stack.pop()
                try:
                    visited += 1
                    if visited > MAX_WALK_DIRS:
                        raise RequestRejected(
                            f"more than {MAX_WALK_DIRS} directories under {self.root}: point "
                            "the endpoint at a directory that holds only image layouts"
                        )
                    if rel and rel.startswith(prefix) and _is_file(fd, LAYOUT_FILE):
                        found.append(rel)
                    self._push_children(fd, rel, prefix, stack)
                finally:
                    os.close(fd)
        finally:
            for fd, _ in stack:  # left by an error
                os.close(fd)
        return found

    @staticmethod
    def _push_children(fd: int, rel: str, prefix: str, stack: list[tuple[int, str]]) -> None:
        with os.scandir(fd) as entries:
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
        for name in names:
            child = f"{rel}/{name}" if rel else name
            if name in RESERVED_NAMES or not is_valid_name(child):
                continue
            if not (child.startswith(prefix) or prefix.startswith(child + "/")):
                continue
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                stack.append((open_dir(fd, [name]), child))


def _blob_path(digest: Digest) -> str:
    return f"{BLOBS_DIR}/{digest.algorithm}/{digest.encoded}"


def _is_file(dir_fd: int, name: str) -> bool:
    try:
        return regular_size(dir_fd, name) is not None
    except OSError:
        return False


class Layout:
    """One open image layout (a directory fd, closed by :meth:`LayoutStore.open`)."""

    def __init__(self, store: LayoutStore, repo: str, fd: int) -> None:
        self.store = store
        self.repo = repo
        self.fd = fd

    @property
    def where(self) -> str:
        return self.store.where(self.repo)

    @contextlib.contextmanager
    def _named(self, rel: str) -> Iterator[None]:
        """A :class:`NotRegularFile` raised inside names the file by its whole path."""
        try:
            yield
        except NotRegularFile as e:
            e.filename = f"{self.where}/{rel}"
            raise

    def check(self) -> None:
        """:raises NotFound: no ``oci-layout`` here. :raises LayoutFormatError: a bad one (too
        large, not JSON). :raises NotRegularFile: not a regular file."""
        where = f"{self.where}/{LAYOUT_FILE}"
        try:
            with self._named(LAYOUT_FILE):
                data, _ = read_file(self.fd, LAYOUT_FILE, MAX_LAYOUT_FILE_BYTES)
        except FileNotFoundError:
            raise NotFound(
                f"repository {self.repo}: {self.where} is not an OCI image layout (no "
                f"{LAYOUT_FILE} file)",
                code="NAME_UNKNOWN",
            ) from None
        except FileTooLarge:
            raise LayoutFormatError(
                f"{where} is larger than {MAX_LAYOUT_FILE_BYTES} bytes: not an OCI image layout"
            ) from None
        check_layout_file(data, where)

    def ensure(self) -> None:
        with self._named(LAYOUT_FILE):
            present = regular_size(self.fd, LAYOUT_FILE) is not None
        if present:
            self.check()
            return
        os.close(open_dir(self.fd, [BLOBS_DIR, "sha256"], create=True))
        write_atomic(self.fd, INDEX_FILE, empty_index_bytes(), exclusive=True)
        write_atomic(self.fd, LAYOUT_FILE, LAYOUT_FILE_BYTES, exclusive=True)

    # -- index.json -----------------------------------------------------------------------

    def index(self) -> LayoutIndex:
        """``index.json`` as it is now (a missing one reads as empty).

        :raises LayoutFormatError: it is not an image index, or larger than the store reads.
        :raises NotRegularFile: it is not a regular file.
        """
        key = file_key(self.fd, INDEX_FILE)
        if key is None:
            return LayoutIndex()
        cached = self.store.cached_index(self.repo, key)
        if cached is not None:
            return cached
        where = f"{self.where}/{INDEX_FILE}"
        limit = self.store.max_index_bytes
        try:
            with self._named(INDEX_FILE):
                data, key = read_file(self.fd, INDEX_FILE, limit)
        except FileTooLarge:
            raise LayoutFormatError(
                f"{where} is larger than {limit} bytes, more than Seawall reads: remove "
                "stale tags (umoci rm), or spread the tags over more repositories"
            ) from None
        index = LayoutIndex.parse(data, where)
        self.store.remember_index(self.repo, key, index)
        return index

    def write_index(self, index: LayoutIndex) -> None:
        """Replace ``index.json`` whole (hold :func:`~adapters.oci_layout_fs.locked`)."""
        write_atomic(self.fd, INDEX_FILE, index.to_bytes())

    # -- blobs ----------------------------------------------------------------------------

    def _blob_dir(self, digest: Digest, *, create: bool = False) -> int | None:
        try:
            return open_dir(self.fd, [BLOBS_DIR, digest.algorithm], create=create)
        except FileNotFoundError:
            return None

    def blob_size(self, digest: Digest) -> int | None:
        fd = self._blob_dir(digest)
        if fd is None:
            return None
        try:
            with self._named(_blob_path(digest)):
                return regular_size(fd, digest.encoded)
        finally:
            os.close(fd)

    def open_blob(self, digest: Digest) -> tuple[int, int]:
        """An fd of the blob's file and its size. :raises NotFound: no such blob in this
        layout. :raises NotRegularFile: a named pipe, device or directory is there."""
        fd = self._blob_dir(digest)
        try:
            if fd is None:
                raise FileNotFoundError
            with self._named(_blob_path(digest)):
                blob, st = open_regular(fd, digest.encoded)
            return blob, st.st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in {self.where}", code="BLOB_UNKNOWN") from None
        finally:
            if fd is not None:
                os.close(fd)

    def read_blob(self, digest: Digest, max_bytes: int) -> bytes:
        """The blob's bytes, verified. :raises NotFound, DigestMismatch, FileTooLarge:"""
        fd, size = self.open_blob(digest)
        try:
            if size > max_bytes:
                raise FileTooLarge(errno.EFBIG, f"is larger than {max_bytes} bytes", str(digest))
            data = read_fd(fd, size)
        finally:
            os.close(fd)
        check_digest(digest, hashlib.new(digest.algorithm, data), f"blob in {self.where}")
        return data

    def summary(self, digest: Digest) -> ManifestSummary | None:
        """The summary of the manifest ``digest`` if this layout holds it as a blob and it is
        a manifest or an index (else None: absent, a config, a layer)."""
        size = self.blob_size(digest)
        if size is None:
            return None
        known, summary = self.store.cached_summary(digest)
        if known:
            return summary
        if size > self.store.max_manifest_bytes:
            summary = None
        else:
            fd, _ = self.open_blob(digest)
            try:
                looks_like_json = os.pread(fd, 64, 0).lstrip().startswith(b"{")
            finally:
                os.close(fd)
            summary = None
            if looks_like_json:
                summary = summarize(self.read_blob(digest, self.store.max_manifest_bytes))
        self.store.remember_summary(digest, summary)
        return summary

    def blob_writer(self, digest: Digest) -> BlobWriter:
        return BlobWriter(self.fd, self.where, digest)

    def link_blob_from(self, source: Layout, digest: Digest) -> LinkResult:
        """Hard-link ``source``'s blob here: ``absent`` (source has none), ``unlinkable``
        (another file system, or links not allowed: copy it instead) or ``linked``."""
        src = source._blob_dir(digest)
        if src is None:
            return "absent"
        try:
            with source._named(_blob_path(digest)):
                if regular_size(src, digest.encoded) is None:
                    return "absent"
            dst = self._blob_dir(digest, create=True)
            assert dst is not None
            try:
                os.link(
                    digest.encoded,
                    digest.encoded,
                    src_dir_fd=src,
                    dst_dir_fd=dst,
                    follow_symlinks=False,
                )
                os.fsync(dst)
            except FileExistsError:
                pass
            except OSError as e:
                if e.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP):
                    return "unlinkable"
                raise
            finally:
                os.close(dst)
            return "linked"
        finally:
            os.close(src)

    def remove_blob(self, digest: Digest) -> None:
        fd = self._blob_dir(digest)
        if fd is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(digest.encoded, dir_fd=fd)
                os.fsync(fd)
        finally:
            os.close(fd)
