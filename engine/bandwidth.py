"""A shared bandwidth limit (bytes per second), as a token bucket."""

from __future__ import annotations

import time

import anyio

__all__ = ["BandwidthLimit"]


class BandwidthLimit:
    """Callers ``consume(n)`` before sending n bytes; together they stay under the rate.
    A burst of up to one second's worth is allowed."""

    def __init__(self, bytes_per_second: int) -> None:
        if bytes_per_second <= 0:
            raise ValueError("bytes_per_second must be positive")
        self.rate = float(bytes_per_second)
        self._tokens = self.rate
        self._stamp = time.monotonic()
        self._lock = anyio.Lock()

    async def consume(self, n: int) -> None:
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            deficit = -self._tokens
        if deficit > 0:
            await anyio.sleep(deficit / self.rate)
