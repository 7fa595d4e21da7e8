"""The 9420392 fixture (``tests/fixtures/seawall-9420392.*``: a data directory and a PostgreSQL
dump written by the release before versioned migrations, see ``make_seawall_9420392.sh``), and
databases to upgrade: a fresh SQLite file or PostgreSQL database, empty or holding the fixture."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import SUPERUSER, PostgresCluster

__all__ = [
    "FIXTURES",
    "expected",
    "load_dump",
    "old_database",
    "unpack",
]

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
NAME = "seawall-9420392"


def expected() -> dict[str, Any]:
    """What the fixture holds (written by the maker when it made it)."""
    found: dict[str, Any] = json.loads((FIXTURES / f"{NAME}.json").read_text())
    return found


def unpack(dest: Path) -> Path:
    """The fixture's data directory, unpacked under ``dest``; its path."""
    with tarfile.open(FIXTURES / f"{NAME}.tar.gz") as tar:
        tar.extractall(dest, filter="data")
    return dest / "data"


def load_dump(cluster: PostgresCluster, url: str) -> None:
    """The fixture's PostgreSQL dump loaded into the (empty) database at ``url``."""
    psql = [str(cluster.bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null"]
    where = ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", SUPERUSER]
    subprocess.run(
        [*psql, *where, "-d", url.rsplit("/", 1)[1]],
        input=(FIXTURES / f"{NAME}-postgres.sql").read_bytes(),
        check=True,
        capture_output=True,
        timeout=120,
    )


def old_database(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database URL holding the fixture's data as 9420392 left it (``kind``: sqlite or
    postgresql); the data directory (keys, blobs) is unpacked at ``tmp_path / "data"``."""
    data = unpack(tmp_path)
    if kind == "sqlite":
        return f"sqlite:///{data / 'seawall.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres_cluster")
    url = cluster.create_database("old")
    load_dump(cluster, url)
    (data / "seawall.db").unlink()  # the dump is the database; keys and blobs stay
    return url
