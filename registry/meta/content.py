"""Repository content metadata: repositories, blob links, manifests, tags, referrers.

Every change that clients can observe is one transaction that also writes its outbox ``event``
rows, so a consumer of events never misses a change. Queries are plain SQL on the hot-path
executor (:mod:`registry.meta.sql`); the tables are defined in :mod:`registry.meta.models`.

The SQL runs unchanged on SQLite and PostgreSQL except for three fragments chosen once per store
(:class:`_Dialect`): listings order by byte value (``COLLATE "C"`` on PostgreSQL, SQLite's
default), "no limit" (``-1`` / ``NULL``), and the reference checks of a manifest push lock the rows
they read (``FOR SHARE`` on PostgreSQL, where another node may delete them concurrently; SQLite
has one writer). Timestamps come from the backend (:meth:`SqlBackend.now`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from registry.meta.cache import TTLCache
from registry.meta.fence import BlobFence, stamp, utc_now
from registry.meta.origins import clear_tombstone, origin_of, tombstone_of, write_tombstones
from registry.meta.sql import SqlBackend, Tx
from registry.oci.errors import RegistryError
from registry.oci.manifest import ParsedManifest
from registry.oci.origin import Origin, Tombstone, is_region_name

__all__ = ["CONTENT_CHANNEL", "ContentStore", "ManifestRecord", "ReferrerRecord", "TagRecord"]

#: The notification channel of content changes; the payload is the repository id.
CONTENT_CHANNEL = "seawall_content"
#: How long a deleted tag's tombstone is kept by default (30 days).
TOMBSTONE_RETENTION_SECONDS = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class _Dialect:
    collate: str  # appended to a text column that is ordered or paged by
    no_limit: int | None  # the LIMIT value meaning "all rows"
    lock_read: str  # appended to a SELECT whose rows must not change before commit

    @staticmethod
    def of(name: str) -> _Dialect:
        if name == "postgresql":
            return _Dialect(' COLLATE "C"', None, " FOR SHARE")
        return _Dialect("", -1, "")


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    data: bytes
    origin: Origin | None = None  # found by tag: the tag's origin (None: not recorded)


@dataclass(frozen=True, slots=True)
class TagRecord:
    name: str
    digest: str
    media_type: str
    size: int
    origin: Origin | None = None  # None: written before origins were recorded


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


_EVENT = (
    "INSERT INTO event (created_at, action, repository, digest, tag, media_type, size, actor) "
    "VALUES (:now, :action, :repo, :digest, :tag, :media_type, :size, :actor)"
)


_REFERRERS = (
    "SELECT m.digest, m.media_type, m.size, m.artifact_type, m.annotations_json "
    "FROM repo_manifest rm JOIN manifest m ON m.digest = rm.digest "
    "WHERE rm.repository_id = :rid AND rm.subject_digest = :subject "
    "ORDER BY rm.created_at, m.digest"
)
_REFERRERS_OF_TYPE = _REFERRERS.replace("ORDER BY", "AND m.artifact_type = :at ORDER BY")


def _event(
    tx: Tx,
    now: Any,
    action: str,
    repo: str,
    digest: str | None,
    tag: str | None,
    actor: str | None,
    media_type: str | None = None,
    size: int | None = None,
) -> None:
    tx.execute(
        _EVENT,
        now=now,
        action=action,
        repo=repo,
        digest=digest,
        tag=tag,
        media_type=media_type,
        size=size,
        actor=actor,
    )


def _store_manifest(
    t: Tx, rid: int, digest: str, data: bytes, parsed: ParsedManifest, now: Any
) -> bool:
    """A manifest's rows (its bytes, its references, its link to the repository), each kept if
    there already; whether the repository's link is new."""
    subject = parsed.subject.digest if parsed.subject else None
    t.execute(
        "INSERT INTO manifest (digest, media_type, size, data, artifact_type, "
        "subject_digest, annotations_json, created_at) VALUES (:d, :mt, :size, :data, "
        ":at, :subject, :ann, :now) ON CONFLICT DO NOTHING",
        d=digest,
        mt=parsed.media_type,
        size=len(data),
        data=data,
        at=parsed.artifact_type,
        subject=subject,
        ann=json.dumps(parsed.annotations) if parsed.annotations else None,
        now=now,
    )
    refs = [{"d": digest, "r": d.digest, "k": "blob"} for d in parsed.blobs]
    refs += [{"d": digest, "r": d.digest, "k": "manifest"} for d in parsed.children]
    if refs:
        t.executemany(
            "INSERT INTO manifest_ref (digest, ref_digest, kind) "
            "VALUES (:d, :r, :k) ON CONFLICT DO NOTHING",
            refs,
        )
    linked = t.execute(
        "INSERT INTO repo_manifest (repository_id, digest, subject_digest, "
        "created_at) VALUES (:rid, :d, :subject, :now) ON CONFLICT DO NOTHING",
        rid=rid,
        d=digest,
        subject=subject,
        now=now,
    )
    return bool(linked)


