"""A throwaway azurite (Azure Blob emulator, from npm) for tests: 127.0.0.1, a free port, data in
a temporary directory, telemetry off, stopped (process group) at the end.

The binary: ``$SEAWALL_TEST_AZURITE`` if set, else ``.venv/azurite/node_modules/.bin/azurite-blob``
(where ``scripts/test`` installs azurite 3.35 with npm), else ``azurite-blob`` on ``PATH``.
azurite 3.35 runs on Node 20 with ``--skipApiVersionCheck`` (3.37 wants Node 22).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import free_port, stop_group, wait_http

__all__ = ["ACCOUNT", "ACCOUNT_KEY", "AzuriteProcess", "find_azurite"]

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"  # azurite's well-known development account and key
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def find_azurite() -> str | None:
    env = os.environ.get("SEAWALL_TEST_AZURITE")
    if env:
        return env
    local = ROOT / ".venv" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if local.exists():
        return str(local)
    return shutil.which("azurite-blob")


@dataclass
class AzuriteProcess:
    binary: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.url};"
        )

    def start(self) -> AzuriteProcess:
        self.workdir = Path(tempfile.mkdtemp(prefix="seawall-azurite-"))
        cmd = [
            self.binary,
            *["--blobHost", "127.0.0.1", "--blobPort", str(self.port)],
            "--inMemoryPersistence",
            *["--skipApiVersionCheck", "--disableTelemetry", "--loose", "--silent"],
        ]
        log = open(self.workdir / "azurite.log", "ab")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir
        )
        try:
            wait_http(f"http://127.0.0.1:{self.port}/", 60.0, self.proc)
        except Exception:
            self.stop()  # the log stays for the error message; remove() takes it
            raise
        return self

    def log(self) -> str:
        if self.workdir is None:
            return ""
        try:
            return (self.workdir / "azurite.log").read_text(errors="replace")[-3000:]
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
