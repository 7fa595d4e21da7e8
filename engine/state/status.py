"""The statuses of runs (executions) and of their tasks, and what a task did (its outcome).

The values are API: Harbor's v2.0 replication API returns them byte for byte (``Succeed``, not
``Succeeded``); they are stored in the ``execution`` and ``task`` rows (and in ``seawall
sync``'s state file) and clients filter on them. Members are ``str``: they compare and hash
equal to the stored strings and serialise (JSON, SQL parameters, f-strings) as them, so rows
read back as plain strings still match.

No database here: ``seawall sync`` imports this module and must not import SQLAlchemy.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ACTIVE_EXECUTION",
    "ACTIVE_TASK",
    "ENDED_TASK",
    "ExecutionStatus",
    "TaskOperation",
    "TaskOutcome",
    "TaskStatus",
]


class ExecutionStatus(StrEnum):
    """A run's status (Harbor's). ``Pending``: queued, no node has claimed it yet (the API
    shows it as ``InProgress``: Harbor has no pending execution). The run's roll-up of its
    tasks: InProgress while any is pending or running, else Failed if any failed, else Stopped
    if any stopped, else Succeed."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    SUCCEED = "Succeed"
    FAILED = "Failed"
    STOPPED = "Stopped"


class TaskStatus(StrEnum):
    """A task's status (Harbor's). ``Pending``: waiting to be leased (also after a transient
    failure, to be tried again); ``InProgress``: leased by a worker."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    SUCCEED = "Succeed"
    FAILED = "Failed"
    STOPPED = "Stopped"


class TaskOutcome(StrEnum):
    """What an ended task did (Seawall's ``outcome`` column, next to Harbor's status)."""

    NONE = ""  # not ended yet, or back to Pending for another attempt
    COPIED = "copied"
    DELETED = "deleted"
    FAILED = "failed"
    STOPPED = "stopped"
    BLOCKED = "blocked"  # a deletion the deletion guard held back
    WOULD_COPY = "would-copy"  # dry run
    WOULD_DELETE = "would-delete"  # dry run
    SKIPPED_IDENTICAL = "skipped-identical"
    SKIPPED_DIFFERS = "skipped-differs"  # the destination differs and override is off


class TaskOperation(StrEnum):
    """What a task does (Harbor's ``operation``; ``list`` records a failed listing)."""

    COPY = "copy"
    DELETION = "deletion"
    LIST = "list"


#: Statuses of a run that has not ended.
ACTIVE_EXECUTION = (ExecutionStatus.PENDING, ExecutionStatus.IN_PROGRESS)
#: Statuses of a task that has not ended.
ACTIVE_TASK = (TaskStatus.PENDING, TaskStatus.IN_PROGRESS)
#: Statuses of a task that has ended.
ENDED_TASK = (TaskStatus.SUCCEED, TaskStatus.FAILED, TaskStatus.STOPPED)
