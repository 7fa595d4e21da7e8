"""Counters of storage operations, kept by :class:`registry.storage.checked.CheckedDriver` for
every driver alike: calls, failures, time spent and bytes moved, per operation.

In-process and lock-free (one event loop per worker): read with :meth:`StorageMetrics.snapshot`,
which returns frozen values. The clock is injectable so tests never depend on wall time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["OperationStats", "StorageMetrics"]


@dataclass(frozen=True, slots=True)
class OperationStats:
    """Totals for one operation (``stat``, ``reader``, ``writer.write``, …) of one driver."""

    calls: int = 0
    errors: int = 0
    seconds_total: float = 0.0
    bytes_total: int = 0


@dataclass
class _Counter:
    calls: int = 0
    errors: int = 0
    seconds_total: float = 0.0
    bytes_total: int = 0


@dataclass
class StorageMetrics:
    """Per-operation totals. ``clock`` returns seconds (monotonic)."""

    clock: Callable[[], float] = time.perf_counter
    _counters: dict[str, _Counter] = field(default_factory=dict)

    def started(self) -> float:
        return self.clock()

    def record(
        self, operation: str, started: float, *, error: bool = False, bytes_moved: int = 0
    ) -> None:
        """Count one call of ``operation`` that began at ``started`` (from :meth:`started`)."""
        counter = self._counters.get(operation)
        if counter is None:
            counter = self._counters[operation] = _Counter()
        counter.calls += 1
        counter.errors += int(error)
        counter.seconds_total += max(self.clock() - started, 0.0)
        counter.bytes_total += bytes_moved

    def add_bytes(self, operation: str, bytes_moved: int) -> None:
        """Bytes moved by a stream after its call was counted (a reader's chunks)."""
        counter = self._counters.get(operation)
        if counter is None:
            counter = self._counters[operation] = _Counter()
        counter.bytes_total += bytes_moved

    def snapshot(self) -> Mapping[str, OperationStats]:
        """Operation → frozen totals."""
        return MappingProxyType(
            {
                op: OperationStats(c.calls, c.errors, c.seconds_total, c.bytes_total)
                for op, c in sorted(self._counters.items())
            }
        )
