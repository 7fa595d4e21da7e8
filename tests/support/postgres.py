"""A throwaway PostgreSQL cluster for tests: ``initdb`` into a temporary directory, ``pg_ctl``
start on 127.0.0.1 and a free port, one fresh database per test, a clean stop at the end.

PostgreSQL refuses to run as root (as the tests do in CI), so as root every server command runs
as the ``postgres`` system user (``runuser -u postgres``) on a data directory it owns; as any other
user the commands run as that user. The cluster trusts local connections (it listens on 127.0.0.1
only and lives for one test session) and trades durability for speed (``fsync=off``).

Binaries: ``$SEAWALL_TEST_PG_BIN`` if set, else the newest ``/usr/lib/postgresql/*/bin`` (Debian's
``postgresql`` package, installed by ``scripts/test``), else ``pg_ctl`` on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.server import free_port

__all__ = ["PostgresCluster", "find_pg_bin"]

SUPERUSER = "postgres"


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not here."""
    env = os.environ.get("SEAWALL_TEST_PG_BIN")
    if env:
        return Path(env)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    for bin_dir in reversed(candidates):
        if (bin_dir / "initdb").exists() and (bin_dir / "pg_ctl").exists():
            return bin_dir
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


@dataclass
class PostgresCluster:
    """One PostgreSQL server process; :meth:`create_database` hands out fresh databases."""

    bin_dir: Path
    port: int = field(default_factory=free_port)
    base: Path | None = None
    started: bool = False

    @property
    def _as_postgres(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    @property
    def data_dir(self) -> Path:
        assert self.base is not None
        return self.base / "data"

    @property
    def log_file(self) -> Path:
        assert self.base is not None
        return self.base / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *cmd: str | Path) -> None:
        subprocess.run(
            [*self._as_postgres, *map(str, cmd)],
            check=True,
            capture_output=True,
            timeout=120,
            cwd=self.base,
        )

    def start(self) -> PostgresCluster:
        # Not under pytest's tmp dirs: those are private to root, and the server runs as postgres.
        self.base = Path(tempfile.mkdtemp(prefix="seawall-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self._run(
            self.bin_dir / "initdb",
            "-D",
            self.data_dir,
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.base}",
                "-c max_connections=300",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c shared_buffers=64MB",
            ]
        )
        self._run(
            self.bin_dir / "pg_ctl",
            "-D",
            self.data_dir,
            "-l",
            self.log_file,
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        self.started = True
        return self

    def psql(self, sql: str, database: str = "postgres") -> str:
        out = subprocess.run(
            [
                *self._as_postgres,
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.base,
        )
        return out.stdout.strip()

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL (``postgresql://postgres@127.0.0.1:PORT/NAME``)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.base is None:
            return
        if self.started:
            try:
                self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "fast", "-w", "stop")
            except subprocess.CalledProcessError:
                self._run(
                    self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop"
                )
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None
