"""Accounts (admin, users, robots) and their per-repository grants."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.meta.cache import Invalidator, TTLCache
from registry.meta.db import Database
from registry.meta.models import Account, Permission, utcnow

__all__ = ["ACCOUNTS_CHANNEL", "AccountRecord", "AccountStore", "GrantRow"]

#: The notification channel of account changes (PostgreSQL); the payload is the account name.
ACCOUNTS_CHANNEL = "seawall_accounts"

A = Account.__table__  # type: ignore[attr-defined]
P = Permission.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class GrantRow:
    repository: str
    actions: frozenset[str]


@dataclass(frozen=True, slots=True)
class AccountRecord:
    name: str
    kind: str
    password_hash: str
    disabled: bool
    expires_at: datetime | None
    description: str
    grants: tuple[GrantRow, ...]

    @property
    def stamp(self) -> str:
        """Changes whenever the account is deleted and made again, its password or secret
        changes (a fresh salt each time), or its kind or grants change. Tokens carry it; a token
        whose stamp is not the account's current one is refused."""
        grants = sorted(f"{g.repository}={','.join(sorted(g.actions))}" for g in self.grants)
        text = "\n".join([self.name, self.kind, self.password_hash, *grants])
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]

    @property
    def active(self) -> bool:
        if self.disabled:
            return False
        if self.expires_at is None:
            return True
        expires = self.expires_at if self.expires_at.tzinfo else self.expires_at.replace(tzinfo=UTC)
        return expires > datetime.now(UTC)


class AccountStore:
    """Accounts, with a short-lived read cache: HTTP Basic looks an account up on every request.
    Changes made here are seen at once; changes by another process within ``cache_ttl_seconds``
    — or, with an ``invalidator`` fed by PostgreSQL notifications, as soon as the notification
    of the change arrives (the cache is bypassed while the invalidator is not live).
    """

    def __init__(
        self,
        db: Database,
        *,
        cache_ttl_seconds: float = 2.0,
        invalidator: Invalidator | None = None,
    ) -> None:
        self.db = db
        self._cache: TTLCache[AccountRecord] = TTLCache(1024, cache_ttl_seconds)
        self._inv = invalidator or Invalidator(live=True)
        self._inv.subscribe(ACCOUNTS_CHANNEL, self._notified)
        self._generation = 0  # bumped by every change seen; part of the cache key

    def _notified(self, _name: str) -> None:
        self._generation += 1

    async def _announce(self, c: AsyncConnection, name: str) -> None:
        """Within a write: tell the other nodes (PostgreSQL, delivered if it commits)."""
        if self.db.dialect == "postgresql":
            await c.execute(
                text("SELECT pg_notify(:channel, :name)"),
                {"channel": ACCOUNTS_CHANNEL, "name": name},
            )

    async def get(self, name: str) -> AccountRecord | None:
        live = self._inv.live
        key = (self._inv.epoch, self._generation, name)
        cached = self._cache.get(key) if live else None
        if cached is not None:
            return cached
        record = await self._load(name)
        if record is not None and live:
            self._cache.put(key, record)
        return record

    async def _load(self, name: str) -> AccountRecord | None:
        async with self.db.read() as c:
            row = (await c.execute(select(A).where(A.c.name == name))).mappings().first()
            if row is None:
                return None
            grants = (
                await c.execute(
                    select(P.c.repository, P.c.actions).where(P.c.account_id == row["id"])
                )
            ).all()
        return AccountRecord(
            row["name"],
            row["kind"],
            row["password_hash"],
            bool(row["disabled"]),
            row["expires_at"],
            row["description"],
            tuple(GrantRow(r[0], frozenset(r[1].split(","))) for r in grants),
        )

    async def all(self) -> list[AccountRecord]:
        async with self.db.read() as c:
            names = list((await c.execute(select(A.c.name).order_by(A.c.name))).scalars())
        return [a for n in names if (a := await self._load(n)) is not None]

    async def create(
        self,
        name: str,
        kind: str,
        password_hash: str,
        grants: list[GrantRow],
        *,
        description: str = "",
        expires_at: datetime | None = None,
    ) -> None:
        """:raises ValueError: when an account of that name exists (also when another process
        created it at the same moment)."""
        try:
            await self._create(name, kind, password_hash, grants, description, expires_at)
        except IntegrityError:
            raise ValueError(f"an account named {name!r} already exists") from None
        self._generation += 1

    async def _create(
        self,
        name: str,
        kind: str,
        password_hash: str,
        grants: list[GrantRow],
        description: str,
        expires_at: datetime | None,
    ) -> None:
        async with self.db.write() as c:
            if (await c.execute(select(A.c.id).where(A.c.name == name))).scalar() is not None:
                raise ValueError(f"an account named {name!r} already exists")
            res = await c.execute(
                insert(A).values(
                    name=name,
                    kind=kind,
                    password_hash=password_hash,
                    disabled=False,
                    expires_at=expires_at,
                    description=description,
                    created_at=utcnow(),
                )
            )
            account_id = res.inserted_primary_key[0]  # type: ignore[index]
            if grants:
                await c.execute(
                    insert(P),
                    [
                        {
                            "account_id": account_id,
                            "repository": g.repository,
                            "actions": ",".join(sorted(g.actions)),
                        }
                        for g in grants
                    ],
                )
            await self._announce(c, name)

    async def set_password(self, name: str, password_hash: str) -> bool:
        async with self.db.write() as c:
            res = await c.execute(
                update(A).where(A.c.name == name).values(password_hash=password_hash)
            )
            await self._announce(c, name)
        self._generation += 1
        return bool(res.rowcount)

    async def delete(self, name: str) -> bool:
        async with self.db.write() as c:
            account_id = (await c.execute(select(A.c.id).where(A.c.name == name))).scalar()
            if account_id is None:
                return False
            await c.execute(delete(P).where(P.c.account_id == account_id))
            await c.execute(delete(A).where(A.c.id == account_id))
            await self._announce(c, name)
        self._generation += 1
        return True
