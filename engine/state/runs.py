"""Executions and tasks in the database: creation, leases, heartbeats, outcomes, roll-up.

Leases make progress survive a dead worker: a node owns an execution (and each task it runs)
until ``lease_expires``; it renews the lease while working. Another node (or the same one after a
restart) takes over whatever lease has expired: tasks still ``Pending`` or ``InProgress`` are
run again, finished ones never are. Every lease and every time written here is the database's
(:mod:`registry.meta.leases`): a node whose clock runs ahead or behind takes nobody's work.

Claims are serialised per policy: two nodes never run two whole-policy runs (or two
event-scoped runs) of one policy at once (:mod:`engine.state.claims`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, func, insert, or_, select, tuple_, update

from engine.scope import EventTuple, Scope, scopes_for
from engine.state import claims
from engine.state.models import EventRetry, Execution, Policy, Replicated, Task
from engine.state.retries import queue_due_retries, settle_retry
from engine.state.rows import ExecutionRow, PolicyRow
from engine.state.status import (
    ACTIVE_EXECUTION,
    ACTIVE_TASK,
    ExecutionStatus,
    TaskOutcome,
    TaskStatus,
)
from engine.taskrun import LeasedTask
from engine.tasks import LedgerEntry, roll_up
from registry.meta.db import Database, SqlConnection
from registry.meta.leases import clock_skew, db_now, db_time_in, lease_held, lease_seconds
from registry.meta.models import utcnow
from registry.meta.prepared import one_of, prepared

__all__ = ["SKIPPED_TEXT", "RunStore", "enqueue_events", "enqueue_scoped"]

X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
L = Replicated.__table__  # type: ignore[attr-defined]
R = EventRetry.__table__  # type: ignore[attr-defined]

_log = logging.getLogger("seawall.engine")

LEASE = timedelta(seconds=30)
#: Harbor 2.14's text for a run skipped by ``single_active_replication`` (recorded ``Failed``);
#: tools filter on it.
SKIPPED_TEXT = "Execution skipped: active replication still in progress."


_FINISH = prepared(
    update(T)
    .where(
        T.c.id == bindparam("tid"),
        # a task another node has leased since (this node stalled past its lease) is theirs
        or_(T.c.lease_owner == bindparam("owner"), T.c.lease_owner.is_(None)),
    )
    .values(
        status=bindparam("b_status"),
        outcome=bindparam("b_outcome"),
        reason=bindparam("b_reason"),
        log=bindparam("b_log"),
        bytes_copied=bindparam("b_bytes"),
        end_time=db_now(),
        lease_owner=None,
        lease_expires=None,
    )
)
_EXECUTION = prepared(select(X).where(X.c.id == bindparam("eid")))
_POLICY = prepared(select(P).where(P.c.id == bindparam("pid")))
_STOP_REQUESTED = prepared(select(X.c.stop_requested).where(X.c.id == bindparam("eid")))
_UNFINISHED = prepared(
    select(func.count()).where(
        T.c.execution_id == bindparam("eid"), one_of(T.c.status, ACTIVE_TASK)
    )
)
_ADD_TASKS = prepared(insert(T))
_PLANNED = prepared(update(X).where(X.c.id == bindparam("eid")).values(planned=True))
#: a run's counts (and status, status text) as its tasks stand: the columns come as parameters
_ROLL_UP = prepared(update(X).where(X.c.id == bindparam("eid")))
#: as _ROLL_UP, for a run that ends
_CLOSE = prepared(
    update(X)
    .where(X.c.id == bindparam("eid"))
    .values(end_time=db_now(), lease_owner=None, lease_expires=None)
)


#: A run planned with at most this many tasks has its tasks written and recounted on the
#: database's quick path (inline on the event loop on SQLite); a larger one in a worker thread.
QUICK_TASKS = 500


class RunStore:
    """A node's view of executions and tasks: ``node_id`` owns its leases, each ``lease`` long.

    ``clock`` is this node's clock, for what is local to the node only: no lease, expiry or
    stored time comes from it (they are the database's), so a node whose clock is wrong by
    minutes still takes nobody's work. :meth:`clock_skew` says how wrong it is.
    """

    def __init__(
        self,
        db: Database,
        node_id: str,
        lease: timedelta = LEASE,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db, self.node_id, self.lease, self.clock = db, node_id, lease, clock
        #: runs planned on this node with at most QUICK_TASKS tasks: their statements are
        #: bounded, so they run on the database's quick path (see ``Database.quick_write``)
        self._small_runs: set[int] = set()

    async def clock_skew(self) -> timedelta:
        """How far this node's clock is ahead of the database's (negative: behind)."""
        async with self.db.read() as c:
            return await clock_skew(c, self.clock())

    # ------------------------------------------------------------------ executions
    async def create_execution(
        self,
        policy_id: int,
        trigger: str,
        dry_run: bool = False,
        *,
        scope: str = "",
        status: ExecutionStatus = ExecutionStatus.PENDING,
        status_text: str = "",
    ) -> int:
        """A new execution. ``status`` other than ``Pending`` records a run that will not
        happen (e.g. ``Stopped``: a scheduled firing skipped because a run was active)."""
        async with self.db.write() as c:
            res = await c.execute(
                insert(X).values(
                    policy_id=policy_id,
                    trigger=trigger,
                    dry_run=dry_run,
                    status=status,
                    status_text=status_text,
                    scope_json=scope,
                    start_time=db_now(),
                    end_time=None if status in ACTIVE_EXECUTION else db_now(),
                )
            )
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    async def active_execution(self, policy_id: int) -> int | None:
        """An unfinished whole-policy run of the policy, if any."""
        async with self.db.read() as c:
            row = (
                await c.execute(
                    select(X.c.id)
                    .where(
                        X.c.policy_id == policy_id,
                        X.c.status.in_(ACTIVE_EXECUTION),
                        X.c.scope_json == "",
                    )
                    .limit(1)
                )
            ).first()
            return int(row[0]) if row else None

    async def requeue_scope(self, policy_id: int, scope: Scope) -> int:
        """Queue an event-scoped run again (after a failed one)."""
        async with self.db.quick_write() as c:
            return await enqueue_scoped(c, policy_id, "event_based", scope)

    async def queued_execution(self, policy_id: int) -> int | None:
        """A whole-policy run of the policy that no node has started yet, if any."""
        async with self.db.read() as c:
            row = (
                await c.execute(
                    select(X.c.id)
                    .where(
                        X.c.policy_id == policy_id,
                        X.c.status == ExecutionStatus.PENDING,
                        X.c.lease_owner.is_(None),
                        X.c.scope_json == "",
                        X.c.dry_run.is_(False),
                    )
                    .limit(1)
                )
            ).first()
            return int(row[0]) if row else None

    async def claim_execution(self) -> int | None:
        """Take the oldest active execution whose lease is free or expired.

        Runs of one policy never overlap, whichever nodes claim them at once: a whole-policy
        run waits while another whole-policy run of the same policy is in progress (it is
        queued), and so does an event-scoped run behind another event-scoped run (events
        arriving meanwhile merge into it, see :func:`enqueue_scoped`). A scoped run does not
        wait for a long whole-policy run. A run whose node died (its lease passed) is taken
        over before a newer run of its policy starts. See :mod:`engine.state.claims`.
        """
        async with self.db.quick_write() as c:
            return await claims.claim_run(c, self.node_id, lease_seconds(self.lease))

    async def claim_executions(self, limit: int) -> list[int]:
        """Claim up to ``limit`` runs in one transaction, as :meth:`claim_execution` would one
        after another (the same rule between them)."""
        if limit <= 0:
            return []
        async with self.db.quick_write() as c:
            return await claims.claim_runs(c, self.node_id, lease_seconds(self.lease), limit)

    async def execution_to_help(self) -> int | None:
        """A run in progress on another node with tasks waiting: this node can take some."""
        waiting = (
            select(T.c.id)
            .where(T.c.execution_id == X.c.id, T.c.status == TaskStatus.PENDING)
            .exists()
        )
        async with self.db.read() as c:
            row = (
                await c.execute(
                    select(X.c.id)
                    .where(
                        X.c.status == ExecutionStatus.IN_PROGRESS,
                        X.c.planned.is_(True),
                        X.c.dry_run.is_(False),
                        X.c.stop_requested.is_(False),
                        X.c.lease_owner != self.node_id,
                        lease_held(X.c.lease_expires),
                        waiting,
                    )
                    .order_by(X.c.id)
                    .limit(1)
                )
            ).first()
            return int(row[0]) if row else None

    async def unfinished_tasks(self, execution_id: int) -> int:
        """Tasks still pending or running (on any node)."""
        async with self.db.quick_read() as c:
            return int((await c.execute(_UNFINISHED, {"eid": execution_id})).scalar_one())

    async def renew_execution(self, execution_id: int) -> bool:
        """Extend our lease; False when another node has taken the execution over."""
        async with self.db.quick_write() as c:
            res = await c.execute(
                update(X)
                .where(X.c.id == execution_id, X.c.lease_owner == self.node_id)
                .values(lease_expires=db_time_in(self.lease))
            )
            return bool(res.rowcount)

    async def execution(self, execution_id: int) -> ExecutionRow | None:
        async with self.db.quick_read() as c:
            row = (await c.execute(_EXECUTION, {"eid": execution_id})).mappings().first()
            return ExecutionRow.from_mapping(row) if row else None

    async def policy(self, policy_id: int) -> PolicyRow | None:
        async with self.db.quick_read() as c:
            row = (await c.execute(_POLICY, {"pid": policy_id})).mappings().first()
            return PolicyRow.from_mapping(row) if row else None

    async def stop_requested(self, execution_id: int) -> bool:
        async with self.db.quick_read() as c:
            return bool((await c.execute(_STOP_REQUESTED, {"eid": execution_id})).scalar())

    # ------------------------------------------------------------------ tasks
    async def add_tasks(self, execution_id: int, tasks: Sequence[dict[str, Any]]) -> None:
        """Write the planned tasks and mark the execution planned, in one transaction."""
        small = len(tasks) <= QUICK_TASKS
        if small:  # its end is recounted inline too (see finalize)
            self._small_runs.add(execution_id)
        async with self.db.quick_write() if small else self.db.write() as c:
            if tasks:
                await c.execute(_ADD_TASKS, [{"execution_id": execution_id, **t} for t in tasks])
            await c.execute(_PLANNED, {"eid": execution_id})

    async def lease_task(self, execution_id: int) -> LeasedTask | None:
        """Lease a pending task, or an in-progress one whose lease expired (its worker died);
        the task as leased (``attempts`` counts the attempt just started), or None."""
        async with self.db.quick_write() as c:
            return await claims.lease_task(c, execution_id, self.node_id, lease_seconds(self.lease))

    async def lease_tasks(self, execution_id: int, limit: int) -> list[LeasedTask]:
        """Lease up to ``limit`` tasks (pending, or whose lease expired) in one transaction."""
        async with self.db.quick_write() as c:
            return await claims.lease_tasks(
                c, execution_id, self.node_id, lease_seconds(self.lease), limit
            )

    async def renew_tasks(self, task_ids: Sequence[int]) -> None:
        if not task_ids:
            return
        async with self.db.quick_write() as c:
            await c.execute(
                update(T)
                .where(T.c.id.in_(list(task_ids)), T.c.lease_owner == self.node_id)
                .values(lease_expires=db_time_in(self.lease))
            )

    async def finish_task(
        self,
        task_id: int,
        status: TaskStatus,
        outcome: str,
        reason: str,
        log: str,
        bytes_copied: int,
        replicated: LedgerEntry | None = None,
    ) -> None:
        """End a task; ``replicated`` (what it put at the destination) goes into the ledger in
        the same transaction. A task another node has leased since (this one stalled past its
        lease) is left to that node: nothing is written."""
        async with self.db.quick_write() as c:
            ended = await c.execute(
                _FINISH,
                {
                    "tid": task_id,
                    "owner": self.node_id,
                    "b_status": status,
                    "b_outcome": outcome,
                    "b_reason": reason[:2000],
                    "b_log": log,
                    "b_bytes": bytes_copied,
                },
            )
            if not ended.rowcount:
                _log.warning("task %s: another node leased it meanwhile; left to it", task_id)
                return
            if replicated is not None:
                await _record_replicated(c, replicated)

    async def stop_pending(self, execution_id: int) -> None:
        async with self.db.write() as c:
            await c.execute(
                update(T)
                .where(T.c.execution_id == execution_id, T.c.status.in_(ACTIVE_TASK))
                .values(status=TaskStatus.STOPPED, outcome=TaskOutcome.STOPPED, end_time=db_now())
            )

    async def finalize(self, execution_id: int, status_text: str | None = None) -> ExecutionStatus:
        """Recount the tasks, roll the status up and (when nothing is active) close the run;
        a run that ends settles its event retries in the same transaction (see
        :mod:`engine.state.retries`)."""
        small = execution_id in self._small_runs  # planned here with few tasks
        async with self.db.quick_write() if small else self.db.write() as c:
            before = (await c.execute(_EXECUTION, {"eid": execution_id})).mappings().first()
            counts, skipped, copied = await _task_totals(c, execution_id)
            status = roll_up(counts)
            values: dict[str, Any] = {
                "status": status,
                "total": sum(counts.values()),
                "succeed": counts.get(TaskStatus.SUCCEED, 0),
                "failed": counts.get(TaskStatus.FAILED, 0),
                "stopped": counts.get(TaskStatus.STOPPED, 0),
                "in_progress": sum(counts.get(s, 0) for s in ACTIVE_TASK),
                "skipped": skipped,
                "bytes_copied": copied,
            }
            if status_text is not None:
                values["status_text"] = status_text
            elif status == ExecutionStatus.SUCCEED and not counts:
                values["status_text"] = "no resources need to be replicated"
            # the run as it ends now (its event retries are settled with it), else None
            ending = None
            if status not in ACTIVE_EXECUTION:
                run = ExecutionRow.from_mapping(before) if before is not None else None
                ending = replace(run, **values) if run is not None and run.active else None
            close = _ROLL_UP if status in ACTIVE_EXECUTION else _CLOSE
            await c.execute(close, {"eid": execution_id, **values})
            if ending is not None:
                await settle_retry(c, ending, status)
        if status not in ACTIVE_EXECUTION:
            self._small_runs.discard(execution_id)
        return status

    async def queue_due_retries(self) -> list[int]:
        """Queue the runs of event retries that are due (any node's); their execution ids."""
        async with self.db.read() as c:  # idle polls never take the write lock
            due = (await c.execute(select(R.c.id).where(R.c.due_at <= db_now()).limit(1))).first()
        if due is None:
            return []
        async with self.db.write() as c:
            return await queue_due_retries(c)

    # ------------------------------------------------------------------ ledger
    async def ledger(self, policy_id: int) -> dict[str, dict[str, str]]:
        """What the policy put at the destination: ``{dst repository: {tag: digest}}``."""
        async with self.db.read() as c:
            query = select(L.c.dst_repository, L.c.tag, L.c.digest).where(
                L.c.policy_id == policy_id
            )
            return _ledger_rows((await c.execute(query)).all())

    async def scoped_ledger(
        self,
        policy_id: int,
        repos: Collection[str],
        tags: Mapping[str, Collection[str]],
        *,
        count: bool = True,
    ) -> tuple[dict[str, dict[str, str]], int | None]:
        """:meth:`ledger` narrowed to an event run's scope — ``repos`` whole and the ``tags``
        named in the others — and, with ``count``, how many tags the whole ledger holds (the
        deletion guard's base; None without): what such a run reads does not grow with
        everything the policy replicated."""
        rows: list[Any] = []
        size = None
        # a run's tags are few; a whole repository's (or the whole ledger's count) may not be
        quick = not repos and not count
        async with self.db.quick_read() if quick else self.db.read() as c:
            for query in _ledger_slices(policy_id, repos, tags):
                rows += (await c.execute(query)).all()
            if count:
                total = select(func.count()).select_from(L).where(L.c.policy_id == policy_id)
                size = int((await c.execute(total)).scalar_one())
        return _ledger_rows(rows), size

    async def forget_replicated(self, policy_id: int, dst_repo: str, tag: str) -> None:
        async with self.db.write() as c:
            await c.execute(
                delete(L).where(
                    L.c.policy_id == policy_id, L.c.dst_repository == dst_repo, L.c.tag == tag
                )
            )


def _ledger_rows(rows: Sequence[Any]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for repo, tag, digest in rows:
        out.setdefault(repo, {})[tag] = digest
    return out


#: Keys per ledger query of an event run's scope (bound parameters stay well under any limit).
LEDGER_KEYS_PER_QUERY = 400


def _ledger_slices(
    policy_id: int, repos: Collection[str], tags: Mapping[str, Collection[str]]
) -> list[Any]:
    """The queries reading ``repos`` whole and the ``tags`` named in the others."""
    columns = (L.c.dst_repository, L.c.tag, L.c.digest)
    whole = sorted(set(repos))
    pairs = sorted({(r, t) for r, named in tags.items() if r not in repos for t in named})
    n = LEDGER_KEYS_PER_QUERY
    return [
        *(
            select(*columns).where(
                L.c.policy_id == policy_id, L.c.dst_repository.in_(whole[i : i + n])
            )
            for i in range(0, len(whole), n)
        ),
        *(
            select(*columns).where(
                L.c.policy_id == policy_id,
                tuple_(L.c.dst_repository, L.c.tag).in_(pairs[i : i + n]),
            )
            for i in range(0, len(pairs), n)
        ),
    ]


_TOTALS = prepared(
    select(
        T.c.status,
        func.count(),
        func.sum(case((T.c.outcome.like("skipped%"), 1), else_=0)),
        func.coalesce(func.sum(T.c.bytes_copied), 0),
    )
    .where(T.c.execution_id == bindparam("eid"))
    .group_by(T.c.status)
)


async def _task_totals(c: SqlConnection, execution_id: int) -> tuple[dict[str, int], int, int]:
    """A run's tasks in one query: count by status, how many were skipped, bytes copied."""
    counts: dict[str, int] = {}
    skipped = copied = 0
    for status, n, skips, size in (await c.execute(_TOTALS, {"eid": execution_id})).all():
        counts[str(status)] = int(n)
        skipped += int(skips or 0)
        copied += int(size or 0)
    return counts, skipped, copied


@functools.cache
def _record_statement(dialect: str) -> Any:
    """Upsert of a ledger row (SQLite and PostgreSQL share the ``ON CONFLICT`` form)."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert_of = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_of(L).values(
        policy_id=bindparam("b_policy"),
        dst_repository=bindparam("b_repo"),
        tag=bindparam("b_tag"),
        digest=bindparam("b_digest"),
        updated_at=db_now(),
    )
    return prepared(
        stmt.on_conflict_do_update(
            index_elements=[L.c.policy_id, L.c.dst_repository, L.c.tag],
            set_={"digest": stmt.excluded.digest, "updated_at": stmt.excluded.updated_at},
        )
    )


async def _record_replicated(c: SqlConnection, r: LedgerEntry) -> None:
    if not r.tags:
        return
    await c.execute(
        _record_statement(c.dialect.name),
        [
            {
                "b_policy": r.policy_id,
                "b_repo": r.dst_repository,
                "b_tag": t,
                "b_digest": r.digest,
            }
            for t in r.tags
        ],
    )


async def enqueue_events(
    c: SqlConnection, source_registry_id: int | None, events: Sequence[EventTuple]
) -> list[int]:
    """Queue event-scoped runs of the enabled ``event_based`` policies whose source is
    ``source_registry_id`` (None: the local registry) for ``events``, inside the caller's
    transaction; returns the runs' ids."""
    if source_registry_id is None:
        found = await c.execute(_LOCAL_EVENT_POLICIES)
    else:
        found = await c.execute(_EVENT_POLICIES, {"rid": source_registry_id})
    policies = found.mappings()
    return [
        await enqueue_scoped(c, pid, "event_based", scope)
        for pid, scope in scopes_for([dict(p) for p in policies], events).items()
    ]


async def enqueue_scoped(
    c: SqlConnection,
    policy_id: int,
    trigger: str,
    scope: Scope,
    now: datetime | None = None,
) -> int:
    """Queue an event-scoped run of ``policy_id`` inside the caller's transaction: merged into
    the policy's scoped run that no node has claimed yet, else a new one. Returns its id.
    ``now``: the new run's start time (default: the database's time)."""
    row = (await c.execute(_QUEUED_SCOPED, {"pid": policy_id})).first()
    if row is not None:
        merged = Scope.from_json(row[1]).merge(scope).to_json()
        res = await c.execute(_MERGE_SCOPE, {"eid": row[0], "b_scope": merged})
        if res.rowcount:
            return int(row[0])
    values = {"pid": policy_id, "b_trigger": trigger, "b_scope": scope.to_json()}
    if now is None:
        res = await c.execute(_QUEUE_SCOPED, values)
    else:
        res = await c.execute(_QUEUE_SCOPED_AT, {**values, "b_start": now})
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def _event_policies(source: Any) -> Any:
    return prepared(
        select(P.c.id, P.c.filters_json, P.c.deletion).where(
            P.c.enabled.is_(True), P.c.trigger_type == "event_based", source
        )
    )


_LOCAL_EVENT_POLICIES = _event_policies(P.c.src_registry_id.is_(None))
_EVENT_POLICIES = _event_policies(P.c.src_registry_id == bindparam("rid"))

#: the policy's scoped run that no node has claimed yet (PostgreSQL: a concurrent merge into
#: the same run waits here and then reads the merged scope — read-merge-write would otherwise
#: lose one of them)
_QUEUED_SCOPED = prepared(
    select(X.c.id, X.c.scope_json)
    .where(
        X.c.policy_id == bindparam("pid"),
        X.c.status == ExecutionStatus.PENDING,
        X.c.lease_owner.is_(None),
        X.c.scope_json != "",
        X.c.dry_run.is_(False),
        X.c.stop_requested.is_(False),
    )
    .order_by(X.c.id)
    .limit(1)
    .with_for_update()
)
_MERGE_SCOPE = prepared(
    update(X)
    .where(
        X.c.id == bindparam("eid"),
        X.c.status == ExecutionStatus.PENDING,
        X.c.lease_owner.is_(None),
        X.c.stop_requested.is_(False),
    )
    .values(scope_json=bindparam("b_scope"))
)


def _queue_scoped(start: Any) -> Any:
    return prepared(
        insert(X).values(
            policy_id=bindparam("pid"),
            trigger=bindparam("b_trigger"),
            dry_run=False,
            status=ExecutionStatus.PENDING,
            scope_json=bindparam("b_scope"),
            start_time=start,
        )
    )


_QUEUE_SCOPED = _queue_scoped(db_now())
_QUEUE_SCOPED_AT = _queue_scoped(bindparam("b_start", type_=X.c.start_time.type))
