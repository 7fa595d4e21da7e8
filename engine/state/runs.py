"""Executions and tasks in the database: creation, leases, heartbeats, outcomes, roll-up.

Leases make progress survive a dead worker: a node owns an execution (and each task it runs)
until ``lease_expires``; it renews the lease while working. Another node (or the same one after a
restart) takes over whatever lease has expired: tasks still ``Pending`` or ``InProgress`` are
run again, finished ones never are.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.scope import EventTuple, Scope, scopes_for
from engine.state.models import EventRetry, Execution, Policy, Replicated, Task
from engine.state.retries import queue_due_retries, settle_retry
from engine.tasks import ACTIVE, LedgerEntry, roll_up
from registry.meta.db import Database
from registry.meta.models import utcnow

__all__ = ["SKIPPED_TEXT", "RunStore", "enqueue_events", "enqueue_scoped"]

X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
L = Replicated.__table__  # type: ignore[attr-defined]
R = EventRetry.__table__  # type: ignore[attr-defined]

LEASE = timedelta(seconds=30)
#: Harbor 2.14's text for a run skipped by ``single_active_replication`` (recorded ``Failed``);
#: tools filter on it.
SKIPPED_TEXT = "Execution skipped: active replication still in progress."


def _leasable() -> Any:
    return (T.c.status == "Pending") | (
        (T.c.status == "InProgress") & (T.c.lease_expires < bindparam("now"))
    )


def _lease_statement() -> Any:
    """Lease the first leasable task of a run in one ``UPDATE … RETURNING`` (built once:
    SQLAlchemy then reuses its compiled form). The task is picked by an uncorrelated scalar
    subquery, which PostgreSQL runs once; ``IN (SELECT … LIMIT 1 FOR UPDATE SKIP LOCKED)``
    would be re-run per row there and lease every task."""
    first = (
        select(T.c.id)
        .where(T.c.execution_id == bindparam("eid"), _leasable())
        .order_by(T.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)  # PostgreSQL: nodes leasing at once take different rows
        .scalar_subquery()
    )
    return (
        update(T)
        .where(T.c.id == first, _leasable())
        .values(
            status="InProgress",
            lease_owner=bindparam("owner"),
            lease_expires=bindparam("expires"),
            attempts=T.c.attempts + 1,
            start_time=func.coalesce(T.c.start_time, bindparam("now")),
        )
        .returning(*T.c)
    )


_LEASE = _lease_statement()
_FINISH = (
    update(T)
    .where(T.c.id == bindparam("tid"))
    .values(
        status=bindparam("b_status"),
        outcome=bindparam("b_outcome"),
        reason=bindparam("b_reason"),
        log=bindparam("b_log"),
        bytes_copied=bindparam("b_bytes"),
        end_time=bindparam("b_end"),
        lease_owner=None,
        lease_expires=None,
    )
)


class RunStore:
    def __init__(self, db: Database, node_id: str, lease: timedelta = LEASE) -> None:
        self.db, self.node_id, self.lease = db, node_id, lease

    # ------------------------------------------------------------------ executions
    async def create_execution(
        self,
        policy_id: int,
        trigger: str,
        dry_run: bool = False,
        *,
        scope: str = "",
        status: str = "Pending",
        status_text: str = "",
    ) -> int:
        """A new execution. ``status`` other than ``Pending`` records a run that will not
        happen (e.g. ``Stopped``: a scheduled firing skipped because a run was active)."""
        now = utcnow()
        async with self.db.write() as c:
            res = await c.execute(
                insert(X).values(
                    policy_id=policy_id,
                    trigger=trigger,
                    dry_run=dry_run,
                    status=status,
                    status_text=status_text,
                    scope_json=scope,
                    start_time=now,
                    end_time=None if status in ACTIVE else now,
                )
            )
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    async def active_execution(self, policy_id: int) -> int | None:
        """An unfinished whole-policy run of the policy, if any."""
        async with self.db.read() as c:
            row = (
                await c.execute(
                    select(X.c.id)
                    .where(X.c.policy_id == policy_id, X.c.status.in_(ACTIVE), X.c.scope_json == "")
                    .limit(1)
                )
            ).first()
            return int(row[0]) if row else None

    async def requeue_scope(self, policy_id: int, scope: Scope) -> int:
        """Queue an event-scoped run again (after a failed one)."""
        async with self.db.write() as c:
            return await enqueue_scoped(c, policy_id, "event_based", scope, utcnow())

    async def queued_execution(self, policy_id: int) -> int | None:
        """A whole-policy run of the policy that no node has started yet, if any."""
        async with self.db.read() as c:
            row = (
                await c.execute(
                    select(X.c.id)
                    .where(
                        X.c.policy_id == policy_id,
                        X.c.status == "Pending",
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

        Runs of one policy never overlap: a whole-policy run waits while another whole-policy
        run of the same policy is in progress (it is queued), and so does an event-scoped run
        behind another event-scoped run (events arriving meanwhile merge into it, see
        :func:`enqueue_scoped`). A scoped run does not wait for a long whole-policy run.
        """
        now = utcnow()
        other = X.alias("other")
        same_kind = or_(
            (other.c.scope_json == "") & (X.c.scope_json == ""),
            (other.c.scope_json != "") & (X.c.scope_json != ""),
        )
        busy = (
            select(other.c.id)
            .where(
                other.c.policy_id == X.c.policy_id,
                other.c.id != X.c.id,
                other.c.status == "InProgress",
                other.c.lease_expires >= now,
                same_kind,
            )
            .exists()
        )
        free = or_(X.c.lease_expires.is_(None), X.c.lease_expires < now)
        async with self.db.write() as c:
            row = (
                await c.execute(
                    select(X.c.id)
                    .where(X.c.status.in_(ACTIVE), free, ~busy)
                    .order_by(X.c.id)
                    .limit(1)
                )
            ).first()
            if row is None:
                return None
            res = await c.execute(
                update(X)
                .where(X.c.id == row[0], X.c.status.in_(ACTIVE), free)
                .values(
                    lease_owner=self.node_id,
                    lease_expires=now + self.lease,
                    status="InProgress",
                    status_text=case((X.c.status_text.like("queued:%"), ""), else_=X.c.status_text),
                )
            )
            return int(row[0]) if res.rowcount else None

    async def execution_to_help(self) -> int | None:
        """A run in progress on another node with tasks waiting: this node can take some."""
        now = utcnow()
        waiting = select(T.c.id).where(T.c.execution_id == X.c.id, T.c.status == "Pending").exists()
        async with self.db.read() as c:
            row = (
                await c.execute(
                    select(X.c.id)
                    .where(
                        X.c.status == "InProgress",
                        X.c.planned.is_(True),
                        X.c.dry_run.is_(False),
                        X.c.stop_requested.is_(False),
                        X.c.lease_owner != self.node_id,
                        X.c.lease_expires >= now,
                        waiting,
                    )
                    .order_by(X.c.id)
                    .limit(1)
                )
            ).first()
            return int(row[0]) if row else None

    async def unfinished_tasks(self, execution_id: int) -> int:
        """Tasks still pending or running (on any node)."""
        async with self.db.read() as c:
            return int(
                (
                    await c.execute(
                        select(func.count()).where(
                            T.c.execution_id == execution_id, T.c.status.in_(ACTIVE)
                        )
                    )
                ).scalar_one()
            )

    async def renew_execution(self, execution_id: int) -> bool:
        """Extend our lease; False when another node has taken the execution over."""
        async with self.db.write() as c:
            res = await c.execute(
                update(X)
                .where(X.c.id == execution_id, X.c.lease_owner == self.node_id)
                .values(lease_expires=utcnow() + self.lease)
            )
            return bool(res.rowcount)

    async def execution(self, execution_id: int) -> dict[str, Any] | None:
        async with self.db.read() as c:
            row = (await c.execute(select(X).where(X.c.id == execution_id))).mappings().first()
            return dict(row) if row else None

    async def policy(self, policy_id: int) -> dict[str, Any] | None:
        async with self.db.read() as c:
            row = (await c.execute(select(P).where(P.c.id == policy_id))).mappings().first()
            return dict(row) if row else None

    async def stop_requested(self, execution_id: int) -> bool:
        async with self.db.read() as c:
            return bool(
                (await c.execute(select(X.c.stop_requested).where(X.c.id == execution_id))).scalar()
            )

    # ------------------------------------------------------------------ tasks
    async def add_tasks(self, execution_id: int, tasks: Sequence[dict[str, Any]]) -> None:
        """Write the planned tasks and mark the execution planned, in one transaction."""
        async with self.db.write() as c:
            if tasks:
                await c.execute(insert(T), [{"execution_id": execution_id, **t} for t in tasks])
            await c.execute(update(X).where(X.c.id == execution_id).values(planned=True))

    async def lease_task(self, execution_id: int) -> dict[str, Any] | None:
        """Lease a pending task, or an in-progress one whose lease expired (its worker died);
        the row as leased (``attempts`` counts the attempt just started), or None."""
        now = utcnow()
        params = {
            "eid": execution_id,
            "now": now,
            "owner": self.node_id,
            "expires": now + self.lease,
        }
        async with self.db.write() as c:
            row = (await c.execute(_LEASE, params)).mappings().first()
            return dict(row) if row else None

    async def renew_tasks(self, task_ids: Sequence[int]) -> None:
        if not task_ids:
            return
        async with self.db.write() as c:
            await c.execute(
                update(T)
                .where(T.c.id.in_(list(task_ids)), T.c.lease_owner == self.node_id)
                .values(lease_expires=utcnow() + self.lease)
            )

    async def finish_task(
        self,
        task_id: int,
        status: str,
        outcome: str,
        reason: str,
        log: str,
        bytes_copied: int,
        replicated: LedgerEntry | None = None,
    ) -> None:
        """End a task; ``replicated`` (what it put at the destination) goes into the ledger in
        the same transaction."""
        async with self.db.write() as c:
            await c.execute(
                _FINISH,
                {
                    "tid": task_id,
                    "b_status": status,
                    "b_outcome": outcome,
                    "b_reason": reason[:2000],
                    "b_log": log,
                    "b_bytes": bytes_copied,
                    "b_end": utcnow(),
                },
            )
            if replicated is not None:
                await _record_replicated(c, replicated)

    async def stop_pending(self, execution_id: int) -> None:
        async with self.db.write() as c:
            await c.execute(
                update(T)
                .where(T.c.execution_id == execution_id, T.c.status.in_(ACTIVE))
                .values(status="Stopped", outcome="stopped", end_time=utcnow())
            )

    async def finalize(self, execution_id: int, status_text: str | None = None) -> str:
        """Recount the tasks, roll the status up and (when nothing is active) close the run;
        a run that ends settles its event retries in the same transaction (see
        :mod:`engine.state.retries`)."""
        async with self.db.write() as c:
            before = (await c.execute(select(X).where(X.c.id == execution_id))).mappings().first()
            counts: dict[str, int] = dict(
                (
                    await c.execute(
                        select(T.c.status, func.count())
                        .where(T.c.execution_id == execution_id)
                        .group_by(T.c.status)
                    )
                ).all()
            )
            skipped = (
                await c.execute(
                    select(func.count()).where(
                        T.c.execution_id == execution_id, T.c.outcome.like("skipped%")
                    )
                )
            ).scalar_one()
            copied = (
                await c.execute(
                    select(func.coalesce(func.sum(T.c.bytes_copied), 0)).where(
                        T.c.execution_id == execution_id
                    )
                )
            ).scalar_one()
            status = roll_up(counts)
            values: dict[str, Any] = {
                "status": status,
                "total": sum(counts.values()),
                "succeed": counts.get("Succeed", 0),
                "failed": counts.get("Failed", 0),
                "stopped": counts.get("Stopped", 0),
                "in_progress": counts.get("InProgress", 0) + counts.get("Pending", 0),
                "skipped": skipped,
                "bytes_copied": copied,
            }
            if status_text is not None:
                values["status_text"] = status_text
            elif status == "Succeed" and not counts:
                values["status_text"] = "no resources need to be replicated"
            if status not in ACTIVE:
                values.update(end_time=utcnow(), lease_owner=None, lease_expires=None)
            await c.execute(update(X).where(X.c.id == execution_id).values(**values))
            if before is not None and before["status"] in ACTIVE and status not in ACTIVE:
                await settle_retry(c, {**before, **values}, status)
            return status

    async def queue_due_retries(self) -> list[int]:
        """Queue the runs of event retries that are due (any node's); their execution ids."""
        async with self.db.read() as c:  # idle polls never take the write lock
            due = (await c.execute(select(R.c.id).where(R.c.due_at <= utcnow()).limit(1))).first()
        if due is None:
            return []
        async with self.db.write() as c:
            return await queue_due_retries(c)

    # ------------------------------------------------------------------ ledger
    async def ledger(self, policy_id: int) -> dict[str, dict[str, str]]:
        async with self.db.read() as c:
            rows = (
                await c.execute(
                    select(L.c.dst_repository, L.c.tag, L.c.digest).where(
                        L.c.policy_id == policy_id
                    )
                )
            ).all()
        out: dict[str, dict[str, str]] = {}
        for repo, tag, digest in rows:
            out.setdefault(repo, {})[tag] = digest
        return out

    async def forget_replicated(self, policy_id: int, dst_repo: str, tag: str) -> None:
        async with self.db.write() as c:
            await c.execute(
                delete(L).where(
                    L.c.policy_id == policy_id, L.c.dst_repository == dst_repo, L.c.tag == tag
                )
            )


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
        updated_at=bindparam("b_at"),
    )
    return stmt.on_conflict_do_update(
        index_elements=[L.c.policy_id, L.c.dst_repository, L.c.tag],
        set_={"digest": stmt.excluded.digest, "updated_at": stmt.excluded.updated_at},
    )


