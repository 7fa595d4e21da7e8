"""Helpers for the PostgreSQL suite: Seawall nodes on a database URL, polling within a bound."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tests.support.server import SeawallProcess

T = TypeVar("T")

#: A token key shared by the nodes of a cluster (docs/configuration.md: every node needs the same)
CLUSTER_TOKEN_KEY = "k" * 48


def node(data_dir: Path, database_url: str, **env: str) -> SeawallProcess:
    """A (not yet started) ``seawall serve`` on ``database_url``; blob storage in ``data_dir``."""
    return SeawallProcess(
        data_dir,
        extra_env={
            "SEAWALL_DATABASE_URL": database_url,
            "SEAWALL_AUTH__TOKEN_KEY": CLUSTER_TOKEN_KEY,
            **env,
        },
    )


def seawall_cli(database_url: str, data_dir: Path, *args: str) -> str:
    """``seawall ARGS --data-dir DIR`` with ``SEAWALL_DATABASE_URL``; its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEAWALL_")}
    env["SEAWALL_DATABASE_URL"] = database_url
    out = subprocess.run(
        [sys.executable, "-m", "seawall", *args, "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, f"seawall {args[:2]} failed:\n{out.stdout}\n{out.stderr[-1500:]}"
    return out.stdout


def eventually(probe: Callable[[], T], ok: Callable[[T], bool], within_s: float) -> T:
    """Call ``probe`` until ``ok(result)``; fail with the last result after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        got = probe()
        if ok(got):
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not seen within {within_s}s; last: {got!r}")
        time.sleep(0.02)
