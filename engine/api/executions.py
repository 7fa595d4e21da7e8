"""Executions and tasks: ``/replication/executions`` and below.

* ``POST`` ``{policy_id, dry_run?}`` → 201 + Location; the replication service is woken at once.
  ``?trigger=scheduled|event_based`` records another trigger (Harbor's scheduler does this).
  A disabled policy → 412. With ``single_active_replication`` and a run still active, the new
  execution is recorded as ``Failed`` with ``status_text`` "Execution skipped: active replication
  still in progress." and nothing runs — exactly what Harbor 2.14 does, so tools that filter on
  that text keep working.
* ``PUT /{id}`` stops a run: a running one stops at its next heartbeat (about a second); one no
  node has picked up yet is stopped at once. Stopping a finished run changes nothing (200).
* ``GET /{id}?wait=S`` (Seawall's, seconds, at most 60) answers once the execution has ended or
  S seconds have passed, whichever is first: a script or CI job waits for a run without
  polling.
* A run not yet picked up reports ``InProgress`` (Harbor has no ``Pending`` execution status);
  its tasks report ``Pending``. The counts of an active run are live from its tasks.

Seawall adds ``skipped``, ``dry_run`` and ``bytes_copied`` to executions, and ``outcome``,
``reason`` and ``digest`` to tasks (see :class:`engine.state.models.Task`).
"""

from __future__ import annotations

from typing import Any

import anyio
from sqlalchemy import ColumnElement, case, false, func, insert, select, true, update

from engine.api.access import viewer_of
from engine.api.context import ApiContext
from engine.api.errors import ApiError, bad_request, not_found
from engine.api.paging import fetch_page, list_response, page_of, sort_order
from engine.api.policies import load as load_policy
from engine.api.wire import MAX_ID, query_int, read_body, rfc3339
from engine.state.models import Execution, Policy, Task
from engine.state.rows import ExecutionRow
from engine.state.runs import SKIPPED_TEXT, RunStore
from engine.state.status import ACTIVE_EXECUTION, ExecutionStatus, TaskStatus
from registry.http.asgi import Request, Response, json_response
from registry.meta.models import utcnow

__all__ = ["get", "list_executions", "start", "stop", "task_log", "tasks"]

X = Execution.__table__  # type: ignore[attr-defined]
T = Task.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]
TRIGGERS = ("manual", "scheduled", "event_based")
#: What ``?status=`` takes (Harbor shows no ``Pending`` run: a queued one is ``InProgress``)
STATUSES = (
    ExecutionStatus.IN_PROGRESS,
    ExecutionStatus.SUCCEED,
    ExecutionStatus.FAILED,
    ExecutionStatus.STOPPED,
)
TASK_STATUSES = tuple(TaskStatus)
COUNTS = ("total", "failed", "succeed", "in_progress", "stopped", "skipped", "bytes_copied")
EXECUTION_SORT = {
    "id": X.c.id,
    "policy_id": X.c.policy_id,
    "status": X.c.status,
    "start_time": X.c.start_time,
    "end_time": X.c.end_time,
}
TASK_SORT = {"id": T.c.id, "status": T.c.status, "start_time": T.c.start_time}
MAX_WAIT_SECONDS = 60.0
WAIT_RECHECK_SECONDS = 0.25  # a run ending on another node is seen this late at most


def execution_json(row: ExecutionRow, live: dict[str, int] | None = None) -> dict[str, Any]:
    """Harbor's ``ReplicationExecution`` (and Seawall's fields); ``live``: an active run's
    counts from its tasks (else the counts stored at its end)."""
    counts = live or {k: getattr(row, k) for k in COUNTS}
    pending = row.status == ExecutionStatus.PENDING
    return {
        "id": row.id,
        "policy_id": row.policy_id,
        "status": ExecutionStatus.IN_PROGRESS if pending else row.status,
        "status_text": row.status_text,
        "trigger": row.trigger,
        "start_time": rfc3339(row.start_time),
        "end_time": rfc3339(row.end_time),
        **{k: int(counts[k]) for k in ("total", "failed", "succeed", "in_progress", "stopped")},
        "skipped": int(counts["skipped"]),
        "dry_run": row.dry_run,
        "bytes_copied": int(counts["bytes_copied"]),
    }