async def _record_replicated(c: AsyncConnection, r: LedgerEntry) -> None:
    if not r.tags:
        return
    now = utcnow()
    await c.execute(
        _record_statement(c.dialect.name),
        [
            {
                "b_policy": r.policy_id,
                "b_repo": r.dst_repository,
                "b_tag": t,
                "b_digest": r.digest,
                "b_at": now,
            }
            for t in r.tags
        ],
    )


async def enqueue_events(
    c: AsyncConnection, source_registry_id: int | None, events: Sequence[EventTuple]
) -> list[int]:
    """Queue event-scoped runs of the enabled ``event_based`` policies whose source is
    ``source_registry_id`` (None: the local registry) for ``events``, inside the caller's
    transaction; returns the runs' ids."""
    source = (
        P.c.src_registry_id.is_(None)
        if source_registry_id is None
        else P.c.src_registry_id == source_registry_id
    )
    policies = (
        await c.execute(
            select(P.c.id, P.c.filters_json, P.c.deletion).where(
                P.c.enabled.is_(True), P.c.trigger_type == "event_based", source
            )
        )
    ).mappings()
    now = utcnow()
    return [
        await enqueue_scoped(c, pid, "event_based", scope, now)
        for pid, scope in scopes_for([dict(p) for p in policies], events).items()
    ]


