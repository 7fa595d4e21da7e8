"""How a node takes work from the shared database: claiming a run, leasing one of its tasks.

Both are leases on the database's clock (:mod:`registry.meta.leases`): a row is free when it
was never leased or its lease has passed by the database's time, and a new lease ends the
lease's length after the database's now — so a node whose clock is minutes ahead sees no
other node's lease as passed, and one whose clock is behind grants no lease that has already
ended.

A **claim** of a run is serialised per policy. A run is claimable when it is active (Pending,
or InProgress under a passed lease: its node died) and no run of its policy that it must not
run beside is in progress under a lease that has not passed: for a whole-policy run, another
whole-policy run; for an event-scoped run, another event-scoped run whose scope conflicts with
its own (:meth:`Scope.conflicts`: a tag in common, or a repository one lists whole). So event
runs of one policy that name different tags run at once — under a steady stream of pushes a
new batch starts at once instead of waiting for the run before it — while two changes to one
tag are still carried in the order they were made. A policy's oldest claimable run goes first:
a later one never overtakes it. The check and the claim happen together:

- PostgreSQL: candidates are read, then each is claimed under a row lock on its policy
  (:func:`~registry.meta.leases.claim_lock`: ``FOR NO KEY UPDATE SKIP LOCKED``, held until
  the claim commits) by an ``UPDATE`` that checks again — a later statement, whose snapshot
  sees every claim of the policy committed before the lock was granted. Two nodes claiming
  runs of one policy at once: one waits for nothing and skips the policy, the other claims.
- SQLite (one writer at a time: the claim's transaction holds the write lock from its start):
  candidates are read and claimed the same way, without the row lock.

Several runs (of different policies: the rule above holds between them too) can be claimed in
one transaction (:func:`claim_runs`), so a push that queues a run per policy starts them all
at once rather than one transaction after another.

A **task** is leased with one ``UPDATE … RETURNING`` (the task picked by a scalar subquery,
``FOR UPDATE SKIP LOCKED`` on PostgreSQL: nodes leasing at once take different tasks);
:func:`lease_tasks` leases up to a number of them in one transaction, one statement each.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, case, func, select, update

from engine.scope import Scope
from engine.state.models import Execution, Policy, Task
from engine.state.status import ACTIVE_EXECUTION, ExecutionStatus, TaskStatus
from engine.taskrun import LeasedTask
from registry.meta.db import SqlConnection
from registry.meta.leases import claim_lock, db_now, db_time_in, lease_free, lease_held
from registry.meta.prepared import one_of, prepared

__all__ = ["CLAIM_CANDIDATES", "claim_run", "claim_runs", "lease_task", "lease_tasks"]

X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]

#: runs looked at per claim, oldest first (the first that is free to run wins)
CLAIM_CANDIDATES = 64


def _leasable() -> Any:
    return (T.c.status == TaskStatus.PENDING) | (
        (T.c.status == TaskStatus.IN_PROGRESS) & lease_free(T.c.lease_expires)
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
            status=TaskStatus.IN_PROGRESS,
            lease_owner=bindparam("owner"),
            lease_expires=db_time_in("lease_s"),
            attempts=T.c.attempts + 1,
            start_time=func.coalesce(T.c.start_time, db_now()),
        )
        .returning(*T.c)
    )


def _running_of_policy(other: Any, x: Any) -> Any:
    """Runs of ``x``'s policy (but ``x``) in progress under a lease that has not passed (a run
    whose node died is not in the way)."""
    return (
        (other.c.policy_id == x.c.policy_id)
        & (other.c.id != x.c.id)
        & (other.c.status == ExecutionStatus.IN_PROGRESS)
        & lease_held(other.c.lease_expires)
    )


def _busy(x: Any) -> Any:
    """``x`` is a whole-policy run and another whole-policy run of its policy is running.
    (Event-scoped runs are checked against each other's scopes: :func:`_scope_free`.)"""
    other = X.alias("other")
    return (
        select(other.c.id)
        .where(_running_of_policy(other, x), other.c.scope_json == "", x.c.scope_json == "")
        .exists()
    )


async def _scope_free(c: SqlConnection, execution_id: int, policy_id: int, scope: str) -> bool:
    """Whether no event-scoped run of ``policy_id`` in progress conflicts with ``scope``."""
    if not scope:
        return True
    mine = Scope.from_json(scope)
    rows = await c.execute(_RUNNING_SCOPES, {"pid": policy_id, "eid": execution_id})
    return not any(mine.conflicts(Scope.from_json(other)) for (other,) in rows.all())


def _claimable(x: Any) -> Any:
    return one_of(x.c.status, ACTIVE_EXECUTION) & lease_free(x.c.lease_expires) & ~_busy(x)


def _claim_statement(pick: Any) -> Any:
    """Claim the run ``pick`` names if it is still claimable — checked in this statement."""
    return (
        update(X)
        .where(X.c.id == pick, _claimable(X))
        .values(
            lease_owner=bindparam("owner"),
            lease_expires=db_time_in("lease_s"),
            status=ExecutionStatus.IN_PROGRESS,
            status_text=case((X.c.status_text.like("queued:%"), ""), else_=X.c.status_text),
        )
        .returning(X.c.id)
    )


_LEASE = prepared(_lease_statement())
#: runs that look claimable, oldest first; each is checked and claimed in turn
_CANDIDATES = prepared(
    select(X.c.id, X.c.policy_id, X.c.scope_json)
    .where(_claimable(X))
    .order_by(X.c.id)
    .limit(CLAIM_CANDIDATES)
)
_CLAIM_ONE = prepared(_claim_statement(bindparam("eid")))
#: the scopes of a policy's event runs in progress (but one run's)
_RUNNING_SCOPES = prepared(
    select(X.c.scope_json).where(
        X.c.policy_id == bindparam("pid"),
        X.c.id != bindparam("eid"),
        X.c.status == ExecutionStatus.IN_PROGRESS,
        lease_held(X.c.lease_expires),
        X.c.scope_json != "",
    )
)


async def claim_run(c: SqlConnection, owner: str, lease_seconds: float) -> int | None:
    """Claim the oldest claimable run for ``owner`` for ``lease_seconds``, in the caller's
    (write) transaction; its id, or None. Commit promptly: on PostgreSQL the claim holds its
    policy's row lock until then."""
    params = {"owner": owner, "lease_s": lease_seconds}
    postgres = c.dialect.name == "postgresql"
    tried: set[tuple[int, bool]] = set()
    for eid, policy_id, scope in (await c.execute(_CANDIDATES)).all():
        kind = (policy_id, bool(scope))
        if kind in tried:  # its oldest candidate was tried: the rest wait behind it
            continue
        tried.add(kind)
        if postgres and not await claim_lock(c, P.c.id, policy_id):
            continue  # another node is claiming a run of this policy right now
        if not await _scope_free(c, eid, policy_id, scope):
            continue
        row = (await c.execute(_CLAIM_ONE, {"eid": eid, **params})).first()
        if row is not None:
            return int(row[0])
    return None


async def claim_runs(c: SqlConnection, owner: str, lease_seconds: float, limit: int) -> list[int]:
    """Claim up to ``limit`` runs, oldest first, in the caller's (write) transaction, each by
    :func:`claim_run` (so each is checked against the runs claimed before it here: two runs
    of one policy and kind are never both claimed); their ids."""
    claimed: list[int] = []
    while len(claimed) < limit:
        eid = await claim_run(c, owner, lease_seconds)
        if eid is None:
            break
        claimed.append(eid)
    return claimed


async def lease_tasks(
    c: SqlConnection, execution_id: int, owner: str, lease_seconds: float, limit: int
) -> list[LeasedTask]:
    """Lease up to ``limit`` tasks of ``execution_id`` as :func:`lease_task` does, in the
    caller's transaction; fewer (or none) when no more are leasable."""
    leased: list[LeasedTask] = []
    while len(leased) < limit:
        task = await lease_task(c, execution_id, owner, lease_seconds)
        if task is None:
            break
        leased.append(task)
    return leased


async def lease_task(
    c: SqlConnection, execution_id: int, owner: str, lease_seconds: float
) -> LeasedTask | None:
    """Lease the first pending task of ``execution_id`` (or one whose lease passed: its
    worker died) for ``owner``, in the caller's transaction; the task as leased
    (``attempts`` counts the attempt just started), or None."""
    params = {"eid": execution_id, "owner": owner, "lease_s": lease_seconds}
    row = (await c.execute(_LEASE, params)).mappings().first()
    return LeasedTask.from_row(row) if row is not None else None
