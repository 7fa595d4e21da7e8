"""Thin, logged wrappers over the real clients the end-to-end tests drive.

Each wrapper runs one binary with an isolated configuration (its own auth file, storage or config
directory under the test's tmp_path), never the machine's: a test passes or fails on what the
registry did, not on what a developer's ``~/.docker`` holds. A failed command raises
:class:`CommandFailed` carrying the command line, exit code, stdout and stderr, so a failing test
shows exactly what the client said.

A :class:`Registry` is one registry under test (Seawall or CNCF distribution) as the clients see
it: a ``host:port`` on plain HTTP, with or without credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.client import client

__all__ = [
    "CommandFailed",
    "DockerCli",
    "Podman",
    "Registry",
    "Skopeo",
    "in_ci",
    "probe_podman_storage_driver",
    "require_binary",
    "short_runroot",
]

COMMAND_TIMEOUT_SECONDS = 300


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_binary(name: str) -> str:
    """The binary's path; a missing binary skips the test locally and fails it in CI."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed (scripts/test installs it with apt-get)"
    if in_ci():
        pytest.fail(f"{message}; CI must run every client test", pytrace=False)
    pytest.skip(message)


class CommandFailed(AssertionError):
    def __init__(self, argv: Sequence[str], result: subprocess.CompletedProcess[bytes]) -> None:
        self.argv = list(argv)
        self.returncode = result.returncode
        self.stdout = result.stdout.decode(errors="replace")
        self.stderr = result.stderr.decode(errors="replace")
        super().__init__(
            f"command failed with exit code {self.returncode}: {' '.join(self.argv)}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


@dataclass(frozen=True)
class Registry:
    """A registry under test, as clients address it."""

    kind: str  # "seawall" | "distribution"
    url: str
    host: str
    username: str | None = None
    password: str | None = None

    @property
    def creds(self) -> str | None:
        """``user:password`` for ``--creds``-style flags, or None for an open registry."""
        return f"{self.username}:{self.password}" if self.username else None

    def image(self, repo: str, ref: str) -> str:
        """``host/repo:tag`` or ``host/repo@sha256:...``."""
        sep = "@" if ":" in ref else ":"
        return f"{self.host}/{repo}{sep}{ref}"

    def docker(self, repo: str, ref: str) -> str:
        """A containers-image ``docker://`` reference."""
        return "docker://" + self.image(repo, ref)

    def http(self) -> httpx.Client:
        """A raw HTTP client for the registry (token or Basic auth as it challenges)."""
        return client(self.url, self.username, self.password)


def _run(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    input: bytes | None = None,
    check: bool = True,
    timeout_s: float = COMMAND_TIMEOUT_SECONDS,
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        list(argv),
        env=dict(env),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandFailed(argv, result)
    return result


def _base_env(**overrides: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "CONTAINERS_STORAGE_CONF"}
    }
    env.update(overrides)
    return env


@dataclass
class Skopeo:
    """skopeo with its own (empty) auth file; credentials are always passed as flags."""

    workdir: Path
    binary: str = "skopeo"

    @property
    def env(self) -> dict[str, str]:
        auth = self.workdir / "skopeo-auth.json"
        if not auth.exists():
            auth.write_text('{"auths": {}}')
        return _base_env(REGISTRY_AUTH_FILE=str(auth))

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return _run([self.binary, *args], self.env, check=check)

    @staticmethod
    def _flags(prefix: str, registry: Registry | None) -> list[str]:
        if registry is None:
            return []
        flags = [f"--{prefix}tls-verify=false"]
        if registry.creds:
            flags.append(f"--{prefix}creds={registry.creds}")
        return flags

    def copy(
        self,
        src: str,
        dest: str,
        *extra: str,
        src_registry: Registry | None = None,
        dest_registry: Registry | None = None,
    ) -> None:
        self.run(
            "copy",
            *self._flags("src-", src_registry),
            *self._flags("dest-", dest_registry),
            *extra,
            src,
            dest,
        )

    def inspect_raw(self, registry: Registry, repo: str, ref: str) -> bytes:
        """The manifest bytes exactly as the registry serves them."""
        return self.run(
            "inspect", "--raw", *self._flags("", registry), registry.docker(repo, ref)
        ).stdout

    def inspect(
        self, registry: Registry, repo: str, ref: str, *, arch: str | None = None
    ) -> dict[str, Any]:
        """``skopeo inspect``: for an index, the child for ``arch`` (default: this machine's)."""
        arch_flags = ["--override-arch", arch] if arch else []
        out = self.run(
            *arch_flags, "inspect", *self._flags("", registry), registry.docker(repo, ref)
        )
        return json.loads(out.stdout)

    def inspect_fails(self, registry: Registry, repo: str, ref: str) -> CommandFailed:
        try:
            self.inspect_raw(registry, repo, ref)
        except CommandFailed as exc:
            return exc
        raise AssertionError(f"skopeo inspect of {registry.image(repo, ref)} succeeded")

    def list_tags(self, registry: Registry, repo: str) -> list[str]:
        out = self.run("list-tags", *self._flags("", registry), f"docker://{registry.host}/{repo}")
        return list(json.loads(out.stdout)["Tags"])

    def delete(self, registry: Registry, repo: str, ref: str) -> None:
        self.run("delete", *self._flags("", registry), registry.docker(repo, ref))

    def sync_registry(
        self, src: Registry, src_repo: str, dest: Registry, dest_prefix: str, *extra: str
    ) -> None:
        """``skopeo sync --src docker --dest docker``: every tag of ``src_repo`` lands in
        ``dest_prefix/<last path component of src_repo>``."""
        self.run(
            "sync",
            "--src",
            "docker",
            "--dest",
            "docker",
            *self._flags("src-", src),
            *self._flags("dest-", dest),
            *extra,
            f"{src.host}/{src_repo}",
            f"{dest.host}/{dest_prefix}",
        )


def unmount_under(path: Path) -> None:
    """Lazily unmount everything mounted at or below ``path`` (deepest first): podman's overlay
    driver leaves its home bind-mounted, which would keep pytest from removing tmp_path."""
    prefix = str(path.resolve())
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    mountpoints = [line.split()[4] for line in lines if len(line.split()) > 4]
    for mountpoint in sorted(mountpoints, key=len, reverse=True):
        if mountpoint == prefix or mountpoint.startswith(prefix + "/"):
            subprocess.run(["umount", "-l", mountpoint], capture_output=True, check=False)


def short_runroot() -> Path:
    """A fresh directory for podman's ``--runroot``, which must be under 50 characters (it holds
    sockets): under /tmp, not under pytest's long tmp_path."""
    return Path(tempfile.mkdtemp(prefix="sw-podman-", dir="/tmp"))


def probe_podman_storage_driver(workdir: Path, binary: str = "podman") -> str:
    """The first storage driver podman can initialise here as root: ``overlay`` (native kernel
    overlayfs) where the kernel allows it, else ``vfs`` (plain copies; works inside an
    unprivileged container). ``SEAWALL_TEST_PODMAN_STORAGE_DRIVER`` forces one."""
    forced = os.environ.get("SEAWALL_TEST_PODMAN_STORAGE_DRIVER")
    candidates = [forced] if forced else ["overlay", "vfs"]
    errors = []
    for driver in candidates:
        runroot = short_runroot()
        argv = [
            binary,
            "--root",
            str(workdir / f"probe-{driver}"),
            "--runroot",
            str(runroot),
            "--storage-driver",
            driver,
            "info",
            "--format",
            "{{.Store.GraphDriverName}}",
        ]
        try:
            result = _run(argv, _base_env(), check=False, timeout_s=120)
        finally:
            unmount_under(workdir / f"probe-{driver}")
            shutil.rmtree(runroot, ignore_errors=True)
        if result.returncode == 0 and result.stdout.decode().strip() == driver:
            return driver
        errors.append(f"{driver}: {result.stderr.decode(errors='replace').strip()[-500:]}")
    raise RuntimeError("podman can use no storage driver here:\n" + "\n".join(errors))


@dataclass
class Podman:
    """podman as root with a private store (``--root``/``--runroot``) and its own auth file."""

    workdir: Path
    storage_driver: str
    binary: str = "podman"
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.runroot = short_runroot()
        self.authfile = self.workdir / "auth.json"
        self.authfile.write_text('{"auths": {}}')  # podman refuses a REGISTRY_AUTH_FILE not there
        self.env = _base_env(REGISTRY_AUTH_FILE=str(self.authfile))

    def close(self) -> None:
        unmount_under(self.workdir)
        unmount_under(self.runroot)
        shutil.rmtree(self.runroot, ignore_errors=True)

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [
            self.binary,
            "--root",
            str(self.workdir / "root"),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            self.storage_driver,
            "--events-backend",
            "file",
            *args,
        ]
        return _run(argv, self.env, input=input, check=check)

    def login(self, registry: Registry, password: str | None = None) -> None:
        assert registry.username, "podman login needs a registry with credentials"
        self.run(
            "login",
            "--tls-verify=false",
            "--authfile",
            str(self.authfile),
            "-u",
            registry.username,
            "-p",
            password if password is not None else registry.password or "",
            registry.host,
        )

    def image_inspect(self, image: str) -> dict[str, Any]:
        out = self.run("image", "inspect", image)
        return json.loads(out.stdout)[0]


@dataclass
class DockerCli:
    """The docker CLI with its own ``DOCKER_CONFIG``. No engine is needed for ``login`` and
    ``manifest``: the CLI then talks to the registry itself, trying HTTPS first and falling back
    to plain HTTP for insecure registries (127.0.0.0/8 is insecure by default)."""

    workdir: Path
    binary: str = "docker"

    def __post_init__(self) -> None:
        self.config_dir = self.workdir / "docker-config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.env = _base_env(DOCKER_CONFIG=str(self.config_dir))
        # never talk to an engine somewhere else; with none, login and manifest work client-side
        self.env.pop("DOCKER_HOST", None)
        self.env.pop("DOCKER_CONTEXT", None)

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        return _run([self.binary, *args], self.env, input=input, check=check)

    def login(
        self, registry: Registry, password: str, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        assert registry.username, "docker login needs a registry with credentials"
        return self.run(
            "login",
            registry.host,
            "-u",
            registry.username,
            "--password-stdin",
            input=password.encode() + b"\n",
            check=check,
        )

    def config(self) -> dict[str, Any]:
        path = self.config_dir / "config.json"
        return json.loads(path.read_text()) if path.exists() else {}