async def enqueue_scoped(
    c: AsyncConnection, policy_id: int, trigger: str, scope: Scope, now: datetime
) -> int:
    """Queue an event-scoped run of ``policy_id`` inside the caller's transaction: merged into
    the policy's scoped run that no node has claimed yet, else a new one. Returns its id."""
    row = (
        await c.execute(
            select(X.c.id, X.c.scope_json)
            .where(
                X.c.policy_id == policy_id,
                X.c.status == "Pending",
                X.c.lease_owner.is_(None),
                X.c.scope_json != "",
                X.c.dry_run.is_(False),
                X.c.stop_requested.is_(False),
            )
            .order_by(X.c.id)
            .limit(1)
            # PostgreSQL: a concurrent merge into the same run waits here and then reads the
            # merged scope (read-merge-write would otherwise lose one of them)
            .with_for_update()
        )
    ).first()
    if row is not None:
        merged = Scope.from_json(row[1]).merge(scope).to_json()
        res = await c.execute(
            update(X)
            .where(
                X.c.id == row[0],
                X.c.status == "Pending",
                X.c.lease_owner.is_(None),
                X.c.stop_requested.is_(False),
            )
            .values(scope_json=merged)
        )
        if res.rowcount:
            return int(row[0])
    res = await c.execute(
        insert(X).values(
            policy_id=policy_id,
            trigger=trigger,
            dry_run=False,
            status="Pending",
            scope_json=scope.to_json(),
            start_time=now,
        )
    )
    return int(res.inserted_primary_key[0])  # type: ignore[index]
