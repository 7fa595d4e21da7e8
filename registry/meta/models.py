"""Metadata tables (SQLModel): what the registry knows about repositories, content and accounts.

Blob *bytes* live in the storage driver; everything here is small and transactional, so one
database transaction covers a manifest, its tag and the event that announces them.

    repository ─┬─ repo_blob (digest)        a blob is reachable in a repository
                ├─ repo_manifest (digest) ── manifest (global, by digest; bytes kept here)
                │                             └─ manifest_ref (blob / child manifest it needs)
                ├─ tag (name → digest, origin: region and time of the write)
                ├─ tag_tombstone (a deleted tag: digest, the deletion's origin)
    event                                    the durable outbox: push, tag, untag, delete
    account ── permission                    users, robots, admin; per-repository-prefix rights
    blob_hold, blob_gc, gc_lease             garbage collection's fence (registry.meta.fence)
    proxy_tag                                a proxy-cache namespace's tag → digest, and when
                                             the upstream last vouched for it (proxy_tags)
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Index, LargeBinary, String
from sqlmodel import Field, SQLModel

__all__ = [
    "Account",
    "Blob",
    "BlobGc",
    "BlobHold",
    "Event",
    "GcLease",
    "Manifest",
    "ManifestRef",
    "Permission",
    "ProxyTag",
    "RepoBlob",
    "RepoManifest",
    "Repository",
    "Tag",
    "TagTombstone",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Repository(SQLModel, table=True):
    __tablename__ = "repository"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Blob(SQLModel, table=True):
    """A blob whose verified bytes are in storage at ``paths.blob_data(digest)``."""

    __tablename__ = "blob"
    digest: str = Field(primary_key=True, max_length=150)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class RepoBlob(SQLModel, table=True):
    __tablename__ = "repo_blob"
    # garbage collection looks links up by digest (registry.meta.gc)
    __table_args__ = (Index("ix_repo_blob_digest", "digest"),)
    repository_id: int = Field(foreign_key="repository.id", primary_key=True)
    digest: str = Field(primary_key=True, max_length=150)
    created_at: datetime = Field(default_factory=utcnow)


class Manifest(SQLModel, table=True):
    """Manifest content, global by digest; bytes exactly as pushed."""

    __tablename__ = "manifest"
    digest: str = Field(primary_key=True, max_length=150)
    media_type: str
    size: int
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    artifact_type: str | None = None
    subject_digest: str | None = Field(default=None, max_length=150)
    annotations_json: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class ManifestRef(SQLModel, table=True):
    """A blob or child manifest a manifest references (kind: ``blob`` or ``manifest``)."""

    __tablename__ = "manifest_ref"
    # garbage collection asks which manifests reference a blob (registry.meta.gc)
    __table_args__ = (Index("ix_manifest_ref_ref", "ref_digest"),)
    digest: str = Field(primary_key=True, max_length=150)
    ref_digest: str = Field(primary_key=True, max_length=150)
    kind: str = Field(max_length=16)


class RepoManifest(SQLModel, table=True):
    __tablename__ = "repo_manifest"
    __table_args__ = (
        Index("ix_repo_manifest_subject", "repository_id", "subject_digest"),
        Index("ix_repo_manifest_digest", "digest"),  # garbage collection: is it in a repository
    )
    repository_id: int = Field(foreign_key="repository.id", primary_key=True)
    digest: str = Field(primary_key=True, max_length=150)
    subject_digest: str | None = Field(default=None, max_length=150)
    created_at: datetime = Field(default_factory=utcnow)


class Tag(SQLModel, table=True):
    __tablename__ = "tag"
    __table_args__ = (Index("ix_tag_digest", "repository_id", "digest"),)
    repository_id: int = Field(foreign_key="repository.id", primary_key=True)
    name: str = Field(primary_key=True, max_length=128)
    digest: str = Field(max_length=150)
    updated_at: datetime = Field(default_factory=utcnow)
    #: the region that took the client's push and its time then (``registry.oci.origin``);
    #: a replicated tag keeps the original's. NULL: written before origins were recorded.
    origin_region: str | None = Field(default=None, max_length=63)
    origin_at: datetime | None = None


class TagTombstone(SQLModel, table=True):
    """A tag deleted here: the digest it named and the deletion's origin (the region that took
    the client's delete, and its time then), so a region that still holds the tag does not
    bring it back. Removed when the tag is set again; pruned after the retention
    (``ContentStore.tombstone_retention_seconds``) by ``deleted_at``, this registry's time."""

    __tablename__ = "tag_tombstone"
    repository_id: int = Field(foreign_key="repository.id", primary_key=True)
    name: str = Field(primary_key=True, max_length=128)
    digest: str = Field(max_length=150)
    origin_region: str = Field(max_length=63)
    origin_at: datetime
    deleted_at: datetime = Field(default_factory=utcnow)