def _ensure_repository(tx: Tx, name: str, now: Any) -> int:
    row = tx.one("SELECT id FROM repository WHERE name = :name", name=name)
    if row is not None:
        return int(row[0])
    # ON CONFLICT: another node may create the same repository at the same moment
    tx.execute(
        "INSERT INTO repository (name, created_at) VALUES (:name, :now) ON CONFLICT DO NOTHING",
        name=name,
        now=now,
    )
    row = tx.one("SELECT id FROM repository WHERE name = :name", name=name)
    assert row is not None
    return int(row[0])


class ContentStore:
    def __init__(
        self,
        sql: SqlBackend,
        *,
        cache_ttl_seconds: float = 2.0,
        region_name: str = "local",
        tombstone_retention_seconds: float = TOMBSTONE_RETENTION_SECONDS,
    ) -> None:
        """``region_name``: this registry's region (setting ``dr.region_name``), the origin of
        what clients push and delete here. ``tombstone_retention_seconds``: how long a deleted
        tag's tombstone is kept (:mod:`registry.meta.origins`)."""
        if not is_region_name(region_name):
            raise ValueError(f"region name {region_name!r} breaks the region name rule")
        self.sql = sql
        self.region_name = region_name
        self.tombstone_retention_seconds = tombstone_retention_seconds
        self._d = d = _Dialect.of(sql.dialect)
        # (a deleted repository keeps its row, so ids cached by other processes stay valid,
        # and leaves the catalog with its last blob link)
        self._q_repositories = (
            f"SELECT name FROM repository WHERE name{d.collate} > :last AND EXISTS "
            "(SELECT 1 FROM repo_blob rb WHERE rb.repository_id = repository.id) "
            f"ORDER BY name{d.collate} LIMIT :n"
        )
        self._q_repositories_in = (  # names in [lo, hi), hi exclusive (a prefix's range)
            f"SELECT name FROM repository WHERE name{d.collate} > :last "
            f"AND name{d.collate} >= :lo AND name{d.collate} < :hi AND EXISTS "
            "(SELECT 1 FROM repo_blob rb WHERE rb.repository_id = repository.id) "
            f"ORDER BY name{d.collate} LIMIT :n"
        )
        self._q_tag_records_between = (
            "SELECT r.name, t.name, t.digest, m.media_type, m.size, t.origin_region, "
            "t.origin_at FROM repository r "
            "JOIN tag t ON t.repository_id = r.id JOIN manifest m ON m.digest = t.digest "
            f"WHERE r.name{d.collate} >= :first AND r.name{d.collate} <= :upto "
            f"ORDER BY r.name{d.collate}, t.name{d.collate}"
        )
        self._q_tombstones_between = (
            "SELECT r.name, g.name, g.digest, g.origin_region, g.origin_at FROM repository r "
            "JOIN tag_tombstone g ON g.repository_id = r.id "
            f"WHERE r.name{d.collate} >= :first AND r.name{d.collate} <= :upto"
        )
        self._q_tombstones = (
            "SELECT name, digest, origin_region, origin_at FROM tag_tombstone "
            f"WHERE repository_id = :rid AND name{d.collate} > :last"
        )
        self._q_tombstones_upto = self._q_tombstones + f" AND name{d.collate} <= :upto"
        self._q_repositories_with_blob = (
            "SELECT r.name FROM repo_blob rb JOIN repository r ON r.id = rb.repository_id "
            f"WHERE rb.digest = :digest ORDER BY r.name{d.collate} LIMIT :n"
        )
        self._q_tags = (
            f"SELECT name FROM tag WHERE repository_id = :rid AND name{d.collate} > :last "
            f"ORDER BY name{d.collate} LIMIT :n"
        )
        self._q_tag_records = (
            "SELECT t.name, t.digest, m.media_type, m.size, t.origin_region, t.origin_at "
            f"FROM tag t JOIN manifest m ON m.digest = t.digest WHERE t.repository_id = :rid "
            f"AND t.name{d.collate} > :last ORDER BY t.name{d.collate} LIMIT :n"
        )
        self._q_tags_of_digest = (
            "SELECT name FROM tag WHERE repository_id = :rid AND digest = :d "
            f"ORDER BY name{d.collate}"
        )
        self._q_has_blob = (
            f"SELECT 1 FROM repo_blob WHERE repository_id = :rid AND digest = :d{d.lock_read}"
        )
        self._q_has_manifest = (
            f"SELECT 1 FROM repo_manifest WHERE repository_id = :rid AND digest = :d{d.lock_read}"
        )
        # Repository names never change id (repositories are never deleted).
        self._repo_ids: dict[str, int] = {}
        # Hot-read caches, keyed by the invalidator's epoch and the repository's generation: any
        # change to a repository made here bumps it, so this process never reads its own stale
        # writes; so does a notification of a change made on another node (PostgreSQL). The TTL
        # bounds what another process's changes can take to show where nothing notifies
        # (SQLite workers). The generation is read before the query whose result is cached, so
        # a result that raced with a change is stored under a key no one reads again.
        self._generation: dict[int, int] = {}
        self._inv = sql.invalidator
        self._inv.subscribe(CONTENT_CHANNEL, self._notified)
        self._manifests: TTLCache[ManifestRecord] = TTLCache(1024, cache_ttl_seconds)
        self._blob_sizes: TTLCache[int] = TTLCache(16384, cache_ttl_seconds)
        #: garbage collection's fence: the BlobStore of the same registry holds blobs with it
        self.fence = BlobFence(sql)

    def _changed(self, rid: int) -> None:
        self._generation[rid] = self._generation.get(rid, 0) + 1

    def _notified(self, payload: str) -> None:
        if payload.isdigit():
            self._changed(int(payload))

    # ------------------------------------------------------------------ repositories
    async def repository_id(self, name: str) -> int | None:
        rid = self._repo_ids.get(name)
        if rid is not None:
            return rid
        row = await self.sql.one("SELECT id FROM repository WHERE name = :name", name=name)
        if row is None:
            return None
        self._repo_ids[name] = rid = int(row[0])
        return rid

    async def list_repositories(
        self, n: int | None, last: str | None, prefix: str = ""
    ) -> list[str]:
        """Repository names in lexical order after ``last``; only those starting with
        ``prefix`` if one is given."""
        limit = self._d.no_limit if n is None else n
        if not prefix.isascii():  # repository names are ASCII
            return []
        if not prefix:
            rows = await self.sql.all(self._q_repositories, last=last or "", n=limit)
        else:
            hi = prefix[:-1] + chr(ord(prefix[-1]) + 1)  # the first name past the prefix
            rows = await self.sql.all(
                self._q_repositories_in, last=last or "", lo=prefix, hi=hi, n=limit
            )
        return [r[0] for r in rows]

    async def tag_records_of(self, repos: list[str]) -> dict[str, list[TagRecord]]:
        """The tags (with their manifests) of ``repos``, a page of :meth:`list_repositories`
        (in its order: one range query)."""
        if not repos:
            return {}
        out: dict[str, list[TagRecord]] = {repo: [] for repo in repos}
        rows = await self.sql.all(self._q_tag_records_between, first=repos[0], upto=repos[-1])
        for repo, tag, digest, media_type, size, region, at in rows:
            if repo in out:
                out[repo].append(
                    TagRecord(tag, digest, media_type, int(size), origin_of(region, at))
                )
        return out

    async def tombstones_of(self, repos: list[str]) -> dict[str, dict[str, Tombstone]]:
        """The tombstones of ``repos``, a page of :meth:`list_repositories` (one range query)."""
        out: dict[str, dict[str, Tombstone]] = {repo: {} for repo in repos}
        if not repos:
            return out
        rows = await self.sql.all(self._q_tombstones_between, first=repos[0], upto=repos[-1])
        for repo, tag, digest, region, at in rows:
            if repo in out and (found := tombstone_of(digest, region, at)) is not None:
                out[repo][tag] = found
        return out

    # ------------------------------------------------------------------ blobs
    async def blob_size(self, repo: str, digest: str) -> int | None:
        """Size of a blob reachable in ``repo`` (linked), else None."""
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        live = self._inv.live
        key = (self._inv.epoch, rid, self._generation.get(rid, 0), digest)
        size = self._blob_sizes.get(key) if live else None
        if size is not None:
            return size
        row = await self.sql.one(
            "SELECT b.size, g.digest IS NOT NULL FROM repo_blob rb "
            "JOIN blob b ON b.digest = rb.digest LEFT JOIN blob_gc g ON g.digest = rb.digest "
            "WHERE rb.repository_id = :rid AND rb.digest = :digest",
            rid=rid,
            digest=digest,
        )
        if row is None:
            return None
        if row[1] and not await self.fence.unmark(digest):  # in use: keep it another grace
            return None  # being garbage-collected: its link is going
        if live:
            self._blob_sizes.put(key, int(row[0]))
        return int(row[0])

    async def known_blob_size(self, digest: str) -> int | None:
        """Size of a blob stored anywhere in the registry, else None."""
        row = await self.sql.one("SELECT size FROM blob WHERE digest = :digest", digest=digest)
        return int(row[0]) if row else None

    async def repositories_with_blob(self, digest: str, limit: int = 100) -> list[str]:
        rows = await self.sql.all(self._q_repositories_with_blob, digest=digest, n=limit)
        return [r[0] for r in rows]

    async def link_blob(self, repo: str, digest: str, size: int) -> None:
        """Link a blob whose bytes are stored into ``repo``. Consumes the calling task's hold on
        it (:class:`registry.meta.fence.BlobFence`).

        :raises RegistryError: ``UNAVAILABLE`` when garbage collection took the blob while it
            was being published (the client uploads it again).
        """
        known = self._repo_ids.get(repo)  # ids never change: repository rows are never deleted
        token = self.fence.take(digest)

        def tx(t: Tx) -> int:
            now = self.sql.now()
            self.fence.check_in(t, digest, token)
            rid = known if known is not None else _ensure_repository(t, repo, now)
            t.execute(
                "INSERT INTO blob (digest, size, created_at) VALUES (:d, :s, :now) "
                "ON CONFLICT DO NOTHING",
                d=digest,
                s=size,
                now=now,
            )
            t.execute(
                "INSERT INTO repo_blob (repository_id, digest, created_at) "
                "VALUES (:rid, :d, :now) ON CONFLICT DO NOTHING",
                rid=rid,
                d=digest,
                now=now,
            )
            return rid

        rid = await self.sql.write(tx)
        self._repo_ids[repo] = rid

    async def unlink_blob(self, repo: str, digest: str) -> bool:
        rid = await self.repository_id(repo)
        if rid is None:
            return False

        def tx(t: Tx) -> int:
            t.notify(CONTENT_CHANNEL, str(rid))
            return t.execute(
                "DELETE FROM repo_blob WHERE repository_id = :rid AND digest = :d",
                rid=rid,
                d=digest,
            )

        count = await self.sql.write(tx)
        self._changed(rid)
        return bool(count)

    # ------------------------------------------------------------------ manifests
    def _missing_refs(self, t: Tx, rid: int, parsed: ParsedManifest) -> list[str]:
        missing = []
        for d in sorted({d.digest for d in parsed.blobs}):
            if t.one(self._q_has_blob, rid=rid, d=d) is None:
                missing.append(d)
        for d in sorted({d.digest for d in parsed.children}):
            if t.one(self._q_has_manifest, rid=rid, d=d) is None:
                missing.append(d)
        return sorted(missing)

    async def put_manifest(
        self,
        repo: str,
        digest: str,
        data: bytes,
        parsed: ParsedManifest,
        tag: str | None,
        actor: str | None,
        origin: Origin | None = None,
    ) -> bool:
        """Store a manifest (and tag) in one transaction with its outbox event.

        ``origin``: a replicating Seawall's write carries the tag's original origin (else the
        origin is this region, now). Such a write that changes nothing here — the manifest in
        the repository already, the tag already naming it — writes nothing and no event
        (another region's replication finds nothing to do, so nothing loops). Returns whether
        anything changed.

        :raises RegistryError: ``MANIFEST_BLOB_UNKNOWN`` when a referenced blob or child
            manifest is not in the repository.
        """
        known = self._repo_ids.get(repo)

        def tx(t: Tx) -> int | None:
            now = self.sql.now()
            rid = known if known is not None else _ensure_repository(t, repo, now)
            current = None if tag is None else self._tag_digest(t, rid, tag)
            missing = self._missing_refs(t, rid, parsed)
            if missing:
                raise RegistryError(
                    "MANIFEST_BLOB_UNKNOWN",
                    {"missing": missing[:20], "hint": "push blobs and child manifests first"},
                )
            linked = _store_manifest(t, rid, digest, data, parsed, now)
            if origin is not None and not linked and (tag is None or current == digest):
                return None  # a replicated write of what is here already
            if tag is not None:
                self._set_tag(t, rid, tag, digest, now, origin)
            _event(t, now, "push", repo, digest, tag, actor, parsed.media_type, len(data))
            t.notify(CONTENT_CHANNEL, str(rid))
            return rid

        rid = await self.sql.write(tx)
        if rid is None:
            return False
        self._repo_ids[repo] = rid
        self._changed(rid)
        return True

    @staticmethod
    def _tag_digest(t: Tx, rid: int, tag: str) -> str | None:
        row = t.one(
            "SELECT digest FROM tag WHERE repository_id = :rid AND name = :tag", rid=rid, tag=tag
        )
        return None if row is None else str(row[0])

    def _origin(self, given: Origin | None) -> Origin:
        """``given`` (carried by a replicating Seawall), else this region now."""
        return given if given is not None else Origin(utc_now(), self.region_name)

    def _set_tag(
        self, t: Tx, rid: int, tag: str, digest: str, now: Any, given: Origin | None
    ) -> None:
        origin = self._origin(given)
        t.execute(
            "INSERT INTO tag (repository_id, name, digest, updated_at, origin_region, origin_at) "
            "VALUES (:rid, :tag, :d, :now, :region, :at) ON CONFLICT (repository_id, name) "
            "DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, "
            "origin_region = excluded.origin_region, origin_at = excluded.origin_at",
            rid=rid,
            tag=tag,
            d=digest,
            now=now,
            region=origin.region,
            at=stamp(self.sql, origin.at),
        )
        clear_tombstone(t, rid, tag)

    def _bury(self, t: Tx, rid: int, tags: list[tuple[str, str]], given: Origin | None) -> None:
        """Tombstones for ``tags`` (``(name, digest)``) deleted now, with the deletion's origin."""
        write_tombstones(
            t, self.sql, rid, tags, self._origin(given), self.tombstone_retention_seconds
        )

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        live = self._inv.live
        key = (self._inv.epoch, rid, self._generation.get(rid, 0), reference)
        cached = self._manifests.get(key) if live else None
        if cached is not None:
            return cached
        if ":" in reference:
            row = await self.sql.one(
                "SELECT m.digest, m.media_type, m.size, m.data FROM repo_manifest rm "
                "JOIN manifest m ON m.digest = rm.digest "
                "WHERE rm.repository_id = :rid AND rm.digest = :ref",
                rid=rid,
                ref=reference,
            )
        else:
            row = await self.sql.one(
                "SELECT m.digest, m.media_type, m.size, m.data, t.origin_region, t.origin_at "
                "FROM tag t JOIN manifest m ON m.digest = t.digest "
                "WHERE t.repository_id = :rid AND t.name = :ref",
                rid=rid,
                ref=reference,
            )
        if row is None:
            return None
        origin = origin_of(row[4], row[5]) if len(row) > 4 else None
        record = ManifestRecord(row[0], row[1], int(row[2]), bytes(row[3]), origin)
        if live and record.size <= 64 * 1024:
            self._manifests.put(key, record)
        return record

    async def delete_manifest(
        self, repo: str, digest: str, actor: str | None, origin: Origin | None = None
    ) -> bool:
        """Remove a manifest and every tag naming it from ``repo`` (each tag leaves a
        tombstone with the deletion's ``origin``: carried by a replicating Seawall, else this
        region now)."""
        rid = await self.repository_id(repo)
        if rid is None:
            return False

        def tx(t: Tx) -> bool:
            now = self.sql.now()
            tags = [r[0] for r in t.all(self._q_tags_of_digest, rid=rid, d=digest)]
            if not t.execute(
                "DELETE FROM repo_manifest WHERE repository_id = :rid AND digest = :d",
                rid=rid,
                d=digest,
            ):
                return False
            t.execute(
                "DELETE FROM tag WHERE repository_id = :rid AND digest = :d", rid=rid, d=digest
            )
            self._bury(t, rid, [(tag, digest) for tag in tags], origin)
            for tag in tags:
                _event(t, now, "untag", repo, digest, tag, actor)
            _event(t, now, "delete", repo, digest, None, actor)
            t.notify(CONTENT_CHANNEL, str(rid))
            return True

        found = await self.sql.write(tx)
        self._changed(rid)
        return found

    async def delete_repository(
        self, repo: str, actor: str | None, origin: Origin | None = None
    ) -> bool:
        """Remove every tag, manifest and blob link of ``repo`` in one transaction, announced by
        one ``delete_repository`` event (the blobs stay for other repositories and the garbage
        collector). False when there was nothing to delete."""
        rid = await self.repository_id(repo)
        if rid is None:
            return False

        def tx(t: Tx) -> bool:
            tags = [
                (str(r[0]), str(r[1]))
                for r in t.all("SELECT name, digest FROM tag WHERE repository_id = :rid", rid=rid)
            ]
            self._bury(t, rid, tags, origin)
            removed = 0
            for table in ("tag", "repo_manifest", "repo_blob"):
                removed += t.execute(f"DELETE FROM {table} WHERE repository_id = :rid", rid=rid)
            if not removed:
                return False
            _event(t, self.sql.now(), "delete_repository", repo, None, None, actor)
            t.notify(CONTENT_CHANNEL, str(rid))
            return True

        found = await self.sql.write(tx, large=True)  # every tag of the repository
        self._changed(rid)
        return found

    async def delete_tag(
        self, repo: str, tag: str, actor: str | None, origin: Origin | None = None
    ) -> bool:
        """Remove ``tag``; it leaves a tombstone with the deletion's ``origin`` (carried by a
        replicating Seawall, else this region now)."""
        rid = await self.repository_id(repo)
        if rid is None:
            return False

        def tx(t: Tx) -> bool:
            row = t.one(
                "SELECT digest FROM tag WHERE repository_id = :rid AND name = :tag",
                rid=rid,
                tag=tag,
            )
            if row is None:
                return False
            t.execute(
                "DELETE FROM tag WHERE repository_id = :rid AND name = :tag", rid=rid, tag=tag
            )
            self._bury(t, rid, [(tag, str(row[0]))], origin)
            _event(t, self.sql.now(), "untag", repo, row[0], tag, actor)
            t.notify(CONTENT_CHANNEL, str(rid))
            return True

        found = await self.sql.write(tx)
        self._changed(rid)
        return found

    # ------------------------------------------------------------------ tags, referrers
    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str] | None:
        """Tags of ``repo`` in lexical order (None when the repository is unknown)."""
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        rows = await self.sql.all(
            self._q_tags, rid=rid, last=last or "", n=self._d.no_limit if n is None else n
        )
        return [r[0] for r in rows]

    async def list_tag_records(
        self, repo: str, n: int | None, last: str | None
    ) -> list[TagRecord] | None:
        """:meth:`list_tags` with the digest, media type and size each tag names."""
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        rows = await self.sql.all(
            self._q_tag_records, rid=rid, last=last or "", n=self._d.no_limit if n is None else n
        )
        return [TagRecord(r[0], r[1], r[2], int(r[3]), origin_of(r[4], r[5])) for r in rows]

    async def tombstones(
        self, repo: str, last: str | None, upto: str | None
    ) -> dict[str, Tombstone]:
        """Tombstones of ``repo`` named after ``last`` and up to ``upto`` (None: no end): the
        range of names one page of :meth:`list_tag_records` covers."""
        rid = await self.repository_id(repo)
        if rid is None:
            return {}
        if upto is None:
            rows = await self.sql.all(self._q_tombstones, rid=rid, last=last or "")
        else:
            rows = await self.sql.all(self._q_tombstones_upto, rid=rid, last=last or "", upto=upto)
        out = {}
        for name, digest, region, at in rows:
            if (found := tombstone_of(digest, region, at)) is not None:
                out[str(name)] = found
        return out

    async def tombstone(self, repo: str, tag: str) -> Tombstone | None:
        """The tombstone ``repo:tag`` left, if it was deleted here (within the retention)."""
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        row = await self.sql.one(
            "SELECT digest, origin_region, origin_at FROM tag_tombstone "
            "WHERE repository_id = :rid AND name = :tag",
            rid=rid,
            tag=tag,
        )
        return None if row is None else tombstone_of(row[0], row[1], row[2])

    async def referrers(
        self, repo: str, subject: str, artifact_type: str | None
    ) -> list[ReferrerRecord]:
        rid = await self.repository_id(repo)
        if rid is None:
            return []
        # two statements, not ``(:at IS NULL OR …)``: PostgreSQL cannot type a parameter that
        # is only compared with NULL
        rows = await self.sql.all(
            _REFERRERS if artifact_type is None else _REFERRERS_OF_TYPE,
            rid=rid,
            subject=subject,
            at=artifact_type,
        )
        return [
            ReferrerRecord(r[0], r[1], int(r[2]), r[3], json.loads(r[4]) if r[4] else None)
            for r in rows
        ]

    # ------------------------------------------------------------------ read-through
    async def put_fetched_manifest(
        self, repo: str, digest: str, data: bytes, parsed: ParsedManifest
    ) -> bool:
        """Store a manifest read through from another replica (:mod:`registry.http.read_through`)
        by digest, as :meth:`put_manifest` stores a push — the same rows, and only once every
        blob and child manifest it references is in ``repo`` — but with no tag and no outbox
        event: the replica it came from announced it already (an event here would send it back
        there and on to every region this one replicates to), and its tags arrive with that
        replica's replication, which thereby records them as its own (deletion sync).

        Returns False, writing nothing, while a reference is missing.
        """
        known = self._repo_ids.get(repo)

        def tx(t: Tx) -> int | None:
            now = self.sql.now()
            rid = known if known is not None else _ensure_repository(t, repo, now)
            if self._missing_refs(t, rid, parsed):
                return None
            _store_manifest(t, rid, digest, data, parsed, now)
            t.notify(CONTENT_CHANNEL, str(rid))
            return rid

        rid = await self.sql.write(tx)
        if rid is None:
            return False
        self._repo_ids[repo] = rid
        self._changed(rid)
        return True

    async def removed_recently(self, repo: str, reference: str, window_seconds: float) -> bool:
        """Whether ``reference`` (a tag or a digest) of ``repo`` — or the whole repository — was
        deleted here within the last ``window_seconds``, by the outbox's record. A read-through
        must not bring back what was deleted here while the deletion is still on its way to
        the replica it would read from. (Only the window is read, through the ``created_at``
        index: the outbox keeps days of events and has no index by repository.)
        """
        since = stamp(self.sql, utc_now() - timedelta(seconds=window_seconds))
        column = "digest" if ":" in reference else "tag"
        actions = "('delete')" if column == "digest" else "('untag')"
        row = await self.sql.one(
            "SELECT 1 FROM event WHERE created_at >= :since AND repository = :repo AND "
            f"((action IN {actions} AND {column} = :ref) OR action = 'delete_repository') "
            "LIMIT 1",
            since=since,
            repo=repo,
            ref=reference,
        )
        return row is not None
