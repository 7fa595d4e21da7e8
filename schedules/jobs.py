"""What a schedule does when it fires: queue a run of its policy, or run the failover checks.

APScheduler stores schedules by reference to these functions (``schedules.jobs:fire_policy``),
so they stay importable under these names. They run on whichever node's scheduler acquired the
job and only write an execution row; any node's replication service then claims the run.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from engine.state.runs import SKIPPED_TEXT, RunStore
from engine.state.status import ExecutionStatus

__all__ = ["Runtime", "check_regions", "fire_policy", "install", "install_region_checks"]

log = logging.getLogger("seawall.schedules")


@dataclass(frozen=True, slots=True)
class Runtime:
    store: RunStore
    wake: Callable[[], None]  # tells the local replication service a run is waiting


_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    """Give the job functions this process's run store (done when the scheduler starts)."""
    global _runtime
    _runtime = runtime


async def fire_policy(policy_id: int, trigger: str = "scheduled") -> int | None:
    """Queue a whole-policy run. If a run of the policy is still active, a policy with
    ``single_active_replication`` records a skipped run (``Failed``, with Harbor's text);
    otherwise the new run is queued and starts when the active one ends (one queued run at
    most: a firing while one waits is that run)."""
    if _runtime is None:
        raise RuntimeError("schedules.jobs: no runtime installed")
    store = _runtime.store
    policy = await store.policy(policy_id)
    if policy is None or not policy.enabled:
        log.info("schedule of policy %s fired, but the policy is gone or disabled", policy_id)
        return None
    active = await store.active_execution(policy_id)
    queued = await store.queued_execution(policy_id)
    if queued is not None:
        log.info("policy %s: a run is already queued (execution %s)", policy_id, queued)
        return queued
    if active is not None and policy.single_active_replication:
        eid = await store.create_execution(
            policy_id, trigger, status=ExecutionStatus.FAILED, status_text=SKIPPED_TEXT
        )
        log.info("policy %s: run skipped, execution %s still active", policy_id, active)
        return eid
    text = f"queued: waiting for execution {active} of this policy" if active else ""
    eid = await store.create_execution(policy_id, trigger, status_text=text)
    log.info("policy %s: %s run queued as execution %s", policy_id, trigger, eid)
    _runtime.wake()
    return eid


#: What a ``dr-check`` firing runs (the failover checks of engine.regions), once installed.
_region_checks: Callable[[], Awaitable[object]] | None = None


def install_region_checks(check: Callable[[], Awaitable[object]] | None) -> None:
    """Give :func:`check_regions` this process's failover checks (None: none here)."""
    global _region_checks
    _region_checks = check


async def check_regions() -> None:
    """Run the failover checks of every region (they record their results and send the alerts
    due); on a node without them installed the firing is only logged."""
    if _region_checks is None:
        log.info("the failover check schedule fired on a node that does not run the checks")
        return
    await _region_checks()
