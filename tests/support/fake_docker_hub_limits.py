"""The Docker Hub fake's pull limit: pulls per caller (a Docker ID, or ``anonymous``) on a
sliding window of the fake's clock, and the headers Hub puts on manifest answers::

    ratelimit-limit: 100;w=21600
    ratelimit-remaining: 76;w=21600
    docker-ratelimit-source: <the caller: an address for anonymous pulls>
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

__all__ = ["PullLedger"]


class PullLedger:
    """Pulls spent per caller (thread-safe).

    :param default_limit: pulls per window of a caller not in :attr:`limits` (None: none).
    :param window_seconds: the sliding window.
    :param clock: seconds (the fake's clock).
    """

    def __init__(
        self, default_limit: int | None, window_seconds: float, clock: Callable[[], float]
    ) -> None:
        self.default_limit = default_limit
        self.window_seconds = window_seconds
        self.clock = clock
        self.limits: dict[str, int | None] = {}  # per caller, over default_limit
        self._pulls: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self._lock = threading.Lock()

    def limit_of(self, caller: str) -> int | None:
        with self._lock:
            return self.limits.get(caller, self.default_limit)

    def remaining(self, caller: str) -> int | None:
        """Pulls ``caller`` has left in the window now (None: unlimited)."""
        limit = self.limit_of(caller)
        if limit is None:
            return None
        return max(0, limit - self.pulls(caller))

    def pulls(self, caller: str) -> int:
        """Pulls ``caller`` spent in the current window."""
        with self._lock:
            pulls = self._pulls[caller]
            while pulls and pulls[0] <= self.clock() - self.window_seconds:
                pulls.popleft()
            return len(pulls)

    def spend(self, caller: str) -> None:
        with self._lock:
            self._pulls[caller].append(self.clock())

    def frees_in_seconds(self, caller: str) -> int:
        """Whole seconds until the oldest pull in the window leaves it (at least 1)."""
        with self._lock:
            pulls = self._pulls[caller]
            oldest = pulls[0] if pulls else self.clock()
        return max(1, int(oldest + self.window_seconds - self.clock()) + 1)

    def headers(self, caller: str, limit: int, left: int) -> dict[str, str]:
        window = f"{self.window_seconds:g}"
        return {
            "ratelimit-limit": f"{limit};w={window}",
            "ratelimit-remaining": f"{max(left, 0)};w={window}",
            "docker-ratelimit-source": caller if caller != "anonymous" else "127.0.0.1",
        }
