"""When a push was acknowledged: from this Seawall's event outbox.

A push is acknowledged when its manifest is stored: the same transaction writes the outbox
``event`` row (``push``, or ``tag`` when an existing manifest is tagged), so the row's
``created_at`` is the acknowledgement time. An artifact's is the earliest ``push``/``tag``
event of its digest in its repository since it was last deleted there (a ``delete`` of the
digest or a ``delete_repository``). Consumed events are pruned after 7 days: an older
artifact's time is then unknown, which a drill counts as old.

Only this Seawall's outbox is here: the pushes another region took are not known to it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, or_, select

from registry.meta.db import Database
from registry.meta.models import Event

__all__ = ["acknowledged_at"]

V = Event.__table__  # type: ignore[attr-defined]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def acknowledged_at(
    db: Database, repository: str, digest: str, before: datetime
) -> datetime | None:
    """When the push of ``repository@digest`` was acknowledged here, at or before
    ``before`` (None: no event says)."""
    deleted = select(func.max(V.c.id)).where(
        V.c.repository == repository,
        or_(
            V.c.action == "delete_repository",
            (V.c.action == "delete") & (V.c.digest == digest),
        ),
    )
    first = select(func.min(V.c.created_at)).where(
        V.c.repository == repository,
        V.c.digest == digest,
        V.c.action.in_(("push", "tag")),
        V.c.id > func.coalesce(deleted.scalar_subquery(), 0),
        V.c.created_at <= before.astimezone(UTC),
    )
    async with db.read() as c:
        return _utc((await c.execute(first)).scalar())
