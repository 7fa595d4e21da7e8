"""Per-endpoint pacing: how many requests may be in flight, how many may start per second, and
how long to wait before trying again (backoff with jitter, ``Retry-After``).

A ``429`` pauses the whole endpoint, not just the request that got it: every request to that
host waits until the registry said it may come back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["EndpointLimiter", "RetryPolicy", "parse_retry_after_seconds"]


def parse_retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to try again.

    ``retries`` bounds transient failures (5xx, connection errors, timeouts) and, separately,
    ``429`` answers. A ``Retry-After`` longer than ``max_retry_after_seconds`` is not waited
    for: the client raises ``RateLimited`` so that the caller can reschedule the work.
    """

    retries: int = 5
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    max_retry_after_seconds: float = 300.0

    def backoff_seconds(self, attempt: int) -> float:
        """Exponential backoff with equal jitter for retry number ``attempt`` (0-based)."""
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class EndpointLimiter:
    """Max in flight (a semaphore), requests per second (a token bucket), and a pause window.

    ``acquire`` takes an in-flight slot, then waits for the pause window to pass and for a
    token; ``release`` gives the slot back. The bucket holds at most one second of tokens.
    """

    def __init__(
        self,
        max_in_flight: int,
        requests_per_second: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if requests_per_second is not None and requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive (or None for no limit)")
        self._slots = asyncio.Semaphore(max_in_flight)
        self._rate = requests_per_second
        self._capacity = max(1.0, requests_per_second or 0.0)
        self._tokens = self._capacity
        self._clock = clock
        self._stamp = clock()
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Let no request start for ``seconds`` from now (keeps the longest pause)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        await self._slots.acquire()
        try:
            await self._wait_turn()
        except BaseException:
            self._slots.release()
            raise

    def release(self) -> None:
        self._slots.release()

    async def _wait_turn(self) -> None:
        while True:
            now = self._clock()
            if now < self._paused_until:
                await asyncio.sleep(self._paused_until - now)
                continue
            if self._rate is None:
                return
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._rate)
