"""``oci-layout``: a directory of OCI image layouts as a replication source and destination, for
air-gapped transfer (a USB drive, a share, an rsync target).

The endpoint URL names a root directory, ``file:///absolute/path`` (``file://localhost/…`` too);
each repository is its own OCI image layout at ``ROOT/<repository>/`` — what
``skopeo copy … oci:ROOT/team/app:1.0``, ``umoci … --image ROOT/team/app:1.0`` and oras-py's
``Layout("ROOT/team/app")`` read and write. Digests are preserved byte for byte; tags are
``index.json`` entries with ``org.opencontainers.image.ref.name``; referrers are untagged
``index.json`` entries with a ``subject`` (see :mod:`adapters.oci_layout_client`).

The root must exist (it is never created: an unmounted drive is an error, not a silent write to
the disk below its mount point); the repositories' layouts in it are created on first push. No
credentials: access is the file system's.
"""

from __future__ import annotations

import os
import stat
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import anyio
import anyio.to_thread

from adapters.base import (
    AdapterOption,
    Capabilities,
    EndpointConfig,
    InvalidEndpoint,
    InvalidRepositoryName,
    RegistryAdapter,
)
from adapters.oci_layout_client import OciLayoutClient
from adapters.oci_layout_index import LAYOUT_FILE, RESERVED_NAMES

__all__ = ["OciLayoutAdapter", "layout_root"]

MAX_PATH_CHARS = 4096
_CLIENT_OPTIONS = ("max_in_flight", "max_manifest_bytes", "max_index_bytes", "resume_attempts")


def layout_root(url: str) -> str:
    """The root directory a ``file://`` URL names, as a normalized absolute path.

    :raises InvalidEndpoint: another scheme, a host other than ``localhost``, credentials, a
        query or fragment, a relative path, ``.``/``..`` segments, or the file-system root.
    """
    shown = url[:200]
    parts = urlsplit(url)
    if parts.scheme.lower() != "file":
        raise InvalidEndpoint(f"oci-layout endpoint URL {shown!r}: use file:///absolute/path")
    if "@" in parts.netloc:
        raise InvalidEndpoint(
            f"oci-layout endpoint URL {shown!r} carries credentials: a layout directory takes "
            "none (access is the file system's); remove them"
        )
    if parts.netloc.lower() not in ("", "localhost"):
        raise InvalidEndpoint(
            f"oci-layout endpoint URL {shown!r} names the host {parts.netloc!r}: a layout "
            "directory is local; use file:///absolute/path (three slashes)"
        )
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        raise InvalidEndpoint(f"oci-layout endpoint URL {shown!r}: no query or fragment")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise InvalidEndpoint(f"oci-layout endpoint URL {shown!r}: the path must be absolute")
    segments = path.split("/")
    if "\x00" in path or len(path) > MAX_PATH_CHARS or any(s in (".", "..") for s in segments):
        raise InvalidEndpoint(
            f"oci-layout endpoint URL {shown!r}: use a plain absolute path (no '.' or '..' "
            f"segments, at most {MAX_PATH_CHARS} characters)"
        )
    root = "/" + "/".join(s for s in segments if s)
    if root == "/":
        raise InvalidEndpoint(
            f"oci-layout endpoint URL {shown!r} names the file-system root: use a directory "
            "that holds only image layouts"
        )
    return root


