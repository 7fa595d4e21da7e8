"""One-shot sync between two registries, without a server: ``seawall sync SRC DST``.

It lists with the engine's listing (``engine.listing``), plans with the engine's planner
(``engine.plan.make_plan``) and copies with the engine's copier (``engine.copier.Copier``) — the
code a policy runs in ``seawall serve`` — and keeps its state in a small SQLite file of its own
in ``--state-dir`` (``oneshot.db``, plain ``sqlite3``; a ``seawall sync`` must not pay for
importing SQLAlchemy, which was half of a no-op re-sync):

- the ledger of the tags this state's runs put at the destination: a later run trusts it instead
  of one ``HEAD`` per destination tag (unless ``verify``), and ``deletion`` deletes only what is
  in it;
- each run's plan (its tasks) and outcomes: a run that was interrupted (killed, Ctrl-C) is
  resumed by the next run with the same source, destination and options, which carries out the
  rest of its plan instead of listing and planning again.

One process at a time uses a state dir (an exclusive ``flock``; it dies with the process, so
there are no leases to wait out). Statements run inline on the event loop: they are tiny, and
with WAL and ``synchronous=NORMAL`` a commit does not wait for the disk (a killed process loses
nothing; a power cut may lose the last commits — the ledger then under-claims, which is safe:
a tag missing from it is checked with a ``HEAD`` and never deleted).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

from adapters.base import AdapterError, EndpointConfig, RegistryAdapter
from adapters.generic import DockerRegistryAdapter
from adapters.oci.errors import OciError, Transient
from engine.copier import Copier
from engine.destination import Destination
from engine.filters import Filter
from engine.plan import PolicySpec
from engine.planning import plan_policy
from engine.tasks import (
    delete_replicated,
    failed_listing,
    retry_delay,
    roll_up,
    task_tags,
    tasks_from_plan,
)

__all__ = ["SyncResult", "SyncSide", "sync_once"]

KEEP_RUNS = 20  # finished runs whose tasks are kept in the state file


@dataclass(frozen=True)
class SyncSide:
    """``http[s]://host[:port]/optional/prefix`` plus credentials."""

    url: str
    username: str | None = None
    password: str | None = None
    insecure: bool = False
    #: the registry's adapter type; "" = ``oci-layout`` for a ``file://`` URL, else any OCI
    #: registry (``docker-registry``, whose tag deletes are tried, not assumed away)
    type: str = ""

    @property
    def is_layout(self) -> bool:
        return self.url.startswith("file:")

    @property
    def base(self) -> str:
        """Where the registry is: scheme and host (a layout: its whole root directory)."""
        if self.is_layout:
            return self.url.rstrip("/")
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def prefix(self) -> str:
        """The repository namespace the URL names (none for a layout root)."""
        return "" if self.is_layout else urlsplit(self.url).path.strip("/")

    def adapter(self) -> RegistryAdapter:
        """The side's adapter: its ``type``, else ``oci-layout`` for a ``file://`` URL, else
        any OCI registry (``docker-registry``).

        :raises AdapterError: unknown type, or a URL or settings the type cannot work with.
        """
        config = EndpointConfig(
            self.base, username=self.username, password=self.password, insecure=self.insecure
        )
        kind = self.type or ("oci-layout" if self.is_layout else "")
        if not kind:
            return DockerRegistryAdapter(config)
        from adapters import registry  # loads the plugins only when a type is asked for

        return registry.create(kind, config)


@dataclass(frozen=True)
class SyncResult:
    status: str
    status_text: str
    counts: dict[str, int]
    bytes_copied: int
    seconds: float
    tasks: list[dict[str, object]]
    resumed: bool = False  # this run carried out an interrupted run's plan


