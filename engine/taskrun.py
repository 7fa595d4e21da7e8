"""One task of a run, from its start to its end: the code a policy run in ``seawall serve``
(:mod:`engine.runner`) and ``seawall sync`` (:mod:`engine.oneshot`) share.

Each keeps its state its own way — the service in the shared database (:class:`RunStore`,
leases, heartbeats, several nodes), ``seawall sync`` in a plain-``sqlite3`` file — and hands
this module a :class:`TaskState`: how a task ends, how a stop is seen, how the ledger loses a
tag. How a task is leased, and who renews leases, stays with the caller.

:func:`run_task`'s contract: a task always ends through :meth:`TaskState.finish`, exactly
once per attempt, unless it is cancelled:

- done → ``Succeed`` with its outcome, bytes and ledger entry, its reason still the plan's
  (why it was made: "missing at destination", a settled conflict — the audit record);
- an error the registry or the network reported (:class:`OciError`, :class:`AdapterError`,
  :class:`OSError`): a transient one with attempts left waits its back-off and goes back to
  ``Pending`` (to be leased again; the error is in its log), any other is ``Failed`` with the
  error as the reason;
- any other exception — a bug, or input nothing validated — is ``Failed`` with its class and
  message as the reason (bounded), logged with its traceback, and never raised: it ends that
  task, never the run;
- cancelled: ``Stopped`` when the run was stopped, else left as it is (the node is shutting
  down or lost the run's lease: the lease expires and the task runs again); re-raised.

No database here: ``seawall sync`` must not import SQLAlchemy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from adapters.base import AdapterError
from adapters.oci.errors import OciError, Transient
from engine.copier import Copier
from engine.destination import Destination
from engine.state.status import TaskOperation, TaskOutcome, TaskStatus
from engine.tasks import LedgerEntry, delete_replicated, retry_delay, task_tags

__all__ = [
    "MAX_REASON_CHARS",
    "LeasedTask",
    "RunTools",
    "TaskEnd",
    "TaskState",
    "run_task",
    "unexpected_reason",
]

log = logging.getLogger("seawall.engine")

#: A transient error whose registry asks for a longer wait than this fails its task at once:
#: retries seconds apart cannot succeed, and the policy's next run carries the artifact.
MAX_RETRY_AFTER_SECONDS = 300.0
#: Longest reason written for an unexpected exception (the stores keep at most 2000).
MAX_REASON_CHARS = 1000

Note = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class LeasedTask:
    """A task as leased for one attempt (``attempts`` counts this one). ``resource_type``:
    Harbor's (``artifact``), for what observers tell of the task."""

    id: int
    operation: str
    resource_type: str
    src_repository: str
    dst_repository: str
    digest: str
    tags: tuple[str, ...]
    attempts: int
    log: str
    reason: str = ""  # why the plan made it (kept while it succeeds or waits to be retried)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> LeasedTask:
        """From a task row of either store (``tags_json``: a JSON list of tags)."""
        return cls(
            id=int(row["id"]),
            operation=str(row["operation"]),
            resource_type=str(row.get("resource_type") or ""),
            src_repository=str(row.get("src_repository") or ""),
            dst_repository=str(row.get("dst_repository") or ""),
            digest=str(row.get("digest") or ""),
            tags=task_tags(row),
            attempts=int(row.get("attempts") or 0),
            log=str(row.get("log") or ""),
            reason=str(row.get("reason") or ""),
        )


@dataclass(frozen=True, slots=True)
class TaskEnd:
    """How one attempt ended. ``Pending``: it goes back to be leased again."""

    status: TaskStatus
    outcome: str
    reason: str
    log: str
    bytes_copied: int = 0
    ledger: LedgerEntry | None = None


class TaskState(Protocol):
    """What a task needs of the state it runs against."""

    #: where attempts run, noted in the task's log (``"node n1"``); "" notes nothing
    where: str

    def stopping(self) -> bool:
        """Whether the run was stopped by a user: a task cancelled now ends ``Stopped``."""
        ...

    async def finish(self, task: LeasedTask, end: TaskEnd) -> None:
        """Record how the attempt ended and release the task; ``end.ledger`` (the tags it put
        at the destination) goes into the ledger in the same transaction."""
        ...

    async def forget_replicated(self, dst_repository: str, tag: str) -> None:
        """Drop ``dst_repository:tag`` from the ledger (a deletion found it gone or deleted
        it)."""
        ...


