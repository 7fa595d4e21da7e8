"""The SQL of tag origins and tombstones, inside the content store's transactions.

A tag row carries its origin (``origin_region``, ``origin_at``: the region that took the
client's push and its database time then, or what a replicating Seawall carried through). A
deleted tag leaves a ``tag_tombstone`` row (the digest it named, the deletion's origin,
``deleted_at`` in this registry's time); setting the tag again removes it, and a repository's
tombstones older than the retention are pruned whenever it gets a new one. See
:mod:`registry.oci.origin` for the values and their wire forms.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from registry.meta.fence import stamp, utc_now
from registry.meta.sql import SqlBackend, Tx
from registry.oci.origin import EPOCH, Origin, Tombstone, is_region_name

__all__ = [
    "clear_tombstone",
    "db_time",
    "origin_of",
    "tombstone_of",
    "write_tombstones",
]


def db_time(value: Any) -> datetime:
    """A timestamp column's value as an aware UTC datetime (SQLite hands back its text form;
    PostgreSQL a datetime)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace(" ", "T")).replace(tzinfo=UTC)


def origin_of(region: Any, at: Any) -> Origin | None:
    """A tag row's origin; None for a tag written before origins were recorded."""
    if region is None or at is None or not is_region_name(str(region)):
        return None
    moment = db_time(at)
    return Origin(moment if moment > EPOCH else EPOCH, str(region))


def tombstone_of(digest: Any, region: Any, at: Any) -> Tombstone | None:
    origin = origin_of(region, at)
    return None if origin is None else Tombstone(str(digest), origin)


def clear_tombstone(t: Tx, rid: int, tag: str) -> None:
    """The tag is set again: it is no longer deleted."""
    t.execute(
        "DELETE FROM tag_tombstone WHERE repository_id = :rid AND name = :tag", rid=rid, tag=tag
    )


def write_tombstones(
    t: Tx,
    sql: SqlBackend,
    rid: int,
    tags: Iterable[tuple[str, str]],
    origin: Origin,
    retention_seconds: float,
) -> None:
    """Tombstones for ``tags`` (``(name, digest)``) deleted with ``origin``; then the
    repository's tombstones past the retention go."""
    now = utc_now()
    rows = [
        {
            "rid": rid,
            "name": name,
            "d": digest,
            "region": origin.region,
            "at": stamp(sql, origin.at),
            "now": stamp(sql, now),
        }
        for name, digest in tags
    ]
    if not rows:
        return
    t.executemany(
        "INSERT INTO tag_tombstone (repository_id, name, digest, origin_region, origin_at, "
        "deleted_at) VALUES (:rid, :name, :d, :region, :at, :now) "
        "ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, "
        "origin_region = excluded.origin_region, origin_at = excluded.origin_at, "
        "deleted_at = excluded.deleted_at",
        rows,
    )
    cutoff = stamp(sql, now - timedelta(seconds=retention_seconds))
    t.execute(
        "DELETE FROM tag_tombstone WHERE repository_id = :rid AND deleted_at < :cutoff",
        rid=rid,
        cutoff=cutoff,
    )
