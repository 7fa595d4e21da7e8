"""Garbage collection's queries (:class:`registry.storage.gc.GcIndex` on the registry's
database). The protocol, and why the claim below is safe, is in :mod:`registry.storage.gc`;
the rows and the per-digest lock are in :mod:`registry.meta.fence`.

Every time compared or written is the database's, computed in the SQL (:func:`sql_time_in`:
``statement_timestamp()`` on PostgreSQL, ``strftime(…, 'now')`` on SQLite, in the columns' usual
forms): ``{now}`` below is the database's now and ``{cutoff}`` its now less the grace
(``:grace_s``). A :class:`SqlGcIndex` made with ``ahead`` compares as if that clock read later.

Digests arrive in batches (``registry.storage.gc.BATCH``) and are looked up by index
(``ix_manifest_ref_ref``, ``ix_repo_manifest_digest``, ``ix_repo_blob_digest``), so a run's cost
grows with the store, not with the square of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from registry.meta.content import CONTENT_CHANNEL
from registry.meta.fence import CLAIM_STALE, in_list, lock_digests
from registry.meta.leases import sql_time_in
from registry.meta.sql import SqlBackend, Tx
from registry.storage.gc import CLAIM_WINDOW, BlobState

__all__ = ["SqlGcIndex"]

_LIVE = (
    "SELECT DISTINCT mr.ref_digest FROM manifest_ref mr "
    "JOIN repo_manifest rm ON rm.digest = mr.digest WHERE mr.ref_digest IN {ds}"
)
_YOUNG_LINKS = (
    "SELECT DISTINCT digest FROM repo_blob WHERE digest IN {ds} AND created_at > {cutoff}"
)
_HELD = "SELECT DISTINCT digest FROM blob_hold WHERE digest IN {ds} AND until > {now}"
_MARKS = (
    "SELECT digest, marked_at <= {cutoff}, owner, claimed_at > {young} FROM blob_gc "
    "WHERE digest IN {ds}"
)
#: The claim's conditions (registry.storage.gc, 1-4), checked after the locks are taken.
_CLAIMABLE = (
    "SELECT g.digest FROM blob_gc g WHERE g.digest IN {ds} "
    "AND g.claimed_at IS NULL AND g.marked_at <= {cutoff} "
    "AND NOT EXISTS (SELECT 1 FROM manifest_ref mr JOIN repo_manifest rm "
    "ON rm.digest = mr.digest WHERE mr.ref_digest = g.digest) "
    "AND NOT EXISTS (SELECT 1 FROM repo_blob rb WHERE rb.digest = g.digest "
    "AND rb.created_at > {cutoff}) "
    "AND NOT EXISTS (SELECT 1 FROM blob_hold h WHERE h.digest = g.digest AND h.until > {now})"
)
_EXPIRE = "DELETE FROM blob_hold WHERE until < {now}"
#: Digests per call above which a batch is written off the event loop.
LARGE_BATCH = 500
_MARK = "INSERT INTO blob_gc (digest, marked_at) VALUES (:d, {now}) ON CONFLICT DO NOTHING"
_CLAIM = "UPDATE blob_gc SET claimed_at = {now}, owner = :owner WHERE digest IN {cs}"
_DROP_STALE = "DELETE FROM blob_gc WHERE claimed_at IS NOT NULL AND claimed_at < {stale}"
_LEASE = (
    "INSERT INTO gc_lease (name, owner, until) VALUES (:name, :owner, {until}) "
    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
    "until = excluded.until WHERE gc_lease.until < {now}"
)
_NOW = "SELECT {now}"


#: The database's times the queries name, each its now plus a seconds parameter (``:<name>_s``).
_TIMES = ("now", "cutoff", "young", "stale", "until")


class SqlGcIndex:
    """:class:`registry.storage.gc.GcIndex` on ``sql``, for the collection ``owner``.

    ``ahead`` (zero in service) moves the database's time this index sees forward: how a test
    lets a grace period pass without waiting. It never comes from a node's clock.
    """

    def __init__(self, sql: SqlBackend, owner: str, *, ahead: timedelta = timedelta(0)) -> None:
        self.sql, self.owner = sql, owner
        self._ahead_s = ahead.total_seconds()
        self._times = {n: sql_time_in(sql.dialect, f"{n}_s") for n in _TIMES}

    def _q(self, template: str, **fragments: str) -> str:
        """``template`` with its ``{time}`` fields as the database's times, in this dialect."""
        return template.format(**self._times, **fragments)

    def _at(self, grace: timedelta = timedelta(0), until_s: float = 0.0) -> dict[str, float]:
        """The seconds parameters of the times (every query takes them all)."""
        a = self._ahead_s
        return {
            "now_s": a,
            "cutoff_s": a - grace.total_seconds(),
            "young_s": a - (CLAIM_STALE - CLAIM_WINDOW).total_seconds(),
            "stale_s": a - CLAIM_STALE.total_seconds(),
            "until_s": a + until_s,
        }

    async def database_time(self) -> datetime:
        row = await self.sql.one(self._q(_NOW), **self._at())
        assert row is not None
        found = row[0]
        if isinstance(found, str):  # SQLite: its text form
            found = datetime.fromisoformat(found)
        return found if found.tzinfo else found.replace(tzinfo=UTC)

    async def expire_holds(self) -> int:
        sql, at = self._q(_EXPIRE), self._at()
        return await self.sql.write(lambda t: t.execute(sql, **at))

    async def states(self, digests: Sequence[str], grace: timedelta) -> dict[str, BlobState]:
        ds, p = in_list("d", digests)
        at = self._at(grace) | p
        live = {r[0] for r in await self.sql.all(self._q(_LIVE, ds=ds), **p)}
        young = {r[0] for r in await self.sql.all(self._q(_YOUNG_LINKS, ds=ds), **at)}
        held = {r[0] for r in await self.sql.all(self._q(_HELD, ds=ds), **at)}
        marks = {r[0]: r[1:] for r in await self.sql.all(self._q(_MARKS, ds=ds), **at)}
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

    async def mark(self, digests: Sequence[str]) -> None:
        if digests:
            sql, at = self._q(_MARK), self._at()
            rows = [{"d": d, **at} for d in digests]
            await self.sql.write(lambda t: t.executemany(sql, rows), large=_large(digests))

    async def unmark(self, digests: Sequence[str]) -> None:
        if digests:
            ds, p = in_list("d", digests)
            await self.sql.write(
                lambda t: t.execute(
                    f"DELETE FROM blob_gc WHERE digest IN {ds} AND claimed_at IS NULL", **p
                ),
                large=_large(digests),
            )

    async def claim(self, digests: Sequence[str], grace: timedelta) -> list[str]:
        if not digests:
            return []
        return await self.sql.write(lambda t: self._claim(t, digests, grace), large=_large(digests))

    def _claim(self, t: Tx, digests: Sequence[str], grace: timedelta) -> list[str]:
        lock_digests(t, self.sql.dialect, digests)
        ds, p = in_list("d", digests)
        if self.sql.dialect == "postgresql":  # a manifest PUT reading them FOR SHARE goes first
            t.all(
                f"SELECT 1 FROM repo_blob WHERE digest IN {ds} "
                "ORDER BY digest, repository_id FOR UPDATE",
                **p,
            )
        at = self._at(grace)
        ok = [r[0] for r in t.all(self._q(_CLAIMABLE, ds=ds), **at, **p)]
        if not ok:
            return []
        cs, q = in_list("c", ok)
        repos = t.all(f"SELECT DISTINCT repository_id FROM repo_blob WHERE digest IN {cs}", **q)
        t.execute(self._q(_CLAIM, cs=cs), owner=self.owner, **at, **q)
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

    async def drop_stale_claims(self) -> int:
        """Claims older than ``CLAIM_STALE``: their collection can no longer delete (the bytes
        are gone, or left unlinked for a later run)."""
        sql, at = self._q(_DROP_STALE), self._at()
        return await self.sql.write(lambda t: t.execute(sql, **at))

    async def take_lease(self, name: str, now: datetime, until: datetime) -> bool:
        """Take the lease ``name`` for ``until - now`` (a length: the caller's clock sets no
        time) unless another owner holds it (the periodic collection: one node per interval).
        Whether it is held, and when the new lease ends, are the database's time."""
        sql, at = self._q(_LEASE), self._at(until_s=(until - now).total_seconds())
        return bool(
            await self.sql.write(lambda t: t.execute(sql, name=name, owner=self.owner, **at))
        )


def _large(digests: Sequence[str]) -> bool:
    """A batch of digests large enough to write off the event loop (see ``SqlBackend.write``)."""
    return len(digests) > LARGE_BATCH
