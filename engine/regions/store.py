"""Reading and writing regions and their latest checks.

The management API validates what it is given (names, endpoints, patterns) and then writes
through :class:`RegionStore`; the checks read the regions, their endpoints and the policies
that replicate there through it, and record their results with :meth:`RegionStore.save`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.regions.models import Region, RegionCheck
from engine.state.models import Policy, RegistryEndpoint
from registry.meta.db import Database
from registry.meta.models import utcnow

__all__ = ["EndpointRef", "LatestCheck", "RegionRecord", "RegionStore"]

G = Region.__table__  # type: ignore[attr-defined]
K = RegionCheck.__table__  # type: ignore[attr-defined]
R = RegistryEndpoint.__table__  # type: ignore[attr-defined]
P = Policy.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class EndpointRef:
    """The registry endpoint a region is (what responses show of it: never its secret)."""

    id: int
    name: str
    type: str
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "type": self.type, "url": self.url}


@dataclass(frozen=True, slots=True)
class RegionRecord:
    id: int
    name: str
    registry_id: int
    description: str
    repositories: tuple[str, ...]
    creation_time: datetime
    update_time: datetime
    endpoint: EndpointRef | None  # None: the endpoint row is gone


@dataclass(frozen=True, slots=True)
class LatestCheck:
    """A region's latest recorded check: its result as JSON and when it was made."""

    name: str
    healthy: bool
    consistent: bool
    lag_seconds: float | None
    checked_at: datetime
    report: dict[str, Any]


def _patterns(raw: str | None) -> tuple[str, ...]:
    try:
        found = json.loads(raw or "[]")
    except ValueError:
        return ()
    return tuple(str(p) for p in found) if isinstance(found, list) else ()


def _record(row: Any) -> RegionRecord:
    endpoint = None
    if row["endpoint_name"] is not None:
        endpoint = EndpointRef(
            int(row["registry_id"]), row["endpoint_name"], row["endpoint_type"], row["url"]
        )
    return RegionRecord(
        id=int(row["id"]),
        name=row["name"],
        registry_id=int(row["registry_id"]),
        description=row["description"] or "",
        repositories=_patterns(row["repositories_json"]),
        creation_time=row["creation_time"],
        update_time=row["update_time"],
        endpoint=endpoint,
    )


_COLUMNS = (
    G,
    R.c.name.label("endpoint_name"),
    R.c.type.label("endpoint_type"),
    R.c.url,
)


class RegionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> list[RegionRecord]:
        """Every declared region, by name."""
        stmt = select(*_COLUMNS).outerjoin(R, R.c.id == G.c.registry_id).order_by(G.c.name)
        async with self.db.read() as c:
            return [_record(r) for r in (await c.execute(stmt)).mappings().all()]

    async def get(self, name: str) -> RegionRecord | None:
        stmt = select(*_COLUMNS).outerjoin(R, R.c.id == G.c.registry_id).where(G.c.name == name)
        async with self.db.read() as c:
            row = (await c.execute(stmt)).mappings().first()
        return None if row is None else _record(row)

    async def create(
        self,
        c: AsyncConnection,
        name: str,
        registry_id: int,
        description: str,
        repositories: Sequence[str],
    ) -> int:
        """Insert a region in the caller's transaction (its checks done there); the id."""
        now = utcnow()
        res = await c.execute(
            insert(G).values(
                name=name,
                registry_id=registry_id,
                description=description,
                repositories_json=json.dumps(list(repositories)),
                creation_time=now,
                update_time=now,
            )
        )
        return int(res.inserted_primary_key[0])  # type: ignore[index]

    async def delete(self, name: str) -> bool:
        """Delete the region and its latest check; whether it existed."""
        async with self.db.write() as c:
            gone = await c.execute(delete(G).where(G.c.name == name))
            await c.execute(delete(K).where(K.c.name == name))
        return bool(gone.rowcount)

    async def policies(self, registry_id: int | None) -> list[dict[str, Any]]:
        """The enabled policies replicating between this registry and ``registry_id`` (either
        way; None: every enabled policy that has this registry on a side), by id."""
        local = or_(P.c.src_registry_id.is_(None), P.c.dest_registry_id.is_(None))
        if registry_id is None:
            where = local
        else:
            where = or_(
                (P.c.dest_registry_id == registry_id) & P.c.src_registry_id.is_(None),
                (P.c.src_registry_id == registry_id) & P.c.dest_registry_id.is_(None),
            )
        stmt = select(P).where(P.c.enabled.is_(True), where).order_by(P.c.id)
        async with self.db.read() as c:
            return [dict(r) for r in (await c.execute(stmt)).mappings().all()]

    async def latest(self, names: Sequence[str] | None = None) -> dict[str, LatestCheck]:
        """The latest recorded check of each region (only ``names`` when given)."""
        stmt = select(K)
        if names is not None:
            stmt = stmt.where(K.c.name.in_(list(names)))
        async with self.db.read() as c:
            rows = (await c.execute(stmt)).mappings().all()
        out = {}
        for r in rows:
            try:
                report = json.loads(r["report_json"] or "{}")
            except ValueError:
                report = {}
            out[r["name"]] = LatestCheck(
                r["name"],
                bool(r["healthy"]),
                bool(r["consistent"]),
                r["lag_seconds"],
                r["checked_at"],
                report if isinstance(report, dict) else {},
            )
        return out

    async def save(
        self,
        c: AsyncConnection,
        name: str,
        *,
        healthy: bool,
        consistent: bool,
        lag_seconds: float | None,
        report: dict[str, Any],
        checked_at: datetime,
    ) -> None:
        """Record a region's latest check in the caller's transaction (its alert state kept)."""
        values = {
            "healthy": healthy,
            "consistent": consistent,
            "lag_seconds": lag_seconds,
            "report_json": json.dumps(report, separators=(",", ":")),
            "checked_at": checked_at,
        }
        done = await c.execute(update(K).where(K.c.name == name).values(**values))
        if not done.rowcount:
            await c.execute(insert(K).values(name=name, **values))

    @staticmethod
    async def flip(c: AsyncConnection, name: str, flag: str, value: bool) -> bool:
        """Set alert flag ``flag`` of ``name`` to ``value``; True only for the writer that
        changed it (a conditional ``UPDATE``: concurrent checks send one alert)."""
        column = K.c[flag]
        done = await c.execute(
            update(K).where(K.c.name == name, column != value).values({flag: value})
        )
        return bool(done.rowcount)