async def sync_once(
    src: SyncSide,
    dst: SyncSide,
    state_dir: Path,
    *,
    dry_run: bool = False,
    deletion: bool = False,
    override: bool = True,
    filters: list[dict[str, object]] | None = None,
    artifact_concurrency: int = 8,
    blob_concurrency: int = 8,
    verify: bool = False,
) -> SyncResult:
    """Run once (or finish the interrupted run); ``state_dir`` (an existing folder) keeps the
    state. ``verify`` checks every destination tag instead of trusting the ledger."""
    started = time.perf_counter()
    spec = _spec(src, dst, deletion, override, filters or [])
    settings = json.dumps(
        {
            "src": src.url,
            "dst": dst.url,
            "deletion": deletion,
            "override": override,
            "filters": filters or [],
        },
        sort_keys=True,
    )
    with SyncState.open(state_dir) as state:
        run_id = None if dry_run else state.interrupted_run(settings)
        resumed = run_id is not None
        source, target = src.adapter(), dst.adapter()
        # a plain URL's registry type is unknown: its tag deletes are tried, not assumed away
        try_tag_delete = not (dst.type or dst.is_layout)
        try:
            if run_id is None:
                run_id = await _plan_run(state, spec, source, target, settings, dry_run, verify)
            destination = await Destination.open(target)
            copier = Copier(
                source.client(),
                destination.client,
                blob_concurrency=blob_concurrency,
                mount=destination.capabilities.blob_mount,
                referrers_api=destination.capabilities.referrers_api,
            )
            if try_tag_delete:
                destination.capabilities = replace(destination.capabilities, delete_tag=True)
            await _work(state, run_id, spec, copier, destination, artifact_concurrency)
        finally:
            with anyio.CancelScope(shield=True):
                await source.close()
                await target.close()
        status, status_text = state.finish_run(run_id)
        tasks = state.tasks(run_id)
        state.prune(KEEP_RUNS)
    counts: dict[str, int] = {}
    for t in tasks:
        key = str(t.get("outcome") or t.get("status"))
        counts[key] = counts.get(key, 0) + 1
    return SyncResult(
        status,
        status_text,
        counts,
        sum(int(t.get("bytes_copied") or 0) for t in tasks),
        time.perf_counter() - started,
        tasks,
        resumed,
    )


def _spec(
    src: SyncSide, dst: SyncSide, deletion: bool, override: bool, filters: list[dict[str, object]]
) -> PolicySpec:
    """The policy of a sync: everything under SRC's prefix, mapped under DST's prefix."""
    prefix = src.prefix
    raw: list[dict[str, object]] = [{"type": "name", "value": f"{prefix}/**"}] if prefix else []
    return PolicySpec(
        policy_id=1,
        filters=tuple(Filter.from_harbor(f) for f in raw + filters),
        dest_namespace=dst.prefix,
        dest_namespace_replace_count=len(prefix.split("/")) if prefix else 0,
        override=override,
        deletion=deletion,
    )


async def _plan_run(
    state: SyncState,
    spec: PolicySpec,
    src: RegistryAdapter,
    dst: RegistryAdapter,
    settings: str,
    dry_run: bool,
    verify: bool,
) -> int:
    """List both sides, plan, and write the run with its tasks; returns the run's id."""
    status_text = ""
    try:
        plan = await plan_policy(spec, src, dst, state.ledger(), verify=verify)
    except OciError as e:
        failed = failed_listing(f"listing failed: {e}")
        return state.create_run(settings, dry_run, [failed], f"listing failed: {e}")
    rows = tasks_from_plan(plan, dry_run)
    if plan.problems:
        status_text = "source listing incomplete: no deletion was done"
    if plan.deletions_blocked:
        status_text = plan.deletions_blocked
    return state.create_run(settings, dry_run, rows, status_text)


async def _work(
    state: SyncState,
    run_id: int,
    spec: PolicySpec,
    copier: Copier,
    dst: Destination,
    concurrency: int,
) -> None:
    """Carry out the run's unfinished tasks, ``concurrency`` at a time. On cancellation the
    tasks in flight stay unfinished: the next run resumes them."""
    slots = anyio.Semaphore(concurrency)
    async with anyio.create_task_group() as tg:
        for task in state.unfinished_tasks(run_id):
            tg.start_soon(_one, state, spec, copier, dst, task, slots)


