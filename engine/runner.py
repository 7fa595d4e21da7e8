"""Run one execution: plan it (once), then carry out its tasks under leases, then roll it up.

A dry run and a real run share this path: a dry run writes the same tasks with outcomes
``would-copy`` / ``would-delete`` and never touches the destination. Each task is carried out
by :func:`engine.taskrun.run_task` (the code ``seawall sync`` runs too) against the run store;
a task's failure, expected or not, ends that task, never the run. A plan that fails ends the
run ``Failed`` once (a listing task says why) instead of crashing it at every lease.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from adapters.base import RegistryAdapter
from adapters.oci.errors import OciError
from engine.bandwidth import BandwidthLimit
from engine.copier import Copier
from engine.destination import Destination
from engine.filters import Filter
from engine.observers import RunObserver, notify_all
from engine.plan import Plan, PolicySpec
from engine.planning import plan_policy, plan_scope, scope_ledger_keys
from engine.scope import Scope
from engine.state.rows import ExecutionRow, PolicyRow
from engine.state.status import ExecutionStatus, TaskStatus
from engine.taskrun import LeasedTask, RunTools, TaskEnd, run_task, unexpected_reason
from engine.tasks import failed_listing, tasks_from_plan

if TYPE_CHECKING:  # seawall sync shares this module's neighbours without SQLAlchemy
    from engine.state.runs import RunStore

__all__ = ["AdapterFactory", "Runner", "policy_spec"]

log = logging.getLogger("seawall.engine")


class AdapterFactory(Protocol):
    """The adapter of a registry endpoint id (None: the local registry), for the length of an
    ``async with``. The engine works through it: names, repository preparation, capabilities
    and listings from the adapter, bytes through its client."""

    def __call__(self, registry_id: int | None) -> AbstractAsyncContextManager[RegistryAdapter]: ...


def policy_spec(policy: PolicyRow) -> PolicySpec:
    filters = tuple(Filter.from_harbor(f) for f in json.loads(policy.filters_json or "[]"))
    return PolicySpec(
        policy_id=policy.id,
        filters=filters,
        dest_namespace=policy.dest_namespace or "",
        dest_namespace_replace_count=policy.dest_namespace_replace_count,
        override=policy.override,
        deletion=policy.deletion,
        max_deletions=policy.max_deletions,
        max_deletion_fraction=policy.max_deletion_fraction,
    )


class Runner:
    def __init__(
        self,
        store: RunStore,
        adapters: AdapterFactory,
        *,
        artifact_concurrency: int = 8,
        blob_concurrency: int = 8,
        verify: bool = False,
        observers: Sequence[RunObserver] = (),
    ) -> None:
        """``verify``: check every destination tag's digest, trusting no ledger entry.
        ``observers`` hear of the run's start, each finished task and its end."""
        self.store, self.adapters, self.verify = store, adapters, verify
        self.observers = list(observers)
        self.artifact_concurrency, self.blob_concurrency = artifact_concurrency, blob_concurrency

    async def run(self, execution_id: int) -> ExecutionStatus:
        execution = await self.store.execution(execution_id)
        if execution is None:
            raise LookupError(f"execution {execution_id} does not exist")
        policy = await self.store.policy(execution.policy_id)
        if policy is None:
            await self.store.finalize(execution_id, "its policy was deleted")
            return ExecutionStatus.FAILED
        heard = _Heard(self.observers, execution, policy)
        await heard("run_started")
        async with (
            self.adapters(policy.src_registry_id) as src,
            self.adapters(policy.dest_registry_id) as dst,
        ):
            status = await self._run(execution, policy, src, await Destination.open(dst), heard)
        final = await self.store.execution(execution_id)
        await _Heard(self.observers, final or execution, policy)("run_finished", status)
        return status

    async def _run(
        self,
        execution: ExecutionRow,
        policy: PolicyRow,
        src: RegistryAdapter,
        dst: Destination,
        heard: _Heard,
    ) -> ExecutionStatus:
        eid = execution.id
        spec = policy_spec(policy)
        status_text: str | None = None
        if not execution.planned:
            try:
                scope = Scope.from_json(execution.scope_json)
                plan = await self.plan(spec, src, dst.adapter, scope)
            except OciError as e:
                await self.store.add_tasks(eid, [failed_listing(f"listing failed: {e}")])
                return await self.store.finalize(eid, f"listing failed: {e}")
            except Exception as e:  # fails the run once, not again at every lease
                log.exception("planning execution %s failed", eid)
                text = f"planning failed: {unexpected_reason(e)}"
                await self.store.add_tasks(eid, [failed_listing(text)])
                return await self.store.finalize(eid, text)
            rows = tasks_from_plan(plan, execution.dry_run)
            if plan.problems:
                status_text = "source listing incomplete: no deletion was done"
            if plan.deletions_blocked:
                status_text = plan.deletions_blocked
            await self.store.add_tasks(eid, rows)
        tools = RunTools(spec.policy_id, _copier(policy, src, dst, self.blob_concurrency), dst)
        stopped = await self._work(eid, tools, heard.task_finished)
        if stopped:
            await self.store.stop_pending(eid)
        return await self.store.finalize(eid, status_text)

    async def plan(
        self,
        spec: PolicySpec,
        src: RegistryAdapter,
        dst: RegistryAdapter,
        scope: Scope | None = None,
    ) -> Plan:
        """The run's plan: the whole policy, or only what an event ``scope`` names."""
        if scope:  # the ledger of what the scope names, not of everything replicated
            whole, tags = scope_ledger_keys(spec, scope)
            ledger, size = await self.store.scoped_ledger(  # the size guards deletions only
                spec.policy_id, whole, tags, count=spec.deletion
            )
            return await plan_scope(
                spec, src, dst, scope, ledger, ledger_size=size, verify=self.verify
            )
        ledger = await self.store.ledger(spec.policy_id)
        return await plan_policy(spec, src, dst, ledger, verify=self.verify)

    async def help(self, execution_id: int) -> None:
        """Run some waiting tasks of a run that another node owns: a large run spreads across
        the nodes that share the database. The owner plans the run and closes it."""
        execution = await self.store.execution(execution_id)
        policy = await self.store.policy(execution.policy_id) if execution else None
        if execution is None or policy is None:
            return
        heard = _Heard(self.observers, execution, policy)
        async with (
            self.adapters(policy.src_registry_id) as src,
            self.adapters(policy.dest_registry_id) as dst_adapter,
        ):
            dst = await Destination.open(dst_adapter)
            copier = _copier(policy, src, dst, self.blob_concurrency)
            tools = RunTools(policy.id, copier, dst)
            await self._work(execution_id, tools, heard.task_finished, owner=False)

    async def _work(
        self,
        eid: int,
        tools: RunTools,
        report: Callable[[LeasedTask, TaskEnd], Awaitable[None]],
        *,
        owner: bool = True,
    ) -> bool:
        """Lease and run tasks until none is left; True if the run was stopped. The owner of
        the run also waits for tasks other nodes are running; a helper leaves when none waits."""
        running: set[int] = set()
        stop = anyio.Event()
        state = _StoreTasks(self.store, tools.policy_id, stop)
        async with anyio.create_task_group() as outer:
            outer.start_soon(self._heartbeat, eid, running, stop, outer.cancel_scope, owner)
            slots = anyio.Semaphore(self.artifact_concurrency)

            async def worker(leases: _Leases) -> None:
                while not stop.is_set():
                    task = await leases.next()
                    if task is None:
                        return
                    running.add(task.id)
                    try:
                        end = await run_task(state, tools, task, slots)
                    finally:
                        running.discard(task.id)
                        leases.idle += 1
                    if end.status in (TaskStatus.SUCCEED, TaskStatus.FAILED):
                        await report(task, end)

            while not stop.is_set():
                leases = _Leases(self.store, eid, self.artifact_concurrency)
                async with anyio.create_task_group() as tg:
                    for _ in range(self.artifact_concurrency):
                        tg.start_soon(worker, leases)
                if not (owner and await self.store.unfinished_tasks(eid)):
                    break
                # other nodes are running some of this run's tasks: wait for them (their
                # leases expire if they die, and the tasks come back here)
                await anyio.sleep(0.5)
            outer.cancel_scope.cancel()
        return stop.is_set()

    async def _heartbeat(
        self,
        eid: int,
        running: set[int],
        stop: anyio.Event,
        scope: anyio.CancelScope,
        owner: bool = True,
    ) -> None:
        last_renew = time.monotonic()
        while True:
            await anyio.sleep(1.0)
            if await self.store.stop_requested(eid):
                stop.set()
                scope.cancel()
                return
            if time.monotonic() - last_renew >= self.store.lease.total_seconds() / 3:
                last_renew = time.monotonic()
                if owner and not await self.store.renew_execution(eid):
                    log.warning("execution %s was taken over by another node; stopping here", eid)
                    scope.cancel()
                    return
                await self.store.renew_tasks(sorted(running))


