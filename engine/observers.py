"""What a run tells the world while it goes: started, an artifact replicated, finished.

The runner calls every registered :class:`RunObserver`; outgoing notifications (per-policy
webhooks) are one. Observers must return quickly and never raise into the run: anything slow
(an HTTP delivery) is queued durably and done elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import anyio

__all__ = ["RunEnded", "RunObserver", "notify_all"]

log = logging.getLogger("seawall.engine")


class RunObserver(Protocol):
    async def run_started(self, execution: dict[str, Any], policy: dict[str, Any]) -> None:
        """The run was claimed by this node and is about to plan (or resume) its tasks."""

    async def task_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], task: dict[str, Any]
    ) -> None:
        """A task ended: ``task`` is its row as stored (``status``, ``outcome``, ``reason``,
        ``src_repository``, ``dst_repository``, ``digest``, ``tags_json``, ``bytes_copied``…)."""

    async def run_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], status: str
    ) -> None:
        """The run ended with ``status`` (``Succeed``, ``Failed``, ``Stopped``); ``execution``
        is its row after the roll-up (counters, ``status_text``, times)."""


async def notify_all(observers: Sequence[RunObserver], method: str, *args: Any) -> None:
    """Call ``method`` on every observer; an observer's failure is logged, never raised."""
    for observer in observers:
        try:
            await getattr(observer, method)(*args)
        except Exception:
            log.exception("run observer %r failed in %s", observer, method)


class RunEnded:
    """An observer that wakes whoever waits for a run of this node to end (the API's
    ``GET /replication/executions/{id}?wait=``). Runs that end on another node are not heard
    here: waiters also re-read on their own, every fraction of a second."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    async def run_started(self, execution: dict[str, Any], policy: dict[str, Any]) -> None:
        pass

    async def task_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], task: dict[str, Any]
    ) -> None:
        pass

    async def run_finished(
        self, execution: dict[str, Any], policy: dict[str, Any], status: str
    ) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def wait(self, seconds: float) -> None:
        """Return when a run of this node ends, or after ``seconds``."""
        with anyio.move_on_after(seconds):
            await self._event.wait()
