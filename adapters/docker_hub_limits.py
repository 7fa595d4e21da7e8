"""Docker Hub's pull limit, as Hub reports it, and the gate every manifest ``GET`` passes.

Hub counts a *pull* per manifest ``GET`` (a ``HEAD`` is free) and says, on each manifest
answer (``HEAD`` and ``GET``), how many are left::

    ratelimit-limit: 100;w=21600        100 pulls per 21600-second (6-hour) window
    ratelimit-remaining: 76;w=21600     76 of them left now

(no such headers: the account has no pull limit). :class:`PullBudget` keeps the latest
reading; :meth:`PullBudget.spend` lets a ``GET`` go only while the pulls left, less the ``GET``
already in flight, stay above the endpoint's floor (``--rate-limit-floor``): the floor is
kept for the fleet's own ``docker pull`` (a CI runner sharing the account or address must not
find it spent by replication). At the floor, the ``GET`` is refused with
:class:`PullLimitReached`, a :class:`~adapters.oci.errors.RateLimited` (the task fails now with
a message naming the budget and when the window frees it, and the engine retries it later):
a replication worker never sleeps for hours on a window. A ``429 TOOMANYREQUESTS`` from Hub
sets the budget to zero. A reading older than its window says nothing any more.

:class:`ObservingTransport` reads the headers off every manifest answer, below the session,
so every path (a ``HEAD`` of the copier, a ``GET`` of the listing) keeps the reading current.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.oci.errors import RateLimited
from adapters.oci.transport import Request, Response, Transport

__all__ = [
    "LIMIT_HEADER",
    "REMAINING_HEADER",
    "ObservingTransport",
    "PullBudget",
    "PullLimitReached",
    "RateLimitReading",
    "parse_rate_limit",
]

LIMIT_HEADER = "ratelimit-limit"
REMAINING_HEADER = "ratelimit-remaining"
_VALUE = re.compile(r"^\s*(\d{1,12})\s*(?:;\s*w\s*=\s*(\d{1,9})\s*)?(?:;.*)?$")
_DEFAULT_WINDOW_SECONDS = 21600.0  # Hub's documented 6 hours, when a header leaves it out


class PullLimitReached(RateLimited):
    """Docker Hub's pull budget is at the endpoint's floor (or spent): no manifest ``GET``
    is sent until the window frees pulls. ``retry_after_seconds`` says when, at the latest."""

    hint = (
        "wait for the window, log in (an account's limit is higher than an address's), "
        "or lower --rate-limit-floor"
    )


def parse_rate_limit(value: str | None) -> tuple[int, float] | None:
    """``"76;w=21600"`` → ``(76, 21600.0)``; None when absent or not that form."""
    if not value:
        return None
    m = _VALUE.match(value)
    if m is None:
        return None
    window = float(m.group(2)) if m.group(2) else _DEFAULT_WINDOW_SECONDS
    return int(m.group(1)), window


@dataclass(frozen=True, slots=True)
class RateLimitReading:
    """What Hub last said: ``remaining`` of ``limit`` pulls per ``window_seconds``, read at
    ``read_at`` (seconds of the budget's clock)."""

    limit: int
    remaining: int
    window_seconds: float
    read_at: float

    def frees_at(self) -> float:
        """When every pull counted in this reading has left the window, at the latest."""
        return self.read_at + self.window_seconds


class PullBudget:
    """Hub's latest pull-limit reading for one endpoint, and the gate of manifest ``GET``\\s.

    :param floor: pulls kept in reserve: a ``GET`` goes only while the pulls left, less those
        in flight, are more than this.
    :param clock: seconds (``time.time``; tests inject one).
    """

    def __init__(self, floor: int, clock: Callable[[], float] = time.time) -> None:
        if floor < 0:
            raise ValueError("the pull budget's floor must not be negative")
        self.floor = floor
        self._clock = clock
        self.reading: RateLimitReading | None = None
        self.in_flight = 0
        self.gets = 0  # manifest GETs let through (for stats and tests)
        self.refused = 0  # manifest GETs refused at the floor

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take the reading from a manifest answer's headers (none: nothing changes)."""
        remaining = parse_rate_limit(headers.get(REMAINING_HEADER))
        if remaining is None:
            return
        limit = parse_rate_limit(headers.get(LIMIT_HEADER))
        left, window = remaining
        self.reading = RateLimitReading(
            limit[0] if limit else max(left, 0), left, window, self._clock()
        )

    def exhausted(self) -> None:
        """Hub answered ``429``: nothing is left in the window."""
        last = self.reading
        limit = last.limit if last else 0
        window = last.window_seconds if last else _DEFAULT_WINDOW_SECONDS
        self.reading = RateLimitReading(limit, 0, window, self._clock())

    def current(self) -> RateLimitReading | None:
        """The reading, or None when there is none or it is older than its window."""
        reading = self.reading
        if reading is None or self._clock() >= reading.frees_at():
            return None
        return reading

    def allows(self) -> bool:
        """Whether one more ``GET`` stays above the floor by the current reading."""
        reading = self.current()
        return reading is None or reading.remaining - self.in_flight > self.floor

    @contextmanager
    def spend(self, what: str, url: str) -> Iterator[None]:
        """Hold one pull for a ``GET`` of ``what`` while the block runs.

        :raises PullLimitReached: the budget is at the floor (nothing was sent).
        """
        if not self.allows():
            self.refused += 1
            raise self.refusal(what, url)
        self.in_flight += 1
        self.gets += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def refusal(self, what: str, url: str, *, status: int | None = None) -> PullLimitReached:
        """The error that says the budget is spent, naming it and when it frees up."""
        reading = self.current() or self.reading
        now = self._clock()
        if reading is None:
            budget = "no pulls left"
            wait = _DEFAULT_WINDOW_SECONDS
        else:
            budget = (
                f"{reading.remaining} of {reading.limit} pulls left in Hub's "
                f"{reading.window_seconds:g}-second window"
            )
            wait = max(0.0, reading.frees_at() - now)
        when = datetime.fromtimestamp(now + wait, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        reason = (
            "Docker Hub refused it (429 TOOMANYREQUESTS)"
            if status == 429
            else f"the floor of {self.floor} pulls is kept in reserve"
        )
        return PullLimitReached(
            f"Docker Hub pull limit: {budget}; {reason}, so the manifest {what} was not "
            f"fetched (a manifest GET is a pull, a HEAD is not); the window frees these pulls "
            f"by {when} at the latest (in {wait:.0f} s)",
            status=status or 429,
            code="TOOMANYREQUESTS",
            method="GET",
            url=url,
            retry_after_seconds=wait,
        )


class ObservingTransport:
    """A :class:`Transport` that hands every manifest answer's headers to a budget."""

    def __init__(self, inner: Transport, budget: PullBudget) -> None:
        self.inner = inner
        self.budget = budget

    async def send(self, request: Request) -> Response:
        response = await self.inner.send(request)
        if "/manifests/" in request.url:
            self.budget.observe(response.headers)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
