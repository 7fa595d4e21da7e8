"""The state file of ``seawall sync`` (``oneshot.db`` in ``--state-dir``, plain ``sqlite3``):
its runs, their tasks, and the ledger of what its runs put at the destination.

One process at a time uses a state dir (an exclusive ``flock``; it dies with the process, so
there are no leases to wait out). Statements run inline on the event loop: they are tiny, and
with WAL and ``synchronous=NORMAL`` a commit does not wait for the disk (a killed process loses
nothing; a power cut may lose the last commits — the ledger then under-claims, which is safe:
a tag missing from it is checked with a ``HEAD`` and never deleted).

No SQLAlchemy here, nor anywhere ``seawall sync`` imports.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.state.status import ACTIVE_TASK, ExecutionStatus, TaskOutcome, TaskStatus
from engine.taskrun import TaskEnd
from engine.tasks import LedgerEntry, roll_up

__all__ = ["SyncState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY,
    settings TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_text TEXT NOT NULL DEFAULT '',
    started_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE TABLE IF NOT EXISTS task (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES run(id),
    operation TEXT NOT NULL,
    src_repository TEXT NOT NULL,
    dst_repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tags_json TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    src_resource TEXT NOT NULL,
    dst_resource TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    bytes_copied INTEGER NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '',
    start_time TEXT,
    end_time TEXT
);
CREATE INDEX IF NOT EXISTS task_run ON task (run_id, status);
CREATE TABLE IF NOT EXISTS ledger (
    dst_repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dst_repository, tag)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
_TASK_COLUMNS = (
    "operation",
    "src_repository",
    "dst_repository",
    "digest",
    "tags_json",
    "status",
    "outcome",
    "reason",
    "src_resource",
    "dst_resource",
)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class SyncState:
    """The state file of one ``--state-dir``: runs, tasks and the ledger."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @classmethod
    @contextmanager
    def open(cls, state_dir: Path) -> Iterator[SyncState]:
        """Lock ``state_dir`` for this process and open (or create) its state file."""
        import fcntl

        with open(state_dir / "lock", "a+b") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(f"another seawall sync is using {state_dir}") from None
            db = sqlite3.connect(state_dir / "oneshot.db", isolation_level=None)
            try:
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.executescript(_SCHEMA)
                state = cls(db)
                state._import_legacy_ledger(state_dir / "sync.db")
                yield state
            finally:
                db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _import_legacy_ledger(self, legacy: Path) -> None:
        """Once: the ledger an earlier Seawall kept in ``sync.db`` (the engine's tables)."""
        if self.db.execute("SELECT 1 FROM meta WHERE key = 'legacy_ledger'").fetchone():
            return
        rows: list[tuple[str, str, str, str]] = []
        if legacy.exists():
            try:
                old = sqlite3.connect(f"{legacy.resolve().as_uri()}?mode=ro", uri=True)
                try:
                    rows = old.execute(
                        "SELECT dst_repository, tag, digest, CAST(updated_at AS TEXT) "
                        "FROM replicated WHERE tag != '' AND policy_id = "
                        "(SELECT id FROM policy WHERE name = 'sync')"
                    ).fetchall()
                finally:
                    old.close()
            except sqlite3.Error:
                rows = []  # not the schema we know: start without a ledger (safe, only slower)
        with self._transaction() as c:
            c.executemany("INSERT OR IGNORE INTO ledger VALUES (?, ?, ?, ?)", rows)
            c.execute("INSERT INTO meta VALUES ('legacy_ledger', ?)", (str(len(rows)),))

    # -- runs ----------------------------------------------------------------------------------

    def interrupted_run(self, settings: str) -> int | None:
        """The last run, if it never ended and had the same settings; a run that never ended
        with other settings is closed as Stopped (its plan no longer applies)."""
        row = self.db.execute(
            "SELECT id, settings FROM run WHERE ended_at IS NULL AND dry_run = 0 "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        if row["settings"] == settings:
            return int(row["id"])
        with self._transaction() as c:
            c.execute(
                "UPDATE task SET status = ?, outcome = ?, end_time = ? "
                "WHERE run_id = ? AND status IN (?, ?)",
                (TaskStatus.STOPPED, TaskOutcome.STOPPED, _now(), row["id"], *ACTIVE_TASK),
            )
        self.finish_run(int(row["id"]), "superseded by a run with other settings")
        return None

    def create_run(
        self, settings: str, dry_run: bool, rows: list[dict[str, Any]], status_text: str
    ) -> int:
        with self._transaction() as c:
            cur = c.execute(
                "INSERT INTO run (settings, dry_run, status, status_text, started_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (settings, int(dry_run), ExecutionStatus.IN_PROGRESS, status_text, _now()),
            )
            run_id = int(cur.lastrowid or 0)
            c.executemany(
                f"INSERT INTO task (run_id, {', '.join(_TASK_COLUMNS)}) "
                f"VALUES (?{', ?' * len(_TASK_COLUMNS)})",
                [(run_id, *(r[k] for k in _TASK_COLUMNS)) for r in rows],
            )
        return run_id

    def finish_run(self, run_id: int, status_text: str | None = None) -> tuple[str, str]:
        """Roll the run up and close it (unless tasks are unfinished); its status and text."""
        counts = dict(
            self.db.execute(
                "SELECT status, count(*) FROM task WHERE run_id = ? GROUP BY status", (run_id,)
            ).fetchall()
        )
        status = roll_up(counts)
        text = status_text
        if text is None:
            text = str(
                self.db.execute("SELECT status_text FROM run WHERE id = ?", (run_id,)).fetchone()[0]
            )
        if not text and status == ExecutionStatus.SUCCEED and not counts:
            text = "no resources need to be replicated"
        ended = None if status == ExecutionStatus.IN_PROGRESS else _now()
        with self._transaction() as c:
            c.execute(
                "UPDATE run SET status = ?, status_text = ?, ended_at = ? WHERE id = ?",
                (status, text, ended, run_id),
            )
        return status, text

    def prune(self, keep: int) -> None:
        """Forget the tasks and runs older than the last ``keep`` finished runs."""
        with self._transaction() as c:
            old = "SELECT id FROM run WHERE ended_at IS NOT NULL ORDER BY id DESC LIMIT -1 OFFSET ?"
            c.execute(f"DELETE FROM task WHERE run_id IN ({old})", (keep,))
            c.execute(f"DELETE FROM run WHERE id IN ({old})", (keep,))

    # -- tasks ---------------------------------------------------------------------------------

    def tasks(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM task WHERE run_id = ? ORDER BY id", (run_id,))
        return [dict(r) for r in rows.fetchall()]

    def requeue_interrupted(self, run_id: int) -> None:
        """Tasks a killed or interrupted process left ``InProgress`` wait again (the state
        dir's lock says no other process runs them)."""
        with self._transaction() as c:
            c.execute(
                "UPDATE task SET status = ? WHERE run_id = ? AND status = ?",
                (TaskStatus.PENDING, run_id, TaskStatus.IN_PROGRESS),
            )

    def lease_task(self, run_id: int) -> dict[str, Any] | None:
        """Take the run's first waiting task: ``InProgress``, ``attempts`` counting the attempt
        that starts now; its row, or None when none waits."""
        with self._transaction() as c:
            rows = c.execute(
                "UPDATE task SET status = ?, attempts = attempts + 1, "
                "start_time = coalesce(start_time, ?) WHERE id = "
                "(SELECT id FROM task WHERE run_id = ? AND status = ? ORDER BY id LIMIT 1) "
                "RETURNING *",
                (TaskStatus.IN_PROGRESS, _now(), run_id, TaskStatus.PENDING),
            ).fetchall()  # drained before the commit
        return dict(rows[0]) if rows else None

    def finish_task(self, task_id: int, end: TaskEnd) -> None:
        """End an attempt; the tags it put at the destination go into the ledger in the same
        transaction."""
        with self._transaction() as c:
            c.execute(
                "UPDATE task SET status = ?, outcome = ?, reason = ?, log = ?, bytes_copied = ?, "
                "end_time = ? WHERE id = ?",
                (
                    end.status,
                    end.outcome,
                    end.reason[:2000],
                    end.log,
                    end.bytes_copied,
                    _now(),
                    task_id,
                ),
            )
            if end.ledger is not None:
                _record_replicated(c, end.ledger)

    # -- ledger --------------------------------------------------------------------------------

    def ledger(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for repo, tag, digest in self.db.execute("SELECT dst_repository, tag, digest FROM ledger"):
            out.setdefault(repo, {})[tag] = digest
        return out

    def forget_replicated(self, dst_repo: str, tag: str) -> None:
        with self._transaction() as c:
            c.execute("DELETE FROM ledger WHERE dst_repository = ? AND tag = ?", (dst_repo, tag))


def _record_replicated(c: sqlite3.Connection, entry: LedgerEntry) -> None:
    c.executemany(
        "INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?)",
        [(entry.dst_repository, tag, entry.digest, _now()) for tag in entry.tags],
    )
