"""What keeps password checks from becoming a denial of service: a throttle of failed logins
per account and per source address, and one small bounded pool of threads that scrypt runs on.

Every scrypt costs tens of milliseconds of CPU on purpose. Run on the event loop, a flood of
wrong passwords stalls every request of the process; run without a bound, it takes every core.
So a check that is not answered from :class:`~registry.auth.passwords.VerifiedCache`:

1. reserves one failure on the account's and the source's bucket (:meth:`LoginThrottle.reserve`);
   an empty bucket refuses at once, with the seconds to wait (:class:`LoginThrottled`);
2. runs scrypt on :class:`CheckPool` (one thread by default, a bounded queue: a full queue
   refuses at once too);
3. on success gives the reservation back (:meth:`LoginThrottle.succeeded`).

Buckets (``burst`` failures, refilled at ``refill_per_second``)::

    account:<name>    guesses at one account, from anywhere
    source:<address>  guesses from one address, at any account

A legitimate client that logged in recently is answered from the cache of successes before the
throttle is consulted, so an attack on its account does not lock it out.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["CheckPool", "LoginThrottle", "LoginThrottled"]

T = TypeVar("T")


class LoginThrottled(Exception):
    """Too many failed logins (or checks waiting) to try another now; retry after
    ``retry_after_seconds``. The registry answers ``429 TOOMANYREQUESTS`` with ``Retry-After``."""

    def __init__(self, retry_after_seconds: float, reason: str) -> None:
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))
        self.reason = reason
        super().__init__(f"{reason}; retry after {self.retry_after_seconds} s")


class LoginThrottle:
    """Token buckets of failed logins, one per key; at most ``max_keys`` kept (least recently
    touched forgotten first). Safe to share between threads.

    :param clock: seconds from a monotonic clock; tests pass a fake one.
    """

    def __init__(
        self,
        *,
        burst: int = 20,
        refill_per_second: float = 1.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or refill_per_second <= 0 or max_keys < 1:
            raise ValueError("burst, refill_per_second and max_keys must be positive")
        self.burst, self.refill_per_second, self.max_keys = burst, refill_per_second, max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at
        self._lock = threading.Lock()

    def _level(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.refill_per_second)

    def reserve(self, keys: Sequence[str]) -> float:
        """``0.0``: go ahead, one failure is reserved on every key (give it back with
        :meth:`succeeded`); else the seconds until a check may be tried (nothing reserved)."""
        now = self._clock()
        with self._lock:
            levels = {key: self._level(key, now) for key in keys}
            short = [(1.0 - level) / self.refill_per_second for level in levels.values()]
            wait = max([s for s in short if s > 0], default=0.0)
            if wait > 0:
                return wait
            for key, level in levels.items():
                self._set(key, level - 1.0, now)
            return 0.0

    def succeeded(self, keys: Sequence[str]) -> None:
        """The reserved check succeeded: give its reservation back."""
        now = self._clock()
        with self._lock:
            for key in keys:
                self._set(key, self._level(key, now) + 1.0, now)

    def _set(self, key: str, tokens: float, now: float) -> None:
        if tokens >= self.burst:
            self._buckets.pop(key, None)  # a full bucket needs no row
            return
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)


def _yield_cpu_to_serving() -> None:
    """Lower this thread's CPU priority (Linux schedules threads on their own), so that on a
    busy machine the event loop serving requests runs before password checks."""
    # not Linux, or not permitted: the checks run at normal priority
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class CheckPool:
    """``workers`` threads for password checks and at most ``max_pending`` checks queued or
    running; :meth:`submit` refuses (returns None) when full instead of queueing without end.
    The threads run at a lower CPU priority than the rest of the process."""

    def __init__(self, *, workers: int = 1, max_pending: int = 32) -> None:
        if workers < 1 or max_pending < workers:
            raise ValueError("workers must be positive and max_pending at least workers")
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(
            workers, thread_name_prefix="seawall-password", initializer=_yield_cpu_to_serving
        )
        self._slots = threading.BoundedSemaphore(max_pending)

    def submit(self, fn: Callable[..., T], *args: object) -> Future[T] | None:
        if not self._slots.acquire(blocking=False):
            return None
        return self._executor.submit(self._run, fn, *args)

    def _run(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return fn(*args)
        finally:
            self._slots.release()  # before the result is visible: a caller may submit again
