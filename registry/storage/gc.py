"""Online garbage collection: removes stored blobs that no manifest in any repository
references, and upload sessions idle for longer than the grace period, while pushes,
deletes and replication go on — on any number of nodes sharing one database and one store.

**Garbage.** A blob is *live* while a manifest that is in some repository (``repo_manifest``)
references it (``manifest_ref``: config, layers, anything a manifest names). Everything else
under ``/blobs`` is *unreferenced*: bytes whose last manifest was deleted (manifest deletes,
``DELETE /api/v2.0/projects/{p}/repositories/{r}``, which leaves blobs to this collector),
blobs uploaded but never referenced, bytes a crash left between publishing and linking.
Deleting a tag alone keeps its manifest in the repository, so its blobs stay live.

**The grace period** (``--grace-seconds``, ``gc.grace_seconds``) is the least age of anything
removed. A blob is removed only when, in one transaction under its lock (:meth:`GcIndex.claim`):

1. no manifest in any repository references it;
2. it carries a *mark* at least the grace old: the first collection that finds it unreferenced
   marks it, and any read of it (``HEAD``/``GET`` — a client checking it before it references
   it) removes the mark, so it is marked again and waits another grace period;
3. no link of it into a repository is younger than the grace (an upload or mount), nor are its
   bytes (the store's modified time);
4. no publication holds it (below).

So a push or replication that uploaded, mounted or ``HEAD``-checked a blob within the grace before
putting its manifest finds it there, and with a grace > 0 the first collection that sees a blob
unreferenced only marks it: it goes at the first run one grace later. ``0`` takes everything
unreferenced at once, including a blob a client uploaded a moment ago and is about to reference:
that manifest ``PUT`` then fails with ``MANIFEST_BLOB_UNKNOWN`` (nothing is stored broken; the
client pushes the blob again).

**The fence** (:mod:`registry.meta.fence`) is why nothing stored is ever broken. Per digest, a
lock (PostgreSQL: a transaction-scoped advisory lock; SQLite: its one writer) orders *holds* and
*claims*:

* I1. Bytes of ``B`` are deleted only while a claim on ``B`` exists: by its owner within
  :data:`CLAIM_WINDOW` of claiming, or by another collection within :data:`CLAIM_WINDOW` of
  seeing the claim younger than ``CLAIM_STALE - CLAIM_WINDOW``.
* I2. A claim is made under ``B``'s lock after ``B``'s links are locked (``FOR UPDATE``), only if
  the four conditions above hold; the same transaction deletes ``B``'s links and blob row.
* I3. A hold is granted under ``B``'s lock only while no claim exists, or the claim is older than
  ``CLAIM_STALE`` (its collection died; by I1 it can no longer delete).
* I4. Every publication — upload ``PUT``, monolithic ``POST``, mount — holds ``B`` before it writes
  or checks ``B``'s bytes, and its link consumes the hold in the link's transaction; a link whose
  hold is gone (a collection overrode it after :data:`~registry.meta.fence.HOLD_TTL`) is refused.
* I5. A manifest is stored only if each blob it references is linked in its repository, read
  ``FOR SHARE`` in the manifest's transaction.

Suppose a stored manifest ``M`` references ``B`` and ``B``'s bytes were deleted, under claim ``C``
(I1). ``C``'s transaction deleted every link of ``B`` and saw no reference (I2); ``M``'s locked a
link of ``B`` (I5), so ``M`` committed after ``C`` (had it committed first, ``C`` would have seen
the reference; had it locked first, ``C`` would have waited for it and then seen it). That link
was made after ``C`` by a publication whose hold was granted after ``C`` ended or went stale
(I3, I4), hence after ``C``'s deletion (I1), and which wrote or checked ``B``'s bytes after its
hold: the bytes were there after ``C``. A later claim deleting them again would have deleted
``M``'s link first, and ``M`` would not be stored. So every stored manifest's blobs are stored.

**A run**, per batch of :data:`BATCH` listed blobs (memory stays flat with the store)::

    walk /blobs → one read of the batch's state (references, links, marks, holds, claims)
      → mark the newly unreferenced, unmark the live → claim the ripe (I2; also notifies every
      node's caches) → delete their bytes (I1) → release the claims

then ``walk /uploads`` and delete sessions with nothing written for the grace period. Dry runs
take the same path and write nothing. A collection killed at any point (``kill -9``) leaves at
most marks (harmless) and claims whose links are already gone; the next collection deletes
the bytes of those claims and drops claims that went stale; meanwhile a push of such a blob
waits and then gets ``503`` until it does. Several collections may run at once (each claims
what it deletes).

**Time.** Every time the collection compares or writes in the database — marks and claims,
holds' ends, links' ages, the grace, the periodic lease — is the **database's**, computed in the
SQL (:mod:`registry.meta.leases`): nodes whose clocks disagree by minutes still agree on what is
ripe, held or stale. The store's modified times (of blobs and upload sessions) are compared with
the database's time too, read once per batch (:meth:`GcIndex.database_time`). A node's own clock
(:attr:`GcOptions.clock`) decides only what is local to it: it is compared with the database's
once per run, and a large difference is logged.

**Assumptions.** The store's clock agrees with the database's to well within the grace; a
collection process does not stall for ``CLAIM_STALE - CLAIM_WINDOW`` (14 min) between
checking its window (a monotonic clock) and its delete reaching the store.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anyio

from registry.oci.digest import Digest, DigestError
from registry.storage import paths
from registry.storage.base import FileInfo, PathNotFound, StorageDriver, StorageError

__all__ = [
    "BATCH",
    "CLAIM_WINDOW",
    "BlobState",
    "Collector",
    "GcIndex",
    "GcOptions",
    "GcReport",
]

#: Blobs looked up, marked and claimed together.
BATCH = 256
#: A collection deletes a claimed blob's bytes within this long of claiming it, or not at all.
CLAIM_WINDOW = timedelta(seconds=60)
#: Deletes in flight at once.
DELETE_CONCURRENCY = 8
#: A node whose clock is further than this from the database's says so in the log.
SKEW_WARNING = timedelta(seconds=60)

log = logging.getLogger("seawall.gc")


@dataclass(frozen=True, slots=True)
class BlobState:
    """What the database says of one listed blob, at its time ``now``, with the cutoff
    ``now - grace``."""

    live: bool = False  # a manifest in some repository references it
    young_link: bool = False  # linked into a repository after the cutoff
    held: bool = False  # a publication holds it
    marked: bool = False
    ripe: bool = False  # marked at or before the cutoff
    claimed_by: str | None = None  # a collection is deleting it
    claim_young: bool = False  # that claim leaves another collection time to finish it


class GcIndex(Protocol):
    """What a collection asks of the metadata (:class:`registry.meta.gc.SqlGcIndex`). Every
    method compares with and writes the database's time (never the caller's)."""

    owner: str

    async def database_time(self) -> datetime:
        """The database's time now (aware, UTC): what the store's modified times compare with."""

    async def expire_holds(self) -> int:
        """Delete holds past their ``until``; their number."""

    async def states(self, digests: Sequence[str], grace: timedelta) -> dict[str, BlobState]:
        """The state of each digest (missing from the result: no row anywhere)."""

    async def mark(self, digests: Sequence[str]) -> None: ...

    async def unmark(self, digests: Sequence[str]) -> None: ...

    async def claim(self, digests: Sequence[str], grace: timedelta) -> list[str]:
        """Claim those of ``digests`` that are still removable (I2); the claimed ones."""

    async def release(self, digests: Sequence[str]) -> None:
        """Drop this collection's claims on ``digests`` (their bytes are gone)."""

    async def drop_stale_claims(self) -> int: ...