def task_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "execution_id": row["execution_id"],
        "job_id": str(row["id"]),
        "status": row["status"],
        "operation": row["operation"],
        "resource_type": row["resource_type"],
        "src_resource": row["src_resource"],
        "dst_resource": row["dst_resource"],
        "start_time": rfc3339(row["start_time"]),
        "end_time": rfc3339(row["end_time"]),
        "outcome": row["outcome"],
        "reason": row["reason"],
        "digest": row["digest"],
    }


async def _live_counts(c: Any, ids: list[int]) -> dict[int, dict[str, int]]:
    """Task counts of active executions (their stored counts are written only at the end)."""
    if not ids:
        return {}
    skipped = func.sum(case((T.c.outcome.like("skipped%"), 1), else_=0))
    rows = await c.execute(
        select(T.c.execution_id, T.c.status, func.count(), skipped, func.sum(T.c.bytes_copied))
        .where(T.c.execution_id.in_(ids))
        .group_by(T.c.execution_id, T.c.status)
    )
    out: dict[int, dict[str, int]] = {i: dict.fromkeys(COUNTS, 0) for i in ids}
    slot = {
        TaskStatus.SUCCEED: "succeed",
        TaskStatus.FAILED: "failed",
        TaskStatus.STOPPED: "stopped",
    }
    for eid, status, count, skip, nbytes in rows.all():
        counts = out[int(eid)]
        counts["total"] += count
        counts[slot.get(status, "in_progress")] += count
        counts["skipped"] += int(skip or 0)
        counts["bytes_copied"] += int(nbytes or 0)
    return out


async def _load(c: Any, execution_id: int) -> ExecutionRow:
    row = (await c.execute(select(X).where(X.c.id == execution_id))).mappings().first()
    if row is None:
        raise not_found(f"replication execution {execution_id} does not exist")
    return ExecutionRow.from_mapping(row)


async def start(ctx: ApiContext, req: Request) -> Response:
    body = await read_body(req, ctx.max_body_bytes)
    policy_id = body.id("policy_id")
    if policy_id is None:
        raise bad_request("policy_id is required")
    dry_run = bool(body.flag("dry_run"))
    trigger = req.q("trigger") or "manual"
    if trigger not in TRIGGERS:
        raise bad_request(f"trigger must be one of {', '.join(TRIGGERS)}")
    async with ctx.db.read() as c:
        policy = await load_policy(c, policy_id)
    if not policy["enabled"]:
        raise ApiError("PRECONDITION", f"the policy {policy_id} is disabled; enable it first")
    execution_id = None
    if policy["single_active_replication"]:
        execution_id = await _record_skip_if_active(ctx, policy_id, trigger, dry_run)
    if execution_id is None:
        execution_id = await RunStore(ctx.db, "api").create_execution(policy_id, trigger, dry_run)
        ctx.wake()
    return Response(201, {"Location": f"{req.path.rstrip('/')}/{execution_id}"})


async def _record_skip_if_active(
    ctx: ApiContext, policy_id: int, trigger: str, dry_run: bool
) -> int | None:
    async with ctx.db.write() as c:
        active = (
            await c.execute(
                select(X.c.id)
                .where(X.c.policy_id == policy_id, X.c.status.in_(ACTIVE_EXECUTION))
                .limit(1)
            )
        ).scalar()
        if active is None:
            return None
        now = utcnow()
        res = await c.execute(
            insert(X).values(
                policy_id=policy_id,
                trigger=trigger,
                dry_run=dry_run,
                status=ExecutionStatus.FAILED,
                status_text=SKIPPED_TEXT,
                planned=True,
                start_time=now,
                end_time=now,
            )
        )
        return int(res.inserted_primary_key[0])  # type: ignore[index]


async def list_executions(ctx: ApiContext, req: Request) -> Response:
    page = page_of(req)
    where = []
    if (policy_id := query_int(req, "policy_id", maximum=MAX_ID)) is not None:
        where.append(X.c.policy_id == policy_id)
    if status := req.q("status"):
        if status not in STATUSES:
            raise bad_request(f"status must be one of {', '.join(STATUSES)}")
        active = status == ExecutionStatus.IN_PROGRESS
        where.append(X.c.status.in_(ACTIVE_EXECUTION) if active else X.c.status == status)
    if trigger := req.q("trigger"):
        if trigger not in TRIGGERS:
            raise bad_request(f"trigger must be one of {', '.join(TRIGGERS)}")
        where.append(X.c.trigger == trigger)
    order = sort_order(req, EXECUTION_SORT, [X.c.id.desc()])
    async with ctx.db.read() as c:
        found, total = await fetch_page(c, select(X).where(*where).order_by(*order), page)
        rows = [ExecutionRow.from_mapping(r) for r in found]
        live = await _live_counts(c, [r.id for r in rows if r.active])
    items = [execution_json(r, live.get(r.id)) for r in rows]
    return list_response(req, items, page, total)


