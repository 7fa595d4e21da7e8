"""What a run tells the world while it goes: started, an artifact replicated, finished.

The runner calls every registered :class:`RunObserver`; outgoing notifications (per-policy
webhooks) are one. Observers must return quickly and never raise into the run: anything slow
(an HTTP delivery) is queued durably and done elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["RunObserver", "notify_all"]

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
