"""The replication service inside a Seawall process: claims executions and runs them.

Every node runs one; executions are claimed through database leases, so with a shared database
each run executes on exactly one node at a time, and a dead node's runs are taken over once
their lease expires. Leases run on the database's clock (:mod:`registry.meta.leases`); the
node's own clock (``clock``) is only compared with it, once at start, to warn of a skew.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import anyio
from anyio.abc import TaskGroup

from engine.latency import ReplicationLatency
from engine.notify import Notifier
from engine.observers import RunObserver
from engine.runner import AdapterFactory, Runner
from engine.state.runs import RunStore
from engine.state.secrets import SecretBox
from registry.meta.db import Database
from registry.meta.models import utcnow
from schedules.jobs import Runtime, install
from schedules.outbox import OutboxConsumer
from schedules.scheduler import ScheduleService

__all__ = ["ReplicationService", "node_id"]

log = logging.getLogger("seawall.engine")

#: A node clock this far from the database's is reported at start (leases do not depend on it).
CLOCK_SKEW_WARNING = timedelta(seconds=5)


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ReplicationService:
    def __init__(
        self,
        db: Database,
        adapters: AdapterFactory,
        *,
        max_parallel_runs: int = 4,
        poll_seconds: float = 2.0,
        lease_seconds: float = 30.0,
        observers: Sequence[RunObserver] = (),
        reconcile_seconds: float = 3600.0,
        help_other_nodes: bool = True,
        secrets: SecretBox | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``reconcile_seconds``: how often event-based policies also run whole (0: never).
        ``help_other_nodes``: with free slots, run waiting tasks of other nodes' runs.
        ``clock``: this node's clock (see :class:`~engine.state.runs.RunStore`)."""
        identity = node_id()
        self.store = RunStore(db, identity, timedelta(seconds=lease_seconds), clock=clock)
        # new event runs wake the claim loop only: a schedule sync per event batch (the
        # policies and APScheduler's schedules read, its scheduler woken to acquire) is for
        # policy changes (wake), and under a stream of pushes it contended for the database
        self.outbox = OutboxConsumer(db, self._poke)
        self.schedules = ScheduleService(db, identity=identity, reconcile_seconds=reconcile_seconds)
        self.help_other_nodes = help_other_nodes
        self.notifier = Notifier(db, secrets=secrets)
        self.latency = ReplicationLatency(db)  # push → replicated, for /metrics
        self.runner = Runner(
            self.store, adapters, observers=[*observers, self.notifier, self.latency]
        )
        self.max_parallel_runs = max_parallel_runs
        self.poll_seconds = poll_seconds
        self._wake = anyio.Event()
        self._slots = anyio.Semaphore(max_parallel_runs)
        self._last_periodic = float("-inf")  # when due retries and runs to help were looked for

    def wake(self) -> None:
        """Something may be ready to run (a new execution) or a policy changed: look now
        rather than at the next poll."""
        self._wake.set()
        self.schedules.wake()

    def _poke(self) -> None:
        """Look for a run to claim now (the current event: the loop replaces it each round)."""
        self._wake.set()

    def outbox_changed(self) -> None:
        """The registry wrote events: the outbox consumer turns them into runs."""
        self.outbox.outbox_changed()

    async def start(self, tg: TaskGroup) -> None:
        self._tg = tg
        await self._report_clock_skew()
        install(Runtime(self.store, self._poke))
        tg.start_soon(self._loop, name="replication-service")
        await self.notifier.start(tg)
        await self.outbox.start(tg)
        await self.schedules.start(tg)

    async def _report_clock_skew(self) -> None:
        try:
            skew = await self.store.clock_skew()
        except Exception:
            log.exception("reading the database's clock failed")
            return
        if abs(skew) >= CLOCK_SKEW_WARNING:
            way = "ahead of" if skew > timedelta(0) else "behind"
            log.warning(
                "node %s: this node's clock is %.0f s %s the database's; leases use the "
                "database's clock, cron schedules this node's: check its time synchronisation",
                self.store.node_id,
                abs(skew.total_seconds()),
                way,
            )

    async def _loop(self) -> None:
        async with anyio.create_task_group() as runs:
            while True:
                due = self._last_periodic + self.poll_seconds - anyio.current_time()
                with anyio.move_on_after(max(0.0, due)):
                    await self._wake.wait()
                self._wake = anyio.Event()
                # due retries and other nodes' runs are looked for once per poll, not at every
                # wake (a wake per run that ends, a run per push per policy: two statements
                # each, a sixth of what an event run cost the database)
                now = anyio.current_time()
                periodic = now - self._last_periodic >= self.poll_seconds
                if periodic:
                    self._last_periodic = now
                    await self._queue_retries()
                while self._slots.value > 0:
                    limit = self._slots.value  # as many as there are free slots, at once
                    try:
                        claimed = await self.store.claim_executions(limit)
                    except Exception:
                        log.exception("claiming an execution failed")
                        break
                    for eid in claimed:
                        await self._slots.acquire()
                        runs.start_soon(self._run, eid, name=f"execution-{eid}")
                    if len(claimed) < limit:
                        break  # nothing more to claim now
                if periodic and self.help_other_nodes and self._slots.value > 0:
                    try:
                        other = await self.store.execution_to_help()
                    except Exception:
                        log.exception("looking for runs to help failed")
                        other = None
                    if other is not None:
                        await self._slots.acquire()
                        runs.start_soon(self._help, other, name=f"help-{other}")

    async def _queue_retries(self) -> None:
        """Failed event runs whose back-off has passed run again (the rows outlive a restart;
        see :mod:`engine.state.retries`)."""
        try:
            queued = await self.store.queue_due_retries()
        except Exception:
            log.exception("queueing event retries failed; trying again at the next poll")
            return
        if queued:
            log.info("event retries queued as executions %s", queued)

    async def _run(self, eid: int) -> None:
        try:
            status = await self.runner.run(eid)
            log.info("execution %s finished: %s", eid, status)
        except Exception:
            log.exception("execution %s crashed; its lease will expire and it will be retried", eid)
        finally:
            self._slots.release()
            self._wake.set()  # a run of the same policy may have been waiting for this one

    async def _help(self, eid: int) -> None:
        try:
            await self.runner.help(eid)
        except Exception:
            log.exception("helping with execution %s failed", eid)
        finally:
            self._slots.release()