async def _one(
    state: SyncState,
    spec: PolicySpec,
    copier: Copier,
    dst: Destination,
    task: dict[str, Any],
    slots: anyio.Semaphore,
) -> None:
    tid, attempts = int(task["id"]), int(task["attempts"])
    lines: list[str] = [task["log"]] if task.get("log") else []

    def note(msg: str) -> None:
        lines.append(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {msg}")

    while True:
        attempts += 1
        try:
            async with slots:
                state.start_task(tid, attempts)
                outcome, nbytes = await _execute(state, spec, copier, dst, task, note)
            state.finish_task(tid, "Succeed", outcome, "", "\n".join(lines), nbytes)
            return
        except (OciError, AdapterError, OSError) as e:
            note(f"error: {e}")
            delay = retry_delay(attempts) if isinstance(e, Transient) else None
            if delay is not None:
                await anyio.sleep(delay)
                continue
            state.finish_task(tid, "Failed", "failed", str(e), "\n".join(lines), 0)
            return


async def _execute(
    state: SyncState,
    spec: PolicySpec,
    copier: Copier,
    dst: Destination,
    task: dict[str, Any],
    note: Callable[[str], None],
) -> tuple[str, int]:
    tags = task_tags(task)
    if task["operation"] == "deletion":
        outcome = await _delete(state, dst, task["dst_repository"], tags[0], task["digest"], note)
        return outcome, 0
    await dst.prepare(task["dst_repository"])
    result = await copier.copy(
        task["src_repository"], task["dst_repository"], task["digest"], tags, note
    )
    state.record_replicated(task["dst_repository"], tags, task["digest"])
    note(result.summary())
    return "copied", result.bytes_copied


async def _delete(
    state: SyncState,
    dst: Destination,
    repo: str,
    tag: str,
    digest: str,
    note: Callable[[str], None],
) -> str:
    outcome, forget = await delete_replicated(
        dst.client, repo, tag, digest, note, delete_tag=dst.capabilities.delete_tag
    )
    if forget:
        state.forget_replicated(repo, tag)
    return outcome


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
                "UPDATE task SET status = 'Stopped', outcome = 'stopped', end_time = ? "
                "WHERE run_id = ? AND status IN ('Pending', 'InProgress')",
                (_now(), row["id"]),
            )
        self.finish_run(int(row["id"]), "superseded by a run with other settings")
        return None

    def create_run(
        self, settings: str, dry_run: bool, rows: list[dict[str, Any]], status_text: str
    ) -> int:
        with self._transaction() as c:
            cur = c.execute(
                "INSERT INTO run (settings, dry_run, status, status_text, started_at) "
                "VALUES (?, ?, 'InProgress', ?, ?)",
                (settings, int(dry_run), status_text, _now()),
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
        if not text and status == "Succeed" and not counts:
            text = "no resources need to be replicated"
        ended = None if status == "InProgress" else _now()
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

    def unfinished_tasks(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM task WHERE run_id = ? AND status IN ('Pending', 'InProgress') "
            "ORDER BY id",
            (run_id,),
        ).fetchall()
        return [dict(r) for r in rows]

    def tasks(self, run_id: int) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM task WHERE run_id = ? ORDER BY id", (run_id,))
        return [dict(r) for r in rows.fetchall()]

    def start_task(self, task_id: int, attempts: int) -> None:
        with self._transaction() as c:
            c.execute(
                "UPDATE task SET status = 'InProgress', attempts = ?, "
                "start_time = coalesce(start_time, ?) WHERE id = ?",
                (attempts, _now(), task_id),
            )

    def finish_task(
        self, task_id: int, status: str, outcome: str, reason: str, log: str, bytes_copied: int
    ) -> None:
        with self._transaction() as c:
            c.execute(
                "UPDATE task SET status = ?, outcome = ?, reason = ?, log = ?, bytes_copied = ?, "
                "end_time = ? WHERE id = ?",
                (status, outcome, reason[:2000], log, bytes_copied, _now(), task_id),
            )

    # -- ledger --------------------------------------------------------------------------------

    def ledger(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for repo, tag, digest in self.db.execute("SELECT dst_repository, tag, digest FROM ledger"):
            out.setdefault(repo, {})[tag] = digest
        return out

    def record_replicated(self, dst_repo: str, tags: tuple[str, ...], digest: str) -> None:
        with self._transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?)",
                [(dst_repo, tag, digest, _now()) for tag in tags],
            )

    def forget_replicated(self, dst_repo: str, tag: str) -> None:
        with self._transaction() as c:
            c.execute("DELETE FROM ledger WHERE dst_repository = ? AND tag = ?", (dst_repo, tag))