def _copier(policy: PolicyRow, src: RegistryAdapter, dst: Destination, blobs: int) -> Copier:
    speed = int(policy.speed_bytes_per_second or -1)
    chunked = policy.copy_by_chunk and dst.capabilities.chunked_upload
    return Copier(
        src.client(),
        dst.client,
        blob_concurrency=blobs,
        chunk_bytes=(16 << 20) if chunked else None,
        bandwidth=BandwidthLimit(speed) if speed > 0 else None,
        mount=dst.capabilities.blob_mount,
        referrers_api=dst.capabilities.referrers_api,
    )


class _Leases:
    """Tasks leased for a run's workers on this node. A worker that finds none leased leases as
    many as there are idle workers, in one transaction (:meth:`RunStore.lease_tasks`), so a
    run of one artifact costs one lease transaction, not one per worker. Only what an idle
    worker will start at once is leased: the rest stays Pending for other nodes."""

    def __init__(self, store: RunStore, execution_id: int, workers: int) -> None:
        self.store, self.execution_id = store, execution_id
        self.idle = workers  # workers not running a task
        self._leased: list[LeasedTask] = []
        self._exhausted = False  # the last lease found fewer than it asked for
        self._lock = anyio.Lock()

    async def next(self) -> LeasedTask | None:
        """A leased task for the calling worker, or None when none is leasable now."""
        async with self._lock:
            if not self._leased and not self._exhausted:
                wanted = max(1, self.idle)
                self._leased = await self.store.lease_tasks(self.execution_id, wanted)
                self._exhausted = len(self._leased) < wanted
            if not self._leased:
                return None
            self.idle -= 1
            return self._leased.pop(0)


