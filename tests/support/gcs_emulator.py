"""A throwaway Google Cloud Storage emulator for tests (PyPI ``gcp-storage-emulator``): 127.0.0.1,
a free port, in memory, stopped (process group) at the end. google-cloud-storage reaches it
through ``STORAGE_EMULATOR_HOST`` (it ignores generation preconditions).

The binary: ``$SEAWALL_TEST_GCS_EMULATOR`` if set, else ``gcp-storage-emulator`` next to the test
interpreter (``.venv/bin``), else on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import free_port, stop_group, wait_http

__all__ = ["GcsEmulatorProcess", "find_gcs_emulator"]


def find_gcs_emulator() -> str | None:
    env = os.environ.get("SEAWALL_TEST_GCS_EMULATOR")
    if env:
        return env
    local = Path(sys.executable).parent / "gcp-storage-emulator"
    if local.exists():
        return str(local)
    return shutil.which("gcp-storage-emulator")


@dataclass
class GcsEmulatorProcess:
    binary: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    @property
    def host(self) -> str:
        """The value of ``STORAGE_EMULATOR_HOST``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GcsEmulatorProcess:
        self.workdir = Path(tempfile.mkdtemp(prefix="seawall-gcs-"))
        cmd = [self.binary, "start", "--host", "127.0.0.1", "--port", str(self.port)]
        log = open(self.workdir / "gcs.log", "ab")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen(
            [*cmd, "--in-memory", "--quiet"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.workdir,
        )
        try:
            wait_http(f"{self.host}/storage/v1/b?project=test", 60.0, self.proc)
        except Exception:
            self.stop()  # the log stays for the error message; remove() takes it
            raise
        return self

    def log(self) -> str:
        if self.workdir is None:
            return ""
        try:
            return (self.workdir / "gcs.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc)
            self.proc = None

    def remove(self) -> None:
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