class OciLayoutAdapter(RegistryAdapter):
    """A root directory of OCI image layouts, one per repository (see the module docstring)."""

    type: ClassVar[str] = "oci-layout"
    description: ClassVar[str] = (
        "OCI image-layout directories (one per repository under a root directory), for "
        "air-gapped transfer"
    )
    capabilities: ClassVar[Capabilities] = Capabilities(
        catalog=True,  # layouts found under the root
        referrers_api=True,  # index.json entries whose subject is the digest
        blob_mount=True,  # a hard link (or a verified copy) from the other repository's layout
        chunked_upload=True,  # any upload streams to a file: chunking changes nothing
        delete_tag=True,
        delete_manifest=True,
        create_namespace=True,  # prepare_repository creates the layout
        max_in_flight=16,  # blocking file calls in worker threads at once
    )
    url_schemes: ClassVar[tuple[str, ...]] = ("file",)
    # a directory sends no webhooks
    supported_triggers: ClassVar[tuple[str, ...]] = ("manual", "scheduled")
    options_spec: ClassVar[tuple[AdapterOption, ...]] = ()

    @classmethod
    def check_config(cls, config: EndpointConfig) -> None:
        """The URL must be ``file:///absolute/path`` (see :func:`layout_root`); no username,
        password, token or CA file. No I/O: whether the directory exists is :meth:`health`'s
        (and each operation's) to say."""
        super().check_config(config)
        layout_root(config.url)
        if config.username or config.password or config.token:
            raise InvalidEndpoint(
                "oci-layout endpoints take no credential (access is the file system's): "
                "leave the access key and secret empty"
            )
        if config.ca_file:
            raise InvalidEndpoint("oci-layout endpoints use no TLS: give no CA certificate")

    def __init__(self, config: EndpointConfig, **client_options: Any) -> None:
        super().__init__(config, **client_options)
        self.root = layout_root(config.url)
        self._layout_client: OciLayoutClient | None = None

    def __repr__(self) -> str:
        return f"OciLayoutAdapter({self.root!r})"

    def client(self) -> OciLayoutClient:  # type: ignore[override]  # a RegistryClient
        """The one client of this root (created on first call, then the same one)."""
        if self._layout_client is None:
            kwargs = {k: v for k, v in self._client_options.items() if k in _CLIENT_OPTIONS}
            kwargs.setdefault("max_in_flight", self.capabilities.max_in_flight)
            self._layout_client = OciLayoutClient(self.root, **kwargs)
        return self._layout_client

    async def close(self) -> None:
        client, self._layout_client = self._layout_client, None
        if client is not None:
            await client.close()

    def check_name(self, name: str) -> None:
        """The OCI name rules, and no path component named like a layout's own files
        (``blobs``, ``index.json``, ``oci-layout``): ``team/blobs`` would be written into the
        blobs directory of the layout ``team``."""
        super().check_name(name)
        reserved = RESERVED_NAMES.intersection(name.split("/"))
        if reserved:
            raise InvalidRepositoryName(
                f"repository name {name!r}: {sorted(reserved)[0]!r} is a file name of OCI "
                "image layouts and cannot be a path component of a repository stored in one; "
                "change the policy's destination namespace"
            )

    async def prepare_repository(self, name: str) -> None:
        """Create ``ROOT/<name>/`` as an empty image layout if it is not one yet."""
        self.check_name(name)
        await self.client().create_repository(name)

    async def health(self) -> tuple[bool, str]:
        """Whether the root is a readable directory (writable: also a destination); never
        raises. A root that is itself an image layout is refused with what to do instead."""
        try:
            with anyio.fail_after(self.health_timeout_seconds):
                return await anyio.to_thread.run_sync(
                    _probe_root, self.root, abandon_on_cancel=True
                )
        except TimeoutError:
            return False, f"{self.root} did not answer within {self.health_timeout_seconds}s"


def _probe_root(root: str) -> tuple[bool, str]:
    try:
        st = os.stat(root)
    except FileNotFoundError:
        return False, f"{root} does not exist: create it, or mount the drive that holds it"
    except OSError as e:
        return False, f"{root}: {e.strerror or e}"
    if not stat.S_ISDIR(st.st_mode):
        return False, f"{root} is not a directory"
    if os.path.isfile(os.path.join(root, LAYOUT_FILE)):
        return False, (
            f"{root} is itself an OCI image layout: point the endpoint at its parent "
            f"directory; the layout is then the repository named {os.path.basename(root)!r}"
        )
    if not os.access(root, os.R_OK | os.X_OK):
        return False, f"{root} is not readable by this user"
    if os.access(root, os.W_OK):
        return True, f"directory {root}, readable and writable"
    return True, f"directory {root}, read-only: usable as a replication source only"