def _wait_seconds(req: Request) -> float:
    raw = req.q("wait")
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise bad_request(f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS:g}")
    return seconds


async def get(ctx: ApiContext, req: Request) -> Response:
    execution_id = int(req.params["id"])
    deadline = anyio.current_time() + _wait_seconds(req)
    while True:
        async with ctx.db.read() as c:
            row = await _load(c, execution_id)
            live = await _live_counts(c, [row.id] if row.active else [])
        left = deadline - anyio.current_time()
        if not row.active or left <= 0:
            return json_response(execution_json(row, live.get(row.id)))
        await ctx.run_ended(min(left, WAIT_RECHECK_SECONDS))


async def stop(ctx: ApiContext, req: Request) -> Response:
    execution_id = int(req.params["id"])
    async with ctx.db.read() as c:
        await _load(c, execution_id)
    async with ctx.db.write() as c:  # one transaction: no event merges into a run being stopped
        await c.execute(
            update(X)
            .where(X.c.id == execution_id, X.c.status.in_(ACTIVE_EXECUTION))
            .values(stop_requested=True)
        )
        await c.execute(  # nobody holds it yet: nobody else will stop it
            update(X)
            .where(
                X.c.id == execution_id,
                X.c.status == ExecutionStatus.PENDING,
                X.c.lease_owner.is_(None),
            )
            .values(
                status=ExecutionStatus.STOPPED,
                status_text="stopped before it started",
                end_time=utcnow(),
            )
        )
    ctx.wake()
    return Response(200)


async def _visible(c: Any, req: Request, execution: ExecutionRow) -> ColumnElement[bool]:
    """The tasks of ``execution`` the caller may see: all for an admin; for anyone else those
    whose repository on this registry they may pull (see :mod:`engine.api.access`)."""
    viewer = viewer_of(req)
    if viewer is None or viewer.admin:
        return true()
    policy = (
        await c.execute(
            select(P.c.src_registry_id, P.c.dest_registry_id).where(P.c.id == execution.policy_id)
        )
    ).first()
    if policy is None or (policy[0] is not None and policy[1] is not None):
        return false()  # remote -> remote: no repository of this registry
    return viewer.pullable(T.c.src_repository if policy[0] is None else T.c.dst_repository)


async def tasks(ctx: ApiContext, req: Request) -> Response:
    execution_id = int(req.params["id"])
    page = page_of(req)
    where = [T.c.execution_id == execution_id]
    if status := req.q("status"):
        if status not in TASK_STATUSES:
            raise bad_request(f"status must be one of {', '.join(TASK_STATUSES)}")
        where.append(T.c.status == status)
    if resource_type := req.q("resource_type"):
        where.append(T.c.resource_type == resource_type)
    if operation := req.q("operation"):
        where.append(T.c.operation == operation)
    order = sort_order(req, TASK_SORT, [T.c.id])
    async with ctx.db.read() as c:
        where.append(await _visible(c, req, await _load(c, execution_id)))
        rows, total = await fetch_page(c, select(T).where(*where).order_by(*order), page)
    return list_response(req, [task_json(r) for r in rows], page, total)


async def task_log(ctx: ApiContext, req: Request) -> Response:
    execution_id, task_id = int(req.params["id"]), int(req.params["task_id"])
    async with ctx.db.read() as c:
        visible = await _visible(c, req, await _load(c, execution_id))
        row = (
            await c.execute(
                select(T.c.log).where(T.c.id == task_id, T.c.execution_id == execution_id, visible)
            )
        ).first()
    if row is None:
        raise not_found(f"execution {execution_id} contains no task with ID {task_id}")
    text = row[0] or ""
    return Response(200, {"Content-Type": "text/plain; charset=utf-8"}, text.encode("utf-8"))
