"""Run CNCF distribution (``docker-registry serve``, the reference registry) for tests.

One process per :class:`DistributionProcess`: 127.0.0.1 on a free port, a throwaway config and
filesystem root under ``workdir``, deletes enabled, no auth unless ``basic_auth=True`` (then one
htpasswd user, ``admin`` / :data:`DISTRIBUTION_PASSWORD`, behind a ``Basic`` challenge). It is the
yardstick: a client command that works against distribution and fails against Seawall points at
Seawall.

``AWS_CA_BUNDLE`` is removed from the process' environment: distribution's S3 driver crashes on
it even when the filesystem driver is configured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import free_port, stop_group, wait_http

__all__ = [
    "DISTRIBUTION_BINARY",
    "DISTRIBUTION_PASSWORD",
    "DISTRIBUTION_USER",
    "DistributionProcess",
    "distribution_available",
]

DISTRIBUTION_BINARY = "docker-registry"  # Debian's name for distribution's `registry`
DISTRIBUTION_USER = "admin"
DISTRIBUTION_PASSWORD = "distribution-test-password"
# bcrypt (cost 4, the least distribution accepts) of DISTRIBUTION_PASSWORD, made once with
# crypt(3); precomputed so that the tests need no bcrypt library.
_HTPASSWD_HASH = "$2b$04$EX45jpulEgEc2XwdgisS1e9ZaTokI6GG6N9rOEpTeSq1byW2Jq5ji"


def distribution_available() -> bool:
    return shutil.which(DISTRIBUTION_BINARY) is not None


@dataclass
class DistributionProcess:
    """One ``docker-registry serve`` subprocess in its own process group.

    ``extra_config`` is merged over the generated config's top level (e.g. ``{"auth": ...}``).
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    basic_auth: bool = False
    extra_config: dict[str, object] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def username(self) -> str | None:
        return DISTRIBUTION_USER if self.basic_auth else None

    @property
    def password(self) -> str | None:
        return DISTRIBUTION_PASSWORD if self.basic_auth else None

    @property
    def root_dir(self) -> Path:
        return self.workdir / "storage"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "distribution.log"

    def config(self) -> dict[str, object]:
        """The config file's content (JSON is YAML, so it is written as JSON)."""
        doc: dict[str, object] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.root_dir)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": self.host,
                # distribution serves its debug endpoint on :5001 unless told otherwise
                "debug": {"addr": ""},
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.basic_auth:
            htpasswd = self.workdir / "htpasswd"
            htpasswd.write_text(f"{DISTRIBUTION_USER}:{_HTPASSWD_HASH}\n")
            doc["auth"] = {"htpasswd": {"realm": "distribution", "path": str(htpasswd)}}
        doc.update(self.extra_config)
        return doc

    def start(self, timeout_s: float = 30.0) -> DistributionProcess:
        if self.proc is not None:
            raise RuntimeError(f"distribution on {self.host} is already running")
        binary = shutil.which(DISTRIBUTION_BINARY)
        if binary is None:
            raise FileNotFoundError(
                f"{DISTRIBUTION_BINARY} is not installed (apt-get install docker-registry)"
            )
        self.root_dir.mkdir(parents=True, exist_ok=True)  # also makes workdir
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        env.pop("AWS_CA_BUNDLE", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the process' life
        self.proc = subprocess.Popen(
            [binary, "serve", str(self.config_path)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            wait_http(self.url + "/v2/", timeout_s, self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"distribution did not start: {exc}\n{self.log()}") from exc
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc)
        self.proc = None

    def __enter__(self) -> DistributionProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""
