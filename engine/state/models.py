"""Replication state (SQLModel tables in the same database as the registry's metadata).

    registry_endpoint ── policy ── execution ── task   (Harbor's model: one task per artifact)
                           └─ replicated               what Seawall itself put at a
                                                       destination; deletion sync deletes
                                                       nothing else

Statuses follow Harbor's v2.0 API: ``Pending``, ``InProgress``, ``Succeed``, ``Failed``,
``Stopped``. Tasks are leased (``lease_owner`` / ``lease_expires``) and heartbeated, so a task of a
dead worker is picked up again instead of staying ``InProgress`` forever.
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import BigInteger, Column, Index, String, Text
from sqlmodel import Field, SQLModel

from registry.meta.models import utcnow

__all__ = [
    "OUTBOX_CURSOR",
    "EventRetry",
    "Execution",
    "OutboxCursor",
    "Policy",
    "RegistryEndpoint",
    "Replicated",
    "Task",
    "endpoint_options",
]


class RegistryEndpoint(SQLModel, table=True):
    """A remote registry Seawall talks to. ``access_secret`` is stored encrypted."""

    __tablename__ = "registry_endpoint"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    type: str = Field(max_length=64)  # adapter name: docker-registry, seawall, harbor, aws-ecr, …
    url: str
    description: str = ""
    credential_type: str = Field(default="basic", max_length=16)  # basic | oauth | none
    access_key: str = ""
    access_secret_encrypted: str = ""
    insecure: bool = False
    ca_certificate: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    #: the adapter's provider settings (``{"region": "eu-west-1", ...}``), checked by the
    #: adapter's ``check_config`` before they are stored
    options_json: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    #: The shared secret a remote registry sends with its webhook calls (sealed like the
    #: credentials; empty: incoming webhooks are refused for this endpoint).
    webhook_secret_encrypted: str = ""
    status: str = Field(default="unknown", max_length=16)  # healthy | unhealthy | unknown
    status_detail: str = ""
    creation_time: datetime = Field(default_factory=utcnow)
    update_time: datetime = Field(default_factory=utcnow)


def endpoint_options(options_json: str | None) -> dict[str, str]:
    """A stored ``registry_endpoint.options_json`` as settings (``{}`` when empty or broken)."""
    try:
        found = json.loads(options_json or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


class Policy(SQLModel, table=True):
    """A replication rule (Harbor's fields, plus Seawall's safety rails and filter syntaxes).

    ``src_registry_id`` / ``dest_registry_id`` NULL means the local registry. Both set
    (remote → remote) is allowed: the engine streams between them and stores nothing locally.
    ``speed_bytes_per_second`` ≤ 0 means unlimited. ``filters_json`` holds Harbor-shaped
    filters with an optional ``syntax`` (glob, regex, semver).
    """

    __tablename__ = "policy"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(255), unique=True, nullable=False))
    description: str = ""
    src_registry_id: int | None = Field(default=None, foreign_key="registry_endpoint.id")
    dest_registry_id: int | None = Field(default=None, foreign_key="registry_endpoint.id")
    dest_namespace: str = ""
    dest_namespace_replace_count: int = -1
    filters_json: str = "[]"
    trigger_type: str = Field(default="manual", max_length=16)  # manual | scheduled | event_based
    trigger_cron: str = ""
    trigger_timezone: str = "UTC"
    deletion: bool = False
    override: bool = True
    enabled: bool = True
    speed_bytes_per_second: int = Field(default=-1, sa_column=Column(BigInteger, default=-1))
    copy_by_chunk: bool = False
    single_active_replication: bool = False
    max_deletions: int = 100
    max_deletion_fraction: float = 0.25
    creation_time: datetime = Field(default_factory=utcnow)
    update_time: datetime = Field(default_factory=utcnow)


class Execution(SQLModel, table=True):
    __tablename__ = "execution"
    __table_args__ = (
        Index("ix_execution_policy", "policy_id", "id"),
        # the active runs (claims, merges of events into a queued run, scope checks) are
        # found without reading the finished ones, however many are kept
        Index("ix_execution_status", "status", "policy_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(foreign_key="policy.id")
    status: str = Field(default="Pending", max_length=16)
    status_text: str = ""
    trigger: str = Field(default="manual", max_length=16)
    dry_run: bool = False
    stop_requested: bool = False
    total: int = 0
    succeed: int = 0
    failed: int = 0
    in_progress: int = 0
    stopped: int = 0
    skipped: int = 0
    bytes_copied: int = Field(default=0, sa_column=Column(BigInteger, default=0))
    planned: bool = False  # tasks are written; a restart resumes them instead of re-planning
    #: Empty: the whole policy. Else a JSON scope (see :mod:`engine.scope`): the repositories
    #: (and pushed digests) that events named; the run lists and plans only those.
    scope_json: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_expires: datetime | None = None
    start_time: datetime = Field(default_factory=utcnow)
    end_time: datetime | None = None


class EventRetry(SQLModel, table=True):
    """A failed event-scoped run's events, waiting to run again (see
    :mod:`engine.state.retries`): durable, so a restart or another node honours the back-off.

    ``attempt`` counts the retries queued so far. While ``due_at`` is set the row waits; once
    due, a node queues the run and records it in ``execution_id`` (``due_at`` cleared), and
    that run's end settles the row: done, or due again later.
    """

    __tablename__ = "event_retry"
    __table_args__ = (
        Index("ix_event_retry_due", "due_at"),
        Index("ix_event_retry_execution", "execution_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    policy_id: int = Field(index=True)
    scope_json: str = Field(sa_column=Column(Text, nullable=False))
    attempt: int = 1
    due_at: datetime | None = None
    execution_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)


#: The replication outbox consumer's row in ``outbox_cursor`` (``schedules.outbox``; read by the
#: lag and backlog figures).
OUTBOX_CURSOR = "replication"


class OutboxCursor(SQLModel, table=True):
    """How far a consumer of the registry's event outbox has read (``event.id``). Advanced in
    the same transaction as the executions the events produced: exactly once in effect."""

    __tablename__ = "outbox_cursor"
    name: str = Field(primary_key=True, max_length=64)
    position: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    updated_at: datetime = Field(default_factory=utcnow)


class Task(SQLModel, table=True):
    """One artifact (or one deletion) of an execution.

    ``outcome``: ``copied``, ``skipped-identical``, ``skipped-differs`` (destination differs and
    override is off), ``deleted``, ``would-copy`` / ``would-delete`` (dry run), ``failed``.
    """

    __tablename__ = "task"
    __table_args__ = (
        Index("ix_task_execution", "execution_id", "id"),
        Index("ix_task_lease", "status", "lease_expires"),
    )
    id: int | None = Field(default=None, primary_key=True)
    execution_id: int = Field(foreign_key="execution.id")
    status: str = Field(default="Pending", max_length=16)
    operation: str = Field(default="copy", max_length=16)  # copy | deletion
    resource_type: str = Field(default="image", max_length=32)
    src_resource: str = ""
    dst_resource: str = ""
    src_repository: str = ""
    dst_repository: str = ""
    digest: str = Field(default="", max_length=150)
    tags_json: str = "[]"
    outcome: str = ""
    reason: str = ""
    log: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=128)
    lease_expires: datetime | None = None
    bytes_copied: int = Field(default=0, sa_column=Column(BigInteger, default=0))
    start_time: datetime | None = None
    end_time: datetime | None = None


class Replicated(SQLModel, table=True):
    """A tag (or, with ``tag`` empty, an untagged artifact) Seawall put at a destination."""

    __tablename__ = "replicated"
    policy_id: int = Field(foreign_key="policy.id", primary_key=True)
    dst_repository: str = Field(primary_key=True, max_length=255)
    tag: str = Field(primary_key=True, max_length=128)
    digest: str = Field(max_length=150)
    updated_at: datetime = Field(default_factory=utcnow)
