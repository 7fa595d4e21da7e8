"""The database fence between publishing a blob and garbage-collecting it.

The protocol and its safety argument are in :mod:`registry.storage.gc`; this module is the part
that the request path runs. Rows, per blob digest (:mod:`registry.meta.models`)::

    blob_hold (digest, token, until)        a publication in flight (one row per publishing task)
    blob_gc   (digest, marked_at,           seen unreferenced by a collection (a *mark*), then
               claimed_at, owner)           *claimed*: links gone, bytes being deleted

Every transaction here, and the collection's claim, first takes the digest's lock: on PostgreSQL
a transaction-scoped advisory lock (:func:`lock_digests`); SQLite's ``BEGIN IMMEDIATE`` already
runs one writer at a time, across processes. So for one digest, "hold" and "claim" never
interleave: a hold sees a claim that committed before it, and a claim sees a hold that did.

* :meth:`BlobFence.hold` (before a publication writes or checks bytes): waits while the blob is
  claimed (a collection is deleting its bytes: a fraction of a second), takes over a claim older
  than :data:`CLAIM_STALE` (its collection died), then writes a hold. The hold's token is kept
  in the calling task's context (:data:`_HELD`), so the same request's link finds it.
* :meth:`BlobFence.check_in` (inside the link's transaction): deletes the task's hold; if the
  hold is gone — a collection overrode it after it expired (:data:`HOLD_TTL`) — the link is
  refused: the bytes may have been deleted since they were written.
* :meth:`BlobFence.unmark` (a read of a marked blob): removes the mark, so a client that checked
  a blob with ``HEAD`` and is about to reference it keeps it for another grace period.

Every time written or compared here (a hold's ``until``, a claim's age) is the **database's**,
computed in the SQL itself (:mod:`registry.meta.leases`): a node whose clock runs minutes ahead
never takes over a collection's live claim, and one whose clock is behind writes no hold that
has already ended. The stored forms are the columns' usual ones, so rows written by a node's
clock before compare as they did.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from registry.meta.leases import sql_time_in
from registry.meta.sql import SqlBackend, Tx
from registry.oci.errors import RegistryError
from registry.storage.fence import BlobBusy

__all__ = [
    "CLAIM_STALE",
    "HOLD_TTL",
    "HOLD_WAIT_SECONDS",
    "BlobFence",
    "in_list",
    "lock_digests",
    "stamp",
    "utc_now",
]

#: How long a hold protects a publication whose task died before linking (a live one links
#: within seconds of taking it).
HOLD_TTL = timedelta(hours=6)
#: How long a publication waits for a collection to finish deleting the blob before ``503``.
HOLD_WAIT_SECONDS = 10.0
#: A claim this old belongs to a collection that died or gave up: a collection deletes bytes
#: only within ``registry.storage.gc.CLAIM_WINDOW`` of claiming, so this leaves a wide margin.
CLAIM_STALE = timedelta(minutes=15)
#: The class (first key) of the per-digest PostgreSQL advisory locks.
LOCK_CLASS = 0x5EA9

#: (digest, token) of the holds the current task took and has not yet linked.
_HELD: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("seawall_blob_holds", default=())


def utc_now() -> datetime:
    """This node's clock (UTC): for what is local to the node, never to compare with what the
    fence stores (that is the database's clock: :mod:`registry.meta.leases`)."""
    return datetime.now(UTC)


def stamp(sql: SqlBackend, moment: datetime) -> Any:
    """``moment`` as ``sql``'s timestamp columns take it (see :meth:`SqlBackend.now`)."""
    if sql.dialect == "sqlite":
        return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return moment.astimezone(UTC)


def in_list(name: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    """``(:name0, :name1, …)`` and its parameters, for ``column IN …``; never empty."""
    params = {f"{name}{i}": v for i, v in enumerate(values)} or {f"{name}0": ""}
    return "(" + ", ".join(f":{k}" for k in params) + ")", params


def lock_digests(t: Tx, dialect: str, digests: Sequence[str]) -> None:
    """Take each digest's lock for the rest of the transaction, in sorted order (PostgreSQL;
    SQLite's writer lock already covers it)."""
    if dialect != "postgresql":
        return
    for digest in sorted(set(digests)):
        t.one("SELECT pg_advisory_xact_lock(:cls, hashtext(:d))", cls=LOCK_CLASS, d=digest)


class BlobFence:
    """The request path's side of the fence (see the module docstring)."""

    def __init__(self, sql: SqlBackend, *, wait_seconds: float = HOLD_WAIT_SECONDS) -> None:
        self.sql, self.wait_seconds = sql, wait_seconds
        stale, until = sql_time_in(sql.dialect, "stale_s"), sql_time_in(sql.dialect, "ttl_s")
        self._claim_sql = (
            f"SELECT claimed_at < {stale} FROM blob_gc WHERE digest = :d AND claimed_at IS NOT NULL"
        )
        self._hold_sql = (
            f"INSERT INTO blob_hold (digest, token, until) VALUES (:d, :token, {until})"
        )

    async def hold(self, digest: str) -> None:
        """See :class:`registry.storage.fence.PublishFence`."""
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self.wait_seconds
        delay_s = 0.02
        while not await self.sql.write(lambda t: self._hold(t, digest, token)):
            if time.monotonic() >= deadline:
                raise BlobBusy(
                    "the blob is being garbage-collected; send the request again",
                    path=digest,
                )
            await anyio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.5)
        _HELD.set((*_HELD.get(), (digest, token)))

    def _hold(self, t: Tx, digest: str, token: str) -> bool:
        lock_digests(t, self.sql.dialect, [digest])
        stale_s = -CLAIM_STALE.total_seconds()
        claim = t.one(self._claim_sql, d=digest, stale_s=stale_s)
        if claim is not None:
            if not claim[0]:
                return False  # a collection is deleting the bytes: wait for it
            t.execute("DELETE FROM blob_gc WHERE digest = :d", d=digest)  # it died: take over
        t.execute(self._hold_sql, d=digest, token=token, ttl_s=HOLD_TTL.total_seconds())
        return True

    def take(self, digest: str) -> str | None:
        """Remove and return the token of the current task's newest hold on ``digest``."""
        held = _HELD.get()
        for i in range(len(held) - 1, -1, -1):
            if held[i][0] == digest:
                _HELD.set(held[:i] + held[i + 1 :])
                return held[i][1]
        return None

    async def release(self, digest: str) -> None:
        token = self.take(digest)
        if token is not None:
            await self.sql.write(
                lambda t: t.execute(
                    "DELETE FROM blob_hold WHERE digest = :d AND token = :token",
                    d=digest,
                    token=token,
                )
            )

    def check_in(self, t: Tx, digest: str, token: str | None) -> None:
        """In the transaction that links ``digest``: consume the hold ``token`` (from
        :meth:`take`, before the transaction). Without a token (a caller that took no hold)
        only a claim in progress refuses the link.

        :raises RegistryError: ``UNAVAILABLE`` when the blob may have been collected since its
            bytes were written; the client sends the blob again.
        """
        if token is not None:
            gone = not t.execute(
                "DELETE FROM blob_hold WHERE digest = :d AND token = :token", d=digest, token=token
            )
        else:
            gone = (
                t.one(
                    "SELECT 1 FROM blob_gc WHERE digest = :d AND claimed_at IS NOT NULL", d=digest
                )
                is not None
            )
        if gone:
            raise RegistryError(
                "UNAVAILABLE",
                {"digest": digest, "reason": "garbage-collected while being published"},
                message="the blob was garbage-collected while it was being published; "
                "upload it again",
            )

    async def unmark(self, digest: str) -> bool:
        """Remove a collection's mark from ``digest`` (it is in use). False when a collection
        has already claimed it (its links are gone or going: treat it as absent)."""

        def tx(t: Tx) -> bool:
            lock_digests(t, self.sql.dialect, [digest])
            t.execute("DELETE FROM blob_gc WHERE digest = :d AND claimed_at IS NULL", d=digest)
            return t.one("SELECT 1 FROM blob_gc WHERE digest = :d", d=digest) is None

        return await self.sql.write(tx)
