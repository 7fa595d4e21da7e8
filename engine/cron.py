"""Cron expressions of replication policies, as APScheduler triggers.

Harbor's policies carry six fields with seconds first (``0 0 2 * * *``: every day at 02:00);
the usual crontab has five (``0 2 * * *``). Both are accepted. Day-of-week numbers follow cron
(0 or 7 is Sunday). The time zone is an IANA name (``Europe/Paris``); ``UTC`` by default.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

__all__ = ["CronError", "cron_trigger", "validate_cron"]

FIELDS = ("second", "minute", "hour", "day", "month", "day_of_week")
MAX_EXPRESSION_CHARS = 256
_NUMBER = re.compile(r"[0-9]+")


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
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CronError(f"cron expression is longer than {MAX_EXPRESSION_CHARS} characters")
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
    _check_weekdays(expression, values[5])
    try:
        start = (after or datetime.now(UTC)).replace(microsecond=0) + timedelta(seconds=1)
        return CronTrigger(
            **dict(zip(FIELDS, values, strict=True)),
            timezone=zone,
            start_time=start.astimezone(zone),
        )
    except Exception as e:  # APScheduler's parser raises ValueError, and on some input others
        raise CronError(f"cron {expression!r}: {e}") from None


def _check_weekdays(expression: str, field: str) -> None:
    """Weekday numbers are 0-7 (0 and 7 are Sunday); APScheduler fails on larger ones with an
    IndexError instead of saying so."""
    for number in _NUMBER.findall(field.split("/", 1)[0]):
        if len(number) > 2 or int(number) > 7:
            raise CronError(
                f"cron {expression!r}: day of week {number} is not 0-7 (0 and 7 are Sunday) "
                "or a name (mon-sun)"
            )


def validate_cron(expression: str, timezone: str = "UTC") -> None:
    """Raise :class:`CronError` when the expression or the time zone is not valid, or the
    schedule would never fire (``0 0 0 31 2 *``: February has no 31st)."""
    try:
        never = cron_trigger(expression, timezone).next() is None
    except CronError:
        raise
    except Exception as e:
        raise CronError(f"cron {expression!r}: {e}") from None
    if never:
        raise CronError(f"cron {expression!r} never fires: check the day and the month")
