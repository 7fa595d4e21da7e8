"""Processes started at the same moment on a new database all come up: two ``seawall serve``
nodes on a fresh PostgreSQL database both serve, and ``seawall serve --workers 2`` on a fresh
SQLite data directory logs no "already exists" error (the schema, APScheduler's tables included,
is made under the schema lock: c5e4928)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.client import client
from tests.support.server import SeawallProcess

#: What a lost race to create the schema logs (SQLite; PostgreSQL's duplicate pg_type key).
RACE_SIGNS = ("already exists", "duplicate key", "Traceback")


def start_together(procs: list[SeawallProcess]) -> list[str]:
    """Start ``procs`` at once (each in a thread, released by one barrier); the errors."""
    barrier = threading.Barrier(len(procs))
    errors: list[str] = []

    def start(p: SeawallProcess) -> None:
        barrier.wait()
        try:
            p.start(timeout_s=60)
        except Exception as e:  # reported with the node log
            errors.append(f"{p.data_dir.name}: {e}\n{p.log()}")

    threads = [threading.Thread(target=start, args=(p,)) for p in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.fixture
def stopped() -> Iterator[list[SeawallProcess]]:
    procs: list[SeawallProcess] = []
    yield procs
    for p in procs:
        p.kill()


def assert_serves(p: SeawallProcess, requests: int = 1) -> None:
    """The registry and the engine's API answer (``requests`` times: whichever worker takes
    each one)."""
    with client(p.url, "admin", p.admin_password) as c:
        for _ in range(requests):
            assert c.get("/v2/").status_code == 200
            r = c.get("/api/v2.0/replication/policies")
            assert r.status_code == 200, r.text


def race_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if any(s in line for s in RACE_SIGNS)]


def test_two_nodes_started_at_once_on_a_new_postgres_both_serve(
    tmp_path: Path, postgres_url: str, stopped: list[SeawallProcess]
) -> None:
    env = {"SEAWALL_DATABASE_URL": postgres_url}
    stopped += [SeawallProcess(tmp_path / f"node{i}", extra_env=env) for i in range(2)]
    assert start_together(stopped) == []
    for p in stopped:
        assert_serves(p)
        assert race_lines(p.log()) == [], p.log()


def test_two_workers_on_a_new_sqlite_data_dir_log_no_schema_race(
    tmp_path: Path, stopped: list[SeawallProcess]
) -> None:
    p = SeawallProcess(tmp_path / "data", extra_args=["--workers", "2"])
    stopped.append(p)
    assert start_together([p]) == []
    assert_serves(p, requests=20)
    assert race_lines(p.log()) == [], p.log()
