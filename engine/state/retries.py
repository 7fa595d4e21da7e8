"""Retries of failed event-scoped runs, as rows (``event_retry``), not timers in memory.

An event run that fails (a destination down longer than its tasks' retries last) is queued
again after :data:`EVENT_RETRY_SECONDS` — 5 s, 20 s, 1 min, 3 min, 10 min — then left to the
periodic reconciliation run. The back-off lives in the database, written in the transaction
that ends the failed run, so a node killed during it loses nothing: whichever node's
replication service looks next (:func:`queue_due_retries`, every poll) queues the run.

A row's life::

    run fails ──► row (attempt 1, due_at = now + 5 s)
    due ──► queue_due_retries: enqueue_scoped → execution_id = the run, due_at = NULL
    that run ends: Succeed/Stopped ──► row deleted
                   Failed ──► attempt + 1, due again later (after the last delay: deleted)

Runs stopped by a person and runs stopped by the deletion guard are not retried: they wait
for a person, not for time.

Times are the database's (:mod:`registry.meta.leases`): a retry is due by the database's
clock, whichever node's clock is ahead or behind.
"""

from __future__ import annotations

import logging

from sqlalchemy import bindparam, delete, insert, select, update

from engine.plan import GUARD
from engine.scope import Scope
from engine.state.models import EventRetry, Policy
from engine.state.rows import ExecutionRow
from engine.state.status import ExecutionStatus
from registry.meta.db import SqlConnection
from registry.meta.leases import db_now, db_time_in
from registry.meta.prepared import prepared

__all__ = ["EVENT_RETRY_SECONDS", "queue_due_retries", "settle_retry"]

log = logging.getLogger("seawall.engine")
R = EventRetry.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]

#: Delays before a failed event-scoped run's events run again (then: the reconciliation run).
EVENT_RETRY_SECONDS = (5.0, 20.0, 60.0, 180.0, 600.0)
BATCH = 100
_ATTEMPTS = prepared(select(R.c.attempt).where(R.c.execution_id == bindparam("eid")))


async def settle_retry(c: SqlConnection, execution: ExecutionRow, status: ExecutionStatus) -> None:
    """The run ``execution`` (as it ends) just ended with ``status``, in the caller's
    transaction: its retries are done, or (a failed event run) due again after the next
    delay."""
    eid = execution.id
    done = (await c.execute(_ATTEMPTS, {"eid": eid})).scalars().all()
    if done:  # several when retries merged into one run
        await c.execute(delete(R).where(R.c.execution_id == eid))
    if status != ExecutionStatus.FAILED or not _retryable(execution):
        return
    attempt = max(done, default=0) + 1
    if attempt > len(EVENT_RETRY_SECONDS):
        log.warning("execution %s: events given up after %d retries", eid, attempt - 1)
        return
    delay = EVENT_RETRY_SECONDS[attempt - 1]
    await c.execute(
        insert(R).values(
            policy_id=execution.policy_id,
            scope_json=execution.scope_json,
            attempt=attempt,
            due_at=db_time_in(delay),
            execution_id=None,
            created_at=db_now(),
        )
    )
    log.info("execution %s failed: its events run again in %ss (retry %d)", eid, delay, attempt)


def _retryable(execution: ExecutionRow) -> bool:
    if not execution.scope_json or execution.stop_requested:
        return False
    return not (execution.status_text or "").startswith(GUARD)


async def queue_due_retries(c: SqlConnection) -> list[int]:
    """Queue the runs of the retries that are due, in the caller's transaction; their
    execution ids. A retry of a policy that is gone, disabled or no longer event-based ends."""
    from engine.state.runs import enqueue_scoped  # runs imports this module

    rows = (
        await c.execute(
            select(R.c.id, R.c.policy_id, R.c.scope_json, P.c.enabled, P.c.trigger_type)
            .outerjoin(P, P.c.id == R.c.policy_id)
            .where(R.c.due_at <= db_now())
            .order_by(R.c.due_at)
            .limit(BATCH)
        )
    ).all()
    queued: list[int] = []
    for rid, policy_id, scope, enabled, trigger in rows:
        if not enabled or trigger != "event_based":
            await c.execute(delete(R).where(R.c.id == rid))
            continue
        taken = await c.execute(  # conditional: another node may have taken it just now
            update(R).where(R.c.id == rid, R.c.due_at.is_not(None)).values(due_at=None)
        )
        if not taken.rowcount:
            continue
        eid = await enqueue_scoped(c, int(policy_id), "event_based", Scope.from_json(scope))
        await c.execute(update(R).where(R.c.id == rid).values(execution_id=eid))
        queued.append(eid)
    return queued
