"""What a run's tasks are and how one ends, shared by the service's runner and ``seawall sync``.

No database here (``seawall sync`` keeps its own state file and must not import SQLAlchemy):
task rows from a plan, Harbor's roll-up rule, and the guarded deletion of a replicated tag.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.oci.errors import NotFound, Unsupported
from adapters.protocol import RegistryClient
from engine.plan import Plan
from engine.state.status import (
    ACTIVE_TASK,
    ExecutionStatus,
    TaskOperation,
    TaskOutcome,
    TaskStatus,
)

__all__ = [
    "ACTIVE",
    "MAX_ATTEMPTS",
    "LedgerEntry",
    "delete_replicated",
    "failed_listing",
    "retry_delay",
    "roll_up",
    "task_row",
    "task_tags",
    "tasks_from_plan",
]

#: Attempts a task gets in all when it fails transiently (a network error, a 5xx, a 429).
MAX_ATTEMPTS = 5
#: Statuses of a run or task that has not ended (the same strings for both).
ACTIVE = ACTIVE_TASK


@dataclass(frozen=True)
class LedgerEntry:
    """Tags a policy's run put at the destination, for the ledger (what deletion sync may
    delete)."""

    policy_id: int
    dst_repository: str
    tags: Sequence[str]
    digest: str


def retry_delay(attempt: int) -> float | None:
    """Seconds to wait before trying a transiently failed task again after its ``attempt``-th
    attempt (1 for the first), or None when it has had all of them."""
    return min(2.0**attempt, 30.0) if attempt < MAX_ATTEMPTS else None


def task_row(
    op: str,
    src_repo: str,
    dst_repo: str,
    digest: str,
    tags: tuple[str, ...],
    status: str,
    outcome: str,
    reason: str,
) -> dict[str, Any]:
    tag_text = ",".join(tags)
    return {
        "operation": op,
        "src_repository": src_repo,
        "dst_repository": dst_repo,
        "digest": digest,
        "tags_json": json.dumps(list(tags)),
        "status": status,
        "outcome": outcome,
        "reason": reason,
        "resource_type": "artifact",
        "src_resource": f"{src_repo}:[{tag_text}]" if src_repo else "",
        "dst_resource": f"{dst_repo}:[{tag_text}]",
    }


def failed_listing(reason: str) -> dict[str, Any]:
    """The task row that records a listing failure (the run then fails, deleting nothing)."""
    return task_row(
        TaskOperation.LIST, "", "", "", (), TaskStatus.FAILED, TaskOutcome.FAILED, reason[:2000]
    )


def tasks_from_plan(plan: Plan, dry_run: bool) -> list[dict[str, Any]]:
    """Task rows for a plan. Skips are finished at once; a dry run's copies and deletions too."""
    rows: list[dict[str, Any]] = []
    copy_status, copy_outcome = (
        (TaskStatus.SUCCEED, TaskOutcome.WOULD_COPY)
        if dry_run
        else (TaskStatus.PENDING, TaskOutcome.NONE)
    )
    for c in plan.copies:
        rows.append(
            task_row(
                TaskOperation.COPY,
                c.src_repository,
                c.dst_repository,
                c.digest,
                c.tags,
                copy_status,
                copy_outcome,
                c.reason,
            )
        )
    for s in plan.skips:
        rows.append(
            task_row(
                TaskOperation.COPY,
                s.src_repository,
                s.dst_repository,
                s.digest,
                s.tags,
                TaskStatus.SUCCEED,
                s.outcome,
                s.reason,
            )
        )
    for d in plan.deletions:
        if plan.deletions_blocked:
            status, outcome = TaskStatus.FAILED, TaskOutcome.BLOCKED
            reason = plan.deletions_blocked
        elif dry_run:
            status, outcome, reason = TaskStatus.SUCCEED, TaskOutcome.WOULD_DELETE, d.reason
        else:
            status, outcome, reason = TaskStatus.PENDING, TaskOutcome.NONE, d.reason
        rows.append(
            task_row(
                TaskOperation.DELETION,
                d.src_repository,
                d.dst_repository,
                d.digest,
                (d.tag,),
                status,
                outcome,
                reason,
            )
        )
    if plan.problems:
        rows.append(failed_listing("; ".join(plan.problems)))
    return rows


def roll_up(counts: dict[str, int]) -> ExecutionStatus:
    """Harbor's rule: InProgress while any task is pending or running; else Failed if any failed;
    else Stopped if any stopped; else Succeed (also for zero tasks). ``counts``: tasks by
    status."""
    if any(counts.get(status, 0) for status in ACTIVE_TASK):
        return ExecutionStatus.IN_PROGRESS
    if counts.get(TaskStatus.FAILED, 0):
        return ExecutionStatus.FAILED
    if counts.get(TaskStatus.STOPPED, 0):
        return ExecutionStatus.STOPPED
    return ExecutionStatus.SUCCEED


def task_tags(row: Mapping[Any, Any]) -> tuple[str, ...]:
    return tuple(json.loads(row.get("tags_json") or "[]"))


async def delete_replicated(
    dst: RegistryClient,
    repo: str,
    tag: str,
    digest: str,
    note: Callable[[str], None],
    *,
    delete_tag: bool = True,
) -> tuple[str, bool]:
    """Delete ``repo:tag`` at the destination only if it still names ``digest`` (what Seawall
    put there); by digest where the registry cannot delete a tag (``delete_tag`` False, its
    declared capability, or it says so), unless another tag still names the artifact. Returns
    the outcome and whether the ledger entry should go."""
    current = await dst.head_manifest(repo, tag)
    if current is None or current.digest != digest:
        note(f"{repo}:{tag} no longer names {digest}: left alone")
        return TaskOutcome.SKIPPED_DIFFERS, True
    try:
        if not delete_tag:
            raise Unsupported("the registry deletes manifests by digest only")
        await dst.delete_tag(repo, tag)
        note(f"deleted tag {repo}:{tag}")
    except (Unsupported, NotFound):
        others = [t for t in await dst.list_tags(repo) if t != tag]
        sharing = [
            t for t in others if (r := await dst.head_manifest(repo, t)) and r.digest == digest
        ]
        if sharing:
            note(
                f"{repo}:{tag}: the registry cannot delete tags and {sharing[0]} still "
                "names the artifact: left in place"
            )
            return TaskOutcome.SKIPPED_DIFFERS, False
        await dst.delete_manifest(repo, digest)
        note(f"deleted {repo}@{digest} (tag {tag}; the registry deletes by digest only)")
    return TaskOutcome.DELETED, True
