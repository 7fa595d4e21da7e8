"""Cron expressions of replication policies, as APScheduler triggers.

Harbor's policies carry six fields with seconds first (``0 0 2 * * *``: every day at 02:00);
the usual crontab has five (``0 2 * * *``). Both are accepted. Day-of-week numbers follow cron
(0 or 7 is Sunday). The time zone is an IANA name (``Europe/Paris``); ``UTC`` by default.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

__all__ = ["CronError", "cron_trigger", "validate_cron"]

FIELDS = ("second", "minute", "hour", "day", "month", "day_of_week")


class CronError(ValueError):
    """A cron expression or time zone that cannot be scheduled (the message says why)."""


def cron_trigger(
    expression: str, timezone: str = "UTC", *, after: datetime | None = None
) -> CronTrigger:
    """The trigger of ``expression`` in ``timezone``; its first fire time is the first whole
    second matching it after ``after`` (now by default). APScheduler 4.0.0a6's default start
    time would fire at once, mid-second, when a schedule is set during a matching second, and
    it reads a start time's fields as if they were in the trigger's zone (so the start time is
    given in that zone)."""
    values = expression.split()
    if len(values) == 5:
        values = ["0", *values]
    if len(values) != 6:
        raise CronError(
            f"cron {expression!r}: expected 5 fields (minute hour day month weekday) or 6 "
            f"(Harbor's: second minute hour day month weekday), got {len(values)}"
        )
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise CronError(f"time zone {timezone!r} is not an IANA time zone name") from e
    try:
        start = (after or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)
        return CronTrigger(
            **dict(zip(FIELDS, values, strict=True)),
            timezone=zone,
            start_time=start.astimezone(zone),
        )
    except ValueError as e:
        raise CronError(f"cron {expression!r}: {e}") from e


def validate_cron(expression: str, timezone: str = "UTC") -> None:
    """Raise :class:`CronError` when the expression or the time zone is not valid."""
    cron_trigger(expression, timezone)
