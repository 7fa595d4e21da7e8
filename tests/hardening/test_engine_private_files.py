"""The SQLite database and its -wal and -shm files are readable by their owner only (they hold
password hashes and sealed secrets), also when an earlier version left them world-readable."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support.client import client, push_image
from tests.support.server import SeawallProcess


def _modes(data: Path) -> dict[str, int]:
    return {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in data.iterdir()
        if p.name.startswith("seawall.db")
    }


def test_database_files_are_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual umask: files would be 0644
    try:
        proc = SeawallProcess(tmp_path / "data").start()
    finally:
        os.umask(old)
    try:
        with client(proc.url, "admin", proc.admin_password) as c:
            push_image(c, "team/app", "1.0")
        modes = _modes(proc.data_dir)
        assert {"seawall.db", "seawall.db-wal", "seawall.db-shm"} <= set(modes), modes
        assert all(mode == 0o600 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}
        proc.stop()
        for name in modes:  # as an earlier version left them
            path = proc.data_dir / name
            if path.exists():
                path.chmod(0o644)
        proc.start()
        modes = _modes(proc.data_dir)
        assert all(mode == 0o600 for mode in modes.values()), {k: oct(v) for k, v in modes.items()}
    finally:
        proc.stop()
