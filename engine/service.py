"""The replication service inside a Seawall process: claims executions and runs them.

Every node runs one; executions are claimed through database leases, so with a shared database
each run executes on exactly one node at a time, and a dead node's runs are taken over once
their lease expires.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import timedelta

import anyio
from anyio.abc import TaskGroup

from engine.notify import Notifier
from engine.observers import RunObserver
from engine.runner import ClientFactory, Runner
from engine.state.runs import RunStore
from registry.meta.db import Database

__all__ = ["ReplicationService", "node_id"]

log = logging.getLogger("seawall.engine")


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ReplicationService:
    def __init__(
        self,
        db: Database,
        clients: ClientFactory,
        *,
        max_parallel_runs: int = 4,
        poll_seconds: float = 2.0,
        lease_seconds: float = 30.0,
        observers: Sequence[RunObserver] = (),
    ) -> None:
        self.store = RunStore(db, node_id(), timedelta(seconds=lease_seconds))
        self.notifier = Notifier(db)
        self.runner = Runner(self.store, clients, observers=[*observers, self.notifier])
        self.max_parallel_runs = max_parallel_runs
        self.poll_seconds = poll_seconds
        self._wake = anyio.Event()
        self._slots = anyio.Semaphore(max_parallel_runs)

    def wake(self) -> None:
        """Something may be ready to run (a new execution): look now rather than at next poll."""
        self._wake.set()

    def outbox_changed(self) -> None:
        """The registry wrote events. (Event-triggered policies consume them; until then this
        only wakes the loop.)"""
        self.wake()

    async def start(self, tg: TaskGroup) -> None:
        tg.start_soon(self._loop, name="replication-service")
        await self.notifier.start(tg)

    async def _loop(self) -> None:
        async with anyio.create_task_group() as runs:
            while True:
                with anyio.move_on_after(self.poll_seconds):
                    await self._wake.wait()
                self._wake = anyio.Event()
                while self._slots.value > 0:
                    try:
                        eid = await self.store.claim_execution()
                    except Exception:
                        log.exception("claiming an execution failed")
                        break
                    if eid is None:
                        break
                    await self._slots.acquire()
                    runs.start_soon(self._run, eid, name=f"execution-{eid}")

    async def _run(self, eid: int) -> None:
        try:
            status = await self.runner.run(eid)
            log.info("execution %s finished: %s", eid, status)
        except Exception:
            log.exception("execution %s crashed; its lease will expire and it will be retried", eid)
        finally:
            self._slots.release()
