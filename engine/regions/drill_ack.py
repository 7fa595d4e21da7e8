"""This Seawall's event outbox, as a drill reads it: when a push was acknowledged, and what
changed between the drill's snapshot and the failure.

A push is acknowledged when its manifest is stored: the same transaction writes the outbox
``event`` row (``push``, or ``tag`` when an existing manifest is tagged), so the row's
``created_at`` is the acknowledgement time. An artifact's is the earliest ``push``/``tag``
event of its digest in its repository since it was last deleted there (a ``delete`` of the
digest or a ``delete_repository``). Consumed events are pruned after 7 days: an older
artifact's time is then unknown, which a drill counts as old.

The changes after the snapshot (:func:`changes_after`) are what this Seawall acknowledged
between listing itself and failing: a drill of this Seawall's own region adds them to what is
at risk, so a push taken in that moment still counts.

Only this Seawall's outbox is here: the pushes another region took are not known to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, or_, select

from registry.meta.db import Database
from registry.meta.models import Event

__all__ = ["MAX_CHANGES", "Change", "acknowledged_at", "changes_after", "outbox_position"]

#: Changes read after a snapshot at most (a drill's snapshot is seconds before its failure).
MAX_CHANGES = 100_000

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


@dataclass(frozen=True, slots=True)
class Change:
    """One outbox event: ``push``, ``tag``, ``untag``, ``delete``, ``delete_repository``."""

    action: str
    repository: str
    digest: str | None
    tag: str | None


async def outbox_position(db: Database) -> int:
    """The id of the latest event (0: none)."""
    async with db.read() as c:
        return int((await c.execute(select(func.max(V.c.id)))).scalar() or 0)


async def changes_after(db: Database, position: int, until: datetime) -> list[Change]:
    """The events after ``position`` written at or before ``until``, in order (at most
    :data:`MAX_CHANGES`)."""
    stmt = (
        select(V.c.action, V.c.repository, V.c.digest, V.c.tag)
        .where(V.c.id > position, V.c.created_at <= until.astimezone(UTC))
        .order_by(V.c.id)
        .limit(MAX_CHANGES)
    )
    async with db.read() as c:
        return [Change(*row) for row in (await c.execute(stmt)).all()]