class _Heard:
    """Tells a run's observers what happens to it. Observers take rows as mappings
    (:mod:`engine.observers`): the run's and the policy's are converted once per run."""

    def __init__(
        self, observers: Sequence[RunObserver], execution: ExecutionRow, policy: PolicyRow
    ) -> None:
        self.observers = observers
        self.execution, self.policy = execution.as_dict(), policy.as_dict()

    async def __call__(self, method: str, *args: Any) -> None:
        await notify_all(self.observers, method, self.execution, self.policy, *args)

    async def task_finished(self, task: LeasedTask, end: TaskEnd) -> None:
        await self("task_finished", _finished(self.execution["id"], task, end))


def _finished(execution_id: int, task: LeasedTask, end: TaskEnd) -> dict[str, Any]:
    """The task as it ended, as observers take it: a ``task`` row's columns."""
    return {
        "id": task.id,
        "execution_id": execution_id,
        "operation": task.operation,
        "resource_type": task.resource_type,
        "src_repository": task.src_repository,
        "dst_repository": task.dst_repository,
        "digest": task.digest,
        "tags_json": json.dumps(list(task.tags)),
        "attempts": task.attempts,
        "status": end.status,
        "outcome": end.outcome,
        "reason": end.reason,
        "log": end.log,
        "bytes_copied": end.bytes_copied,
    }


class _StoreTasks:
    """:class:`engine.taskrun.TaskState` over the run store: tasks end in the shared
    database (ledger rows in the same transaction); a stop is the run's stop event."""

    def __init__(self, store: RunStore, policy_id: int, stop: anyio.Event) -> None:
        self.store, self.policy_id, self.stop = store, policy_id, stop
        self.where = f"node {store.node_id}"

    def stopping(self) -> bool:
        return self.stop.is_set()

    async def finish(self, task: LeasedTask, end: TaskEnd) -> None:
        await self.store.finish_task(
            task.id, end.status, end.outcome, end.reason, end.log, end.bytes_copied, end.ledger
        )

    async def forget_replicated(self, dst_repository: str, tag: str) -> None:
        await self.store.forget_replicated(self.policy_id, dst_repository, tag)