def _node_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class GcOptions:
    """``clock`` is the node's own: only compared with the database's, to log a node whose
    clock is off (see the module docstring, *Time*)."""

    grace: timedelta = timedelta(hours=1)
    dry_run: bool = False
    clock: Callable[[], datetime] = field(default=_node_now)


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a run removed (a dry run: would remove). Bytes are the stored sizes."""

    dry_run: bool
    grace_seconds: float
    blobs_scanned: int = 0
    blobs_live: int = 0
    blobs_kept: int = 0  # unreferenced but within the grace, held, or just marked
    blobs_marked: int = 0  # newly marked: removable by a run one grace period from now
    blobs_removed: int = 0
    blob_bytes_reclaimed: int = 0
    uploads_scanned: int = 0
    uploads_removed: int = 0
    upload_bytes_reclaimed: int = 0
    objects_unknown: int = 0  # under /blobs but not blob data: left alone
    errors: int = 0
    duration_seconds: float = 0.0

    @property
    def bytes_reclaimed(self) -> int:
        return self.blob_bytes_reclaimed + self.upload_bytes_reclaimed

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"bytes_reclaimed": self.bytes_reclaimed}


def blob_digest(path: str) -> Digest | None:
    """The digest stored at ``path`` (``/blobs/<alg>/<hh>/<hex>/data``), else None."""
    parts = path.split("/")
    if len(parts) != 6 or parts[1] != "blobs" or parts[5] != "data":
        return None
    try:
        digest = Digest.parse(f"{parts[2]}:{parts[4]}")
    except DigestError:
        return None
    return digest if digest.encoded[:2] == parts[3] else None


class Collector:
    """One run over one store and its database. Not reused between runs."""

    def __init__(self, driver: StorageDriver, index: GcIndex, options: GcOptions) -> None:
        self.driver, self.index, self.options = driver, index, options
        self._tally: dict[str, int] = {}

    def _add(self, counter: str, n: int = 1) -> None:
        self._tally[counter] = self._tally.get(counter, 0) + n

    async def run(self) -> GcReport:
        started = time.monotonic()
        await self._check_clock()
        if not self.options.dry_run:
            await self.index.expire_holds()
        await self._blobs()
        await self._uploads()
        if not self.options.dry_run:
            await self.index.drop_stale_claims()
        return GcReport(
            dry_run=self.options.dry_run,
            grace_seconds=self.options.grace.total_seconds(),
            duration_seconds=round(time.monotonic() - started, 3),
            **self._tally,
        )

    async def _check_clock(self) -> None:
        """Log when this node's clock is far from the database's (which the run keeps)."""
        skew = self.options.clock() - await self.index.database_time()
        if abs(skew) > SKEW_WARNING:
            log.warning(
                "garbage collection: this node's clock is %+.0f s from the database's; "
                "the collection keeps the database's time",
                skew.total_seconds(),
            )

    # ------------------------------------------------------------------ blobs
    async def _blobs(self) -> None:
        batch: dict[str, FileInfo] = {}
        async for info in self.driver.walk(paths.BLOBS):
            digest = blob_digest(info.path)
            if digest is None:
                self._add("objects_unknown")
                continue
            batch[str(digest)] = info
            if len(batch) >= BATCH:
                await self._batch(batch)
                batch = {}
        if batch:
            await self._batch(batch)

    async def _batch(self, found: dict[str, FileInfo]) -> None:
        cutoff = await self.index.database_time() - self.options.grace
        states = await self.index.states(list(found), self.options.grace)
        plan = _Plan.of(found, states, cutoff, self.index.owner, self.options.grace)
        self._add("blobs_scanned", len(found))
        self._add("blobs_live", len(plan.live))
        self._add("blobs_marked", len(plan.new))
        if self.options.dry_run:
            self._count_removed(plan.ripe + plan.finish, found)
            self._add("blobs_kept", len(plan.unreferenced) - len(plan.ripe))
            return
        await self.index.unmark(plan.stale_marks)
        await self.index.mark(plan.new)
        claimed_at = time.monotonic()
        claimed = await self.index.claim(plan.ripe, self.options.grace) if plan.ripe else []
        self._add("blobs_kept", len(plan.unreferenced) - len(claimed))
        deleted = await self._delete(claimed + plan.finish, found, claimed_at)
        self._count_removed(deleted, found)
        gone = set(deleted)
        await self.index.release([d for d in claimed if d in gone])

    def _count_removed(self, digests: Sequence[str], found: dict[str, FileInfo]) -> None:
        self._add("blobs_removed", len(digests))
        self._add("blob_bytes_reclaimed", sum(found[d].size_bytes for d in digests))

    async def _delete(
        self, digests: Sequence[str], found: dict[str, FileInfo], since: float
    ) -> list[str]:
        """Delete the bytes of claimed ``digests`` while the claims are within their window
        (I1); the digests whose bytes are gone."""
        deleted: list[str] = []
        limiter = anyio.CapacityLimiter(DELETE_CONCURRENCY)
        window_s = CLAIM_WINDOW.total_seconds()

        async def one(digest: str) -> None:
            async with limiter:
                if time.monotonic() - since > window_s:
                    self._add("errors")  # too slow: left claimed, finished by a later run
                    return
                try:
                    await self.driver.delete(found[digest].path)
                except PathNotFound:
                    pass
                except StorageError:
                    self._add("errors")
                    return
                deleted.append(digest)

        async with anyio.create_task_group() as tg:
            for digest in digests:
                tg.start_soon(one, digest)
        return deleted

    # ------------------------------------------------------------------ uploads
    async def _uploads(self) -> None:
        """Delete upload sessions nothing was written to for the grace period."""
        cutoff = await self.index.database_time() - self.options.grace
        sessions: dict[str, tuple[datetime, int]] = {}
        async for info in self.driver.walk(paths.UPLOADS):
            parts = info.path.split("/")
            if len(parts) < 4:
                continue
            newest, size = sessions.get(parts[2], (info.modified, 0))
            sessions[parts[2]] = (max(newest, info.modified), size + info.size_bytes)
        self._add("uploads_scanned", len(sessions))
        for upload_id, (newest, size) in sessions.items():
            if newest > cutoff:
                continue
            if not self.options.dry_run:
                try:
                    await self.driver.delete(paths.upload_dir(upload_id))
                except PathNotFound:
                    continue  # finished or cancelled meanwhile
                except StorageError:
                    self._add("errors")
                    continue
            self._add("uploads_removed")
            self._add("upload_bytes_reclaimed", size)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What to do with one batch, from its states (pure)."""

    live: list[str]
    unreferenced: list[str]
    new: list[str]  # unreferenced, not yet marked: mark
    stale_marks: list[str]  # live but marked: unmark
    ripe: list[str]  # claim and delete
    finish: list[str]  # claimed by another collection recently enough: delete the bytes

    @staticmethod
    def of(
        found: dict[str, FileInfo],
        states: dict[str, BlobState],
        cutoff: datetime,
        owner: str,
        grace: timedelta,
    ) -> _Plan:
        none = BlobState()
        get = {d: states.get(d, none) for d in found}
        live = [d for d, s in get.items() if s.live]
        unreferenced = [d for d, s in get.items() if not s.live and s.claimed_by is None]
        new = [d for d in unreferenced if not get[d].marked]
        ripe = [
            d
            for d in unreferenced
            if not get[d].held
            and not get[d].young_link
            and found[d].modified <= cutoff
            and (get[d].ripe or (not get[d].marked and grace <= timedelta(0)))
        ]
        return _Plan(
            live=live,
            unreferenced=unreferenced,
            new=new,
            stale_marks=[d for d in live if get[d].marked and get[d].claimed_by is None],
            ripe=ripe,
            finish=[
                d for d, s in get.items() if s.claimed_by not in (None, owner) and s.claim_young
            ],
        )


def new_owner() -> str:
    """A collection's owner id: unique per run."""
    return uuid.uuid4().hex