@dataclass(frozen=True, slots=True)
class RunTools:
    """What a run's tasks share: the policy (for the ledger), the copier, the destination."""

    policy_id: int
    copier: Copier
    destination: Destination


def unexpected_reason(error: BaseException) -> str:
    """A task's reason for an exception nothing expected: its class and message, bounded."""
    text = f"unexpected error: {type(error).__name__}: {error}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


async def run_task(
    state: TaskState, tools: RunTools, task: LeasedTask, slots: anyio.Semaphore
) -> TaskEnd:
    """Carry out one attempt of ``task`` (the work itself under one of ``slots``) and end it
    through ``state``; how it ended. See the module's docstring for the contract."""
    notes = _Notes([task.log] if task.log else [])
    if state.where:
        notes(f"attempt {task.attempts} on {state.where}")
    try:
        async with slots:
            outcome, nbytes, ledger = await _execute(state, tools, task, notes)
        end = TaskEnd(TaskStatus.SUCCEED, outcome, task.reason, notes.text(), nbytes, ledger)
    except anyio.get_cancelled_exc_class():
        if state.stopping():
            notes("stopped")
            stopped = TaskEnd(TaskStatus.STOPPED, TaskOutcome.STOPPED, "run stopped", notes.text())
            with anyio.CancelScope(shield=True):
                await state.finish(task, stopped)
        raise
    except (OciError, AdapterError, OSError) as e:
        notes(f"error: {e}")
        delay = retry_delay(task.attempts) if isinstance(e, Transient) else None
        if isinstance(e, Transient) and (e.retry_after_seconds or 0.0) > MAX_RETRY_AFTER_SECONDS:
            delay = None  # the registry said "hours" (Docker Hub's pull window): fail it now
        if delay is not None:  # back to Pending after the back-off, to be leased again
            await anyio.sleep(delay)
            end = TaskEnd(TaskStatus.PENDING, TaskOutcome.NONE, task.reason, notes.text())
        else:
            end = TaskEnd(TaskStatus.FAILED, TaskOutcome.FAILED, str(e), notes.text())
    except Exception as e:  # anything else ends this task, never the run
        log.exception("task %s (%s) failed unexpectedly", task.id, task.digest or task.operation)
        reason = unexpected_reason(e)
        notes(f"error: {reason}")
        end = TaskEnd(TaskStatus.FAILED, TaskOutcome.FAILED, reason, notes.text())
    await state.finish(task, end)
    return end


class _Notes:
    """The task's log: earlier attempts' lines, then this attempt's, each with its UTC time."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines

    def __call__(self, msg: str) -> None:
        self.lines.append(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {msg}")

    def text(self) -> str:
        return "\n".join(self.lines)


async def _execute(
    state: TaskState, tools: RunTools, task: LeasedTask, note: Note
) -> tuple[str, int, LedgerEntry | None]:
    """The task's outcome, bytes copied, and what to add to the policy's ledger."""
    dst = tools.destination
    if task.operation == TaskOperation.DELETION:
        client = await tools.copier.deleting(dst.client, task.src_repository, task.tags[0])
        outcome, forget = await delete_replicated(
            client,
            task.dst_repository,
            task.tags[0],
            task.digest,
            note,
            delete_tag=dst.capabilities.delete_tag,
        )
        if forget:
            await state.forget_replicated(task.dst_repository, task.tags[0])
        return outcome, 0, None
    await dst.prepare(task.dst_repository)
    result = await tools.copier.copy(
        task.src_repository, task.dst_repository, task.digest, task.tags, note
    )
    note(result.summary())
    ledger = LedgerEntry(tools.policy_id, task.dst_repository, task.tags, task.digest)
    return TaskOutcome.COPIED, result.bytes_copied, ledger
