"""Garbage collection's queries (:class:`registry.storage.gc.GcIndex` on the registry's
database). The protocol, and why the claim below is safe, is in :mod:`registry.storage.gc`;
the rows and the per-digest lock are in :mod:`registry.meta.fence`.

Digests arrive in batches (``registry.storage.gc.BATCH``) and are looked up by index
(``ix_manifest_ref_ref``, ``ix_repo_manifest_digest``, ``ix_repo_blob_digest``), so a run's cost
grows with the store, not with the square of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from registry.meta.content import CONTENT_CHANNEL
from registry.meta.fence import CLAIM_STALE, in_list, lock_digests, stamp
from registry.meta.sql import SqlBackend, Tx
from registry.storage.gc import CLAIM_WINDOW, BlobState

__all__ = ["SqlGcIndex"]

_LIVE = (
    "SELECT DISTINCT mr.ref_digest FROM manifest_ref mr "
    "JOIN repo_manifest rm ON rm.digest = mr.digest WHERE mr.ref_digest IN {ds}"
)
_YOUNG_LINKS = "SELECT DISTINCT digest FROM repo_blob WHERE digest IN {ds} AND created_at > :cutoff"
_HELD = "SELECT DISTINCT digest FROM blob_hold WHERE digest IN {ds} AND until > :now"
_MARKS = (
    "SELECT digest, marked_at <= :cutoff, owner, claimed_at > :young FROM blob_gc "
    "WHERE digest IN {ds}"
)
#: The claim's conditions (registry.storage.gc, 1-4), checked after the locks are taken.
_CLAIMABLE = (
    "SELECT g.digest FROM blob_gc g WHERE g.digest IN {ds} "
    "AND g.claimed_at IS NULL AND g.marked_at <= :cutoff "
    "AND NOT EXISTS (SELECT 1 FROM manifest_ref mr JOIN repo_manifest rm "
    "ON rm.digest = mr.digest WHERE mr.ref_digest = g.digest) "
    "AND NOT EXISTS (SELECT 1 FROM repo_blob rb WHERE rb.digest = g.digest "
    "AND rb.created_at > :cutoff) "
    "AND NOT EXISTS (SELECT 1 FROM blob_hold h WHERE h.digest = g.digest AND h.until > :now)"
)


class SqlGcIndex:
    def __init__(self, sql: SqlBackend, owner: str) -> None:
        self.sql, self.owner = sql, owner

    def _t(self, moment: datetime) -> object:
        return stamp(self.sql, moment)

    async def expire_holds(self, now: datetime) -> int:
        return await self.sql.write(
            lambda t: t.execute("DELETE FROM blob_hold WHERE until < :now", now=self._t(now))
        )

    async def states(
        self, digests: Sequence[str], now: datetime, cutoff: datetime
    ) -> dict[str, BlobState]:
        ds, p = in_list("d", digests)
        live = {r[0] for r in await self.sql.all(_LIVE.format(ds=ds), **p)}
        young = {
            r[0]
            for r in await self.sql.all(_YOUNG_LINKS.format(ds=ds), cutoff=self._t(cutoff), **p)
        }
        held = {r[0] for r in await self.sql.all(_HELD.format(ds=ds), now=self._t(now), **p)}
        marks = {
            r[0]: r[1:]
            for r in await self.sql.all(
                _MARKS.format(ds=ds),
                cutoff=self._t(cutoff),
                young=self._t(now - CLAIM_STALE + CLAIM_WINDOW),
                **p,
            )
        }
        out: dict[str, BlobState] = {}
        for d in set(live) | young | held | set(marks):
            ripe, owner, claim_young = marks.get(d, (False, None, False))
            out[d] = BlobState(
                live=d in live,
                young_link=d in young,
                held=d in held,
                marked=d in marks,
                ripe=bool(ripe),
                claimed_by=owner,
                claim_young=bool(claim_young),
            )
        return out

    async def mark(self, digests: Sequence[str], now: datetime) -> None:
        if digests:
            at = self._t(now)
            await self.sql.write(
                lambda t: t.executemany(
                    "INSERT INTO blob_gc (digest, marked_at) VALUES (:d, :at) "
                    "ON CONFLICT DO NOTHING",
                    [{"d": d, "at": at} for d in digests],
                )
            )

    async def unmark(self, digests: Sequence[str]) -> None:
        if digests:
            ds, p = in_list("d", digests)
            await self.sql.write(
                lambda t: t.execute(
                    f"DELETE FROM blob_gc WHERE digest IN {ds} AND claimed_at IS NULL", **p
                )
            )

    async def claim(self, digests: Sequence[str], now: datetime, cutoff: datetime) -> list[str]:
        if not digests:
            return []
        return await self.sql.write(lambda t: self._claim(t, digests, now, cutoff))

    def _claim(self, t: Tx, digests: Sequence[str], now: datetime, cutoff: datetime) -> list[str]:
        lock_digests(t, self.sql.dialect, digests)
        ds, p = in_list("d", digests)
        if self.sql.dialect == "postgresql":  # a manifest PUT reading them FOR SHARE goes first
            t.all(
                f"SELECT 1 FROM repo_blob WHERE digest IN {ds} "
                "ORDER BY digest, repository_id FOR UPDATE",
                **p,
            )
        ok = [
            r[0]
            for r in t.all(_CLAIMABLE.format(ds=ds), cutoff=self._t(cutoff), now=self._t(now), **p)
        ]
        if not ok:
            return []
        cs, q = in_list("c", ok)
        repos = t.all(f"SELECT DISTINCT repository_id FROM repo_blob WHERE digest IN {cs}", **q)
        t.execute(
            f"UPDATE blob_gc SET claimed_at = :now, owner = :owner WHERE digest IN {cs}",
            now=self._t(now),
            owner=self.owner,
            **q,
        )
        for table in ("blob_hold", "repo_blob", "blob"):  # expired holds, links, the blob row
            t.execute(f"DELETE FROM {table} WHERE digest IN {cs}", **q)
        for (rid,) in repos:
            t.notify(CONTENT_CHANNEL, str(rid))
        return ok

    async def release(self, digests: Sequence[str]) -> None:
        if digests:
            ds, p = in_list("d", digests)
            await self.sql.write(
                lambda t: t.execute(
                    f"DELETE FROM blob_gc WHERE digest IN {ds} AND owner = :owner",
                    owner=self.owner,
                    **p,
                )
            )

    async def drop_stale_claims(self, now: datetime) -> int:
        """Claims older than ``CLAIM_STALE``: their collection can no longer delete (the bytes
        are gone, or left unlinked for a later run)."""
        stale = self._t(now - CLAIM_STALE)
        return await self.sql.write(
            lambda t: t.execute(
                "DELETE FROM blob_gc WHERE claimed_at IS NOT NULL AND claimed_at < :stale",
                stale=stale,
            )
        )

    async def take_lease(self, name: str, now: datetime, until: datetime) -> bool:
        """Take the lease ``name`` until ``until`` unless another owner holds it at ``now``
        (the periodic collection: one node per interval)."""
        return bool(
            await self.sql.write(
                lambda t: t.execute(
                    "INSERT INTO gc_lease (name, owner, until) VALUES (:name, :owner, :until) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "until = excluded.until WHERE gc_lease.until < :now",
                    name=name,
                    owner=self.owner,
                    until=self._t(until),
                    now=self._t(now),
                )
            )
        )
