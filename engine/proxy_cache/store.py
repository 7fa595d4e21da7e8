"""Reading and writing proxy-cache namespaces (:class:`ProxyCacheStore`), and the one rule a
namespace name must follow (:func:`check_namespace`).

A namespace is one repository path component (``[a-z0-9]`` runs joined by ``.``, ``_``,
``__`` or dashes; at most :data:`MAX_NAMESPACE_CHARS`; not all digits), not another proxy
cache's, and not in use: no repository ``NAMESPACE`` or ``NAMESPACE/…`` holds a tag or a
manifest that clients pushed (content a removed proxy cache of the same name left is no
obstacle: the name may be added again). The management API validates and then writes
through the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.proxy_cache.models import ProxyCacheNamespace
from engine.state.models import RegistryEndpoint
from registry.meta.db import Database
from registry.meta.models import utcnow

__all__ = [
    "MAX_NAMESPACE_CHARS",
    "MAX_TTL_SECONDS",
    "MIN_TTL_SECONDS",
    "ProxyCacheRecord",
    "ProxyCacheStore",
    "check_namespace",
]

N = ProxyCacheNamespace.__table__  # type: ignore[attr-defined]
R = RegistryEndpoint.__table__  # type: ignore[attr-defined]

MAX_NAMESPACE_CHARS = 63
MIN_TTL_SECONDS = 1.0
MAX_TTL_SECONDS = 30 * 86400.0
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")

#: A repository under the namespace holding what clients pushed: a tag, or a manifest in a
#: repository the proxy cache never cached a tag of. ``/`` + 1 is ``0``: a range, no LIKE.
_IN_USE = text(
    "SELECT r.name FROM repository r WHERE (r.name = :ns OR (r.name >= :lo AND r.name < :hi)) "
    "AND (EXISTS (SELECT 1 FROM tag t WHERE t.repository_id = r.id) "
    "OR (EXISTS (SELECT 1 FROM repo_manifest rm WHERE rm.repository_id = r.id) "
    "AND NOT EXISTS (SELECT 1 FROM proxy_tag p WHERE p.repository = r.name))) LIMIT 1"
)


def check_namespace(name: str) -> str:
    """``name`` if it is one valid repository path component. :raises ValueError: why not."""
    if not name or len(name) > MAX_NAMESPACE_CHARS:
        raise ValueError(f"a namespace is 1 to {MAX_NAMESPACE_CHARS} characters")
    if not _COMPONENT.match(name):
        raise ValueError(
            f"namespace {name[:80]!r} is not one repository path component: lowercase letters "
            "and digits, joined by '.', '_', '__' or '-' (no '/')"
        )
    if name.isdigit():
        raise ValueError(f"namespace {name!r} must not be all digits (ids are)")
    return name


@dataclass(frozen=True, slots=True)
class ProxyCacheRecord:
    id: int
    name: str
    ttl_seconds: float
    registry_id: int
    endpoint_name: str | None  # None: the endpoint row is gone
    endpoint_type: str | None
    endpoint_url: str | None
    creation_time: datetime
    update_time: datetime

    def to_json(self) -> dict[str, Any]:
        registry = {
            "id": self.registry_id,
            "name": self.endpoint_name,
            "type": self.endpoint_type,
            "url": self.endpoint_url,
        }
        return {
            "id": self.id,
            "name": self.name,
            "registry": registry,
            "ttl_seconds": self.ttl_seconds,
            "creation_time": self.creation_time,
            "update_time": self.update_time,
        }


def _record(row: Any) -> ProxyCacheRecord:
    return ProxyCacheRecord(
        id=int(row["id"]),
        name=row["name"],
        ttl_seconds=float(row["ttl_seconds"]),
        registry_id=int(row["registry_id"]),
        endpoint_name=row["endpoint_name"],
        endpoint_type=row["endpoint_type"],
        endpoint_url=row["url"],
        creation_time=row["creation_time"],
        update_time=row["update_time"],
    )


_COLUMNS = (N, R.c.name.label("endpoint_name"), R.c.type.label("endpoint_type"), R.c.url)


class ProxyCacheStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def all(self) -> list[ProxyCacheRecord]:
        """Every proxy-cache namespace, by name."""
        stmt = select(*_COLUMNS).outerjoin(R, R.c.id == N.c.registry_id).order_by(N.c.name)
        async with self.db.read() as c:
            return [_record(r) for r in (await c.execute(stmt)).mappings().all()]

    async def get(self, ref: str) -> ProxyCacheRecord | None:
        """The namespace named ``ref``, or with id ``ref`` (names of digits only are ids)."""
        where = N.c.id == int(ref) if ref.isascii() and ref.isdigit() else N.c.name == ref
        stmt = select(*_COLUMNS).outerjoin(R, R.c.id == N.c.registry_id).where(where)
        async with self.db.read() as c:
            row = (await c.execute(stmt)).mappings().first()
        return None if row is None else _record(row)

    @staticmethod
    async def in_use(c: AsyncConnection, name: str) -> str | None:
        """A repository under namespace ``name`` holding pushed content, or None."""
        row = (await c.execute(_IN_USE, {"ns": name, "lo": f"{name}/", "hi": f"{name}0"})).first()
        return None if row is None else str(row[0])

    @staticmethod
    async def create(c: AsyncConnection, name: str, registry_id: int, ttl_seconds: float) -> int:
        """Insert a namespace in the caller's transaction (its checks done there); the id."""
        now = utcnow()
        res = await c.execute(
            insert(N).values(
                name=name,
                registry_id=registry_id,
                ttl_seconds=ttl_seconds,
                creation_time=now,
                update_time=now,
            )
        )
        return int(res.inserted_primary_key[0])  # type: ignore[index]

    async def set_ttl(self, name: str, ttl_seconds: float) -> bool:
        async with self.db.write() as c:
            done = await c.execute(
                update(N)
                .where(N.c.name == name)
                .values(ttl_seconds=ttl_seconds, update_time=utcnow())
            )
        return bool(done.rowcount)

    async def delete(self, name: str) -> bool:
        """Remove the namespace (what it cached stays, served as an ordinary repository's
        content would be, until deleted); whether it existed."""
        async with self.db.write() as c:
            gone = await c.execute(delete(N).where(N.c.name == name))
        return bool(gone.rowcount)
