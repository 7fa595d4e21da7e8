"""Repository content metadata: repositories, blob links, manifests, tags, referrers.

Every change that clients can observe is one transaction that also writes its outbox
:class:`~registry.meta.models.Event` rows, so a consumer of events never misses a change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.meta.cache import TTLCache
from registry.meta.db import Database
from registry.meta.models import (
    Blob,
    Event,
    Manifest,
    ManifestRef,
    RepoBlob,
    RepoManifest,
    Repository,
    Tag,
    utcnow,
)
from registry.oci.errors import RegistryError
from registry.oci.manifest import ParsedManifest

__all__ = ["ContentStore", "ManifestRecord", "ReferrerRecord"]

R = Repository.__table__  # type: ignore[attr-defined]
B = Blob.__table__  # type: ignore[attr-defined]
RB = RepoBlob.__table__  # type: ignore[attr-defined]
M = Manifest.__table__  # type: ignore[attr-defined]
MR = ManifestRef.__table__  # type: ignore[attr-defined]
RM = RepoManifest.__table__  # type: ignore[attr-defined]
T = Tag.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ReferrerRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str] | None


class ContentStore:
    def __init__(self, db: Database, *, cache_ttl_seconds: float = 2.0) -> None:
        self.db = db
        self._repo_ids: dict[str, int] = {}
        # Hot-read caches, keyed by the repository's generation: any change to a repository made
        # here bumps it, so this process never reads its own stale writes; the TTL bounds what
        # another process's changes can take to show.
        self._generation: dict[int, int] = {}
        self._manifests: TTLCache[ManifestRecord] = TTLCache(1024, cache_ttl_seconds)
        self._blob_sizes: TTLCache[int] = TTLCache(16384, cache_ttl_seconds)
        dialect = db.dialect
        self._insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert

    def _changed(self, rid: int) -> None:
        self._generation[rid] = self._generation.get(rid, 0) + 1

    def _insert_ignore(self, table: Any, **values: Any) -> Any:
        return self._insert(table).values(**values).on_conflict_do_nothing()

    # ------------------------------------------------------------------ repositories
    async def repository_id(self, name: str, conn: AsyncConnection | None = None) -> int | None:
        rid = self._repo_ids.get(name)
        if rid is not None:
            return rid
        stmt = select(R.c.id).where(R.c.name == name)
        if conn is None:
            async with self.db.read() as c:
                rid = (await c.execute(stmt)).scalar()
        else:
            rid = (await conn.execute(stmt)).scalar()
        if rid is not None:
            self._repo_ids[name] = rid
        return rid

    async def _ensure_repository(self, conn: AsyncConnection, name: str) -> int:
        rid = await self.repository_id(name, conn)
        if rid is None:
            await conn.execute(self._insert_ignore(R, name=name, created_at=utcnow()))
            rid = (await conn.execute(select(R.c.id).where(R.c.name == name))).scalar_one()
        return rid

    async def list_repositories(self, n: int | None, last: str | None) -> list[str]:
        stmt = select(R.c.name).order_by(R.c.name)
        if last:
            stmt = stmt.where(R.c.name > last)
        if n is not None:
            stmt = stmt.limit(n)
        async with self.db.read() as c:
            return list((await c.execute(stmt)).scalars())

    # ------------------------------------------------------------------ blobs
    async def blob_size(self, repo: str, digest: str) -> int | None:
        """Size of a blob reachable in ``repo`` (linked), else None."""
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        key = (rid, self._generation.get(rid, 0), digest)
        size = self._blob_sizes.get(key)
        if size is not None:
            return size
        stmt = (
            select(B.c.size)
            .select_from(RB.join(B, RB.c.digest == B.c.digest))
            .where(RB.c.repository_id == rid, RB.c.digest == digest)
        )
        async with self.db.read() as c:
            size = (await c.execute(stmt)).scalar()
        if size is not None:
            self._blob_sizes.put(key, size)
        return size

    async def known_blob_size(self, digest: str) -> int | None:
        """Size of a blob stored anywhere in the registry, else None."""
        async with self.db.read() as c:
            return (await c.execute(select(B.c.size).where(B.c.digest == digest))).scalar()

    async def link_blob(self, repo: str, digest: str, size: int) -> None:
        async with self.db.write() as c:
            rid = await self._ensure_repository(c, repo)
            await c.execute(self._insert_ignore(B, digest=digest, size=size, created_at=utcnow()))
            await c.execute(
                self._insert_ignore(RB, repository_id=rid, digest=digest, created_at=utcnow())
            )

    async def unlink_blob(self, repo: str, digest: str) -> bool:
        rid = await self.repository_id(repo)
        if rid is None:
            return False
        async with self.db.write() as c:
            res = await c.execute(
                delete(RB).where(RB.c.repository_id == rid, RB.c.digest == digest)
            )
        self._changed(rid)
        return bool(res.rowcount)

    # ------------------------------------------------------------------ manifests
    async def _missing_refs(
        self, c: AsyncConnection, rid: int, parsed: ParsedManifest
    ) -> list[str]:
        missing: list[str] = []
        blobs = {d.digest for d in parsed.blobs}
        if blobs:
            have = set(
                (
                    await c.execute(
                        select(RB.c.digest).where(RB.c.repository_id == rid, RB.c.digest.in_(blobs))
                    )
                ).scalars()
            )
            missing += sorted(blobs - have)
        children = {d.digest for d in parsed.children}
        if children:
            have = set(
                (
                    await c.execute(
                        select(RM.c.digest).where(
                            RM.c.repository_id == rid, RM.c.digest.in_(children)
                        )
                    )
                ).scalars()
            )
            missing += sorted(children - have)
        return missing

    async def put_manifest(
        self,
        repo: str,
        digest: str,
        data: bytes,
        parsed: ParsedManifest,
        tag: str | None,
        actor: str | None,
    ) -> None:
        """Store a manifest (and tag) in one transaction with its outbox event.

        :raises RegistryError: ``MANIFEST_BLOB_UNKNOWN`` when a referenced blob or child
            manifest is not in the repository.
        """
        now = utcnow()
        async with self.db.write() as c:
            rid = await self._ensure_repository(c, repo)
            missing = await self._missing_refs(c, rid, parsed)
            if missing:
                raise RegistryError(
                    "MANIFEST_BLOB_UNKNOWN",
                    {"missing": missing[:20], "hint": "push blobs and child manifests first"},
                )
            subject = parsed.subject.digest if parsed.subject else None
            await c.execute(
                self._insert_ignore(
                    M,
                    digest=digest,
                    media_type=parsed.media_type,
                    size=len(data),
                    data=data,
                    artifact_type=parsed.artifact_type,
                    subject_digest=subject,
                    annotations_json=json.dumps(parsed.annotations) if parsed.annotations else None,
                    created_at=now,
                )
            )
            refs = [
                {"digest": digest, "ref_digest": d.digest, "kind": "blob"} for d in parsed.blobs
            ]
            refs += [
                {"digest": digest, "ref_digest": d.digest, "kind": "manifest"}
                for d in parsed.children
            ]
            if refs:
                await c.execute(self._insert(MR).values(refs).on_conflict_do_nothing())
            await c.execute(
                self._insert_ignore(
                    RM, repository_id=rid, digest=digest, subject_digest=subject, created_at=now
                )
            )
            if tag is not None:
                await self._set_tag(c, rid, tag, digest, now)
            self._changed(rid)
            await c.execute(
                insert(E).values(
                    created_at=now,
                    action="push",
                    repository=repo,
                    digest=digest,
                    tag=tag,
                    media_type=parsed.media_type,
                    size=len(data),
                    actor=actor,
                )
            )

    async def _set_tag(self, c: AsyncConnection, rid: int, tag: str, digest: str, now: Any) -> None:
        res = await c.execute(
            update(T)
            .where(T.c.repository_id == rid, T.c.name == tag)
            .values(digest=digest, updated_at=now)
        )
        if not res.rowcount:
            await c.execute(
                self._insert(T)
                .values(repository_id=rid, name=tag, digest=digest, updated_at=now)
                .on_conflict_do_update(
                    index_elements=[T.c.repository_id, T.c.name],
                    set_={"digest": digest, "updated_at": now},
                )
            )

    async def resolve(self, repo: str, reference: str) -> str | None:
        """The digest a tag or digest reference names in ``repo``, if the manifest is there."""
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        if ":" in reference:
            stmt = select(RM.c.digest).where(RM.c.repository_id == rid, RM.c.digest == reference)
        else:
            stmt = select(T.c.digest).where(T.c.repository_id == rid, T.c.name == reference)
        async with self.db.read() as c:
            return (await c.execute(stmt)).scalar()

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        key = (rid, self._generation.get(rid, 0), reference)
        cached = self._manifests.get(key)
        if cached is not None:
            return cached
        cols = (M.c.digest, M.c.media_type, M.c.size, M.c.data)
        if ":" in reference:
            stmt = (
                select(*cols)
                .select_from(RM.join(M, RM.c.digest == M.c.digest))
                .where(RM.c.repository_id == rid, RM.c.digest == reference)
            )
        else:
            stmt = (
                select(*cols)
                .select_from(T.join(M, T.c.digest == M.c.digest))
                .where(T.c.repository_id == rid, T.c.name == reference)
            )
        async with self.db.read() as c:
            row = (await c.execute(stmt)).first()
        if row is None:
            return None
        record = ManifestRecord(row[0], row[1], row[2], bytes(row[3]))
        if record.size <= 64 * 1024:
            self._manifests.put(key, record)
        return record

    async def manifest_by_digest(self, digest: str) -> ManifestRecord | None:
        """A manifest's content anywhere in the registry (serves manifests fetched as blobs)."""
        stmt = select(M.c.digest, M.c.media_type, M.c.size, M.c.data).where(M.c.digest == digest)
        async with self.db.read() as c:
            row = (await c.execute(stmt)).first()
        return ManifestRecord(row[0], row[1], row[2], bytes(row[3])) if row else None

    async def delete_manifest(self, repo: str, digest: str, actor: str | None) -> bool:
        """Remove a manifest and every tag naming it from ``repo``."""
        rid = await self.repository_id(repo)
        if rid is None:
            return False
        now = utcnow()
        async with self.db.write() as c:
            tags = list(
                (
                    await c.execute(
                        select(T.c.name).where(T.c.repository_id == rid, T.c.digest == digest)
                    )
                ).scalars()
            )
            res = await c.execute(
                delete(RM).where(RM.c.repository_id == rid, RM.c.digest == digest)
            )
            self._changed(rid)
            if not res.rowcount:
                return False
            await c.execute(delete(T).where(T.c.repository_id == rid, T.c.digest == digest))
            events = [
                {
                    "created_at": now,
                    "action": "untag",
                    "repository": repo,
                    "digest": digest,
                    "tag": t,
                    "actor": actor,
                }
                for t in sorted(tags)
            ]
            events.append(
                {
                    "created_at": now,
                    "action": "delete",
                    "repository": repo,
                    "digest": digest,
                    "tag": None,
                    "actor": actor,
                }
            )
            await c.execute(insert(E), events)
            return True

    async def delete_tag(self, repo: str, tag: str, actor: str | None) -> bool:
        rid = await self.repository_id(repo)
        if rid is None:
            return False
        async with self.db.write() as c:
            digest = (
                await c.execute(select(T.c.digest).where(T.c.repository_id == rid, T.c.name == tag))
            ).scalar()
            if digest is None:
                return False
            await c.execute(delete(T).where(T.c.repository_id == rid, T.c.name == tag))
            self._changed(rid)
            await c.execute(
                insert(E).values(
                    created_at=utcnow(),
                    action="untag",
                    repository=repo,
                    digest=digest,
                    tag=tag,
                    actor=actor,
                )
            )
            return True

    # ------------------------------------------------------------------ tags, referrers
    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str] | None:
        """Tags of ``repo`` in lexical order (None when the repository is unknown)."""
        rid = await self.repository_id(repo)
        if rid is None:
            return None
        stmt = select(T.c.name).where(T.c.repository_id == rid).order_by(T.c.name)
        if last:
            stmt = stmt.where(T.c.name > last)
        if n is not None:
            stmt = stmt.limit(n)
        async with self.db.read() as c:
            return list((await c.execute(stmt)).scalars())

    async def referrers(
        self, repo: str, subject: str, artifact_type: str | None
    ) -> list[ReferrerRecord]:
        rid = await self.repository_id(repo)
        if rid is None:
            return []
        stmt = (
            select(M.c.digest, M.c.media_type, M.c.size, M.c.artifact_type, M.c.annotations_json)
            .select_from(RM.join(M, RM.c.digest == M.c.digest))
            .where(RM.c.repository_id == rid, RM.c.subject_digest == subject)
            .order_by(RM.c.created_at, M.c.digest)
        )
        if artifact_type is not None:
            stmt = stmt.where(M.c.artifact_type == artifact_type)
        async with self.db.read() as c:
            rows = (await c.execute(stmt)).all()
        return [
            ReferrerRecord(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None) for r in rows
        ]

    # ------------------------------------------------------------------ events
    async def events_since(self, last_id: int, limit: int = 1000) -> Sequence[Any]:
        stmt = select(E).where(E.c.id > last_id).order_by(E.c.id).limit(limit)
        async with self.db.read() as c:
            return (await c.execute(stmt)).all()

    async def count(self, table: str) -> int:
        t = {"repository": R, "blob": B, "manifest": M, "tag": T, "event": E}[table]
        async with self.db.read() as c:
            return int((await c.execute(select(func.count()).select_from(t))).scalar_one())