class Event(SQLModel, table=True):
    """The durable outbox: written in the same transaction as the change it announces.

    ``action``: ``push`` (a manifest stored), ``tag`` (a tag set or moved), ``untag`` (a tag
    removed), ``delete`` (a manifest deleted from a repository), ``delete_repository``.
    """

    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    action: str = Field(max_length=32)
    repository: str = Field(max_length=255)
    # indexed: the push -> replicated histogram looks up a run's own digests' events
    digest: str | None = Field(default=None, max_length=150, index=True)
    tag: str | None = Field(default=None, max_length=128)
    media_type: str | None = None
    size: int | None = None
    actor: str | None = Field(default=None, max_length=255)


class BlobHold(SQLModel, table=True):
    """A publication in flight: its blob's bytes are being written or checked and will be linked
    (``registry.meta.fence``). Garbage collection never claims a held blob; ``until`` bounds a
    hold whose publisher died."""

    __tablename__ = "blob_hold"
    digest: str = Field(primary_key=True, max_length=150)
    token: str = Field(primary_key=True, max_length=64)
    until: datetime


class BlobGc(SQLModel, table=True):
    """Garbage collection's state of one stored blob: *marked* (seen unreferenced at
    ``marked_at``; a read of the blob removes the mark) and then *claimed* (``claimed_at``, by
    ``owner``: its links are gone and its bytes are being deleted; no publication may start)."""

    __tablename__ = "blob_gc"
    digest: str = Field(primary_key=True, max_length=150)
    marked_at: datetime
    claimed_at: datetime | None = None
    owner: str | None = Field(default=None, max_length=64)


class GcLease(SQLModel, table=True):
    """Which node runs the periodic garbage collection this interval (``name``: ``periodic``)."""

    __tablename__ = "gc_lease"
    name: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=64)
    until: datetime


class Account(SQLModel, table=True):
    """A user, robot or the admin. Robots are for CI and clusters (Harbor's robot accounts)."""

    __tablename__ = "account"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    kind: str = Field(default="user", max_length=16)  # admin | user | robot
    password_hash: str
    disabled: bool = False
    expires_at: datetime | None = None
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class Permission(SQLModel, table=True):
    """``actions`` (comma-separated ``pull``, ``push``, ``delete``) on repositories matching
    ``repository`` — a name, a prefix ending in ``/*`` (everything below it) or ``*`` (all)."""

    __tablename__ = "permission"
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True)
    repository: str = Field(max_length=255)
    actions: str = Field(max_length=64)


class ProxyTag(SQLModel, table=True):
    """A tag of a repository in a proxy-cache namespace (``registry.meta.proxy_tags``): the
    digest the upstream named last, and when it last said so (``validated_at``: seconds since
    the epoch on the node's clock). Kept apart from ``tag``: a client never writes it, and the
    replication engine never sees it as a tag of its own."""

    __tablename__ = "proxy_tag"
    repository: str = Field(primary_key=True, max_length=255)
    name: str = Field(primary_key=True, max_length=128)
    digest: str = Field(max_length=150)
    validated_at: float = 0.0
