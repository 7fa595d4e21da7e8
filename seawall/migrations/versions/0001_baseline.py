"""Baseline: the schema of Seawall at commit 9420392, the last release before versioned
migrations (``create_all`` of its models, plus the PostgreSQL listing indexes).

On an empty database this creates it. On a database made before migrations existed (by any
earlier Seawall) it makes what is missing — tables, columns, indexes — and changes nothing else
(:mod:`seawall.migrations.ensure`); the runner skips it where everything is there already
(:func:`is_applied`).

The tables below are a frozen copy of that commit's models: never edit them to follow the
models; a change of schema is a new revision.

Revision ID: 0001
Revises: (none, the base)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from seawall.migrations.ensure import ensure_tables, missing
from seawall.migrations.errors import refuse_downgrade

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

META = sa.MetaData()

sa.Table(
    "account",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("kind", sa.String(16), nullable=False, default="user"),
    sa.Column("password_hash", sa.String(), nullable=False),
    sa.Column("disabled", sa.Boolean(), nullable=False, default=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("description", sa.String(), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "blob",
    META,
    sa.Column("digest", sa.String(150), primary_key=True),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "event",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("digest", sa.String(150), nullable=True),
    sa.Column("tag", sa.String(128), nullable=True),
    sa.Column("media_type", sa.String(), nullable=True),
    sa.Column("size", sa.Integer(), nullable=True),
    sa.Column("actor", sa.String(255), nullable=True),
    sa.Index("ix_event_created_at", "created_at"),
)
sa.Table(
    "manifest",
    META,
    sa.Column("digest", sa.String(150), primary_key=True),
    sa.Column("media_type", sa.String(), nullable=False),
    sa.Column("size", sa.Integer(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Column("artifact_type", sa.String(), nullable=True),
    sa.Column("subject_digest", sa.String(150), nullable=True),
    sa.Column("annotations_json", sa.String(), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "manifest_ref",
    META,
    sa.Column("digest", sa.String(150), primary_key=True),
    sa.Column("ref_digest", sa.String(150), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
)
sa.Table(
    "outbox_cursor",
    META,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger(), nullable=False, default=0),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "registry_endpoint",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("url", sa.String(), nullable=False),
    sa.Column("description", sa.String(), nullable=False, default=""),
    sa.Column("credential_type", sa.String(16), nullable=False, default="basic"),
    sa.Column("access_key", sa.String(), nullable=False, default=""),
    sa.Column("access_secret_encrypted", sa.String(), nullable=False, default=""),
    sa.Column("insecure", sa.Boolean(), nullable=False, default=False),
    sa.Column("ca_certificate", sa.Text(), nullable=False, default=""),
    sa.Column("webhook_secret_encrypted", sa.String(), nullable=False, default=""),
    sa.Column("status", sa.String(16), nullable=False, default="unknown"),
    sa.Column("status_detail", sa.String(), nullable=False, default=""),
    sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "repository",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "permission",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("actions", sa.String(64), nullable=False),
    sa.Index("ix_permission_account_id", "account_id"),
)
sa.Table(
    "policy",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("description", sa.String(), nullable=False, default=""),
    sa.Column(
        "src_registry_id", sa.Integer(), sa.ForeignKey("registry_endpoint.id"), nullable=True
    ),
    sa.Column(
        "dest_registry_id", sa.Integer(), sa.ForeignKey("registry_endpoint.id"), nullable=True
    ),
    sa.Column("dest_namespace", sa.String(), nullable=False, default=""),
    sa.Column("dest_namespace_replace_count", sa.Integer(), nullable=False, default=-1),
    sa.Column("filters_json", sa.String(), nullable=False, default="[]"),
    sa.Column("trigger_type", sa.String(16), nullable=False, default="manual"),
    sa.Column("trigger_cron", sa.String(), nullable=False, default=""),
    sa.Column("trigger_timezone", sa.String(), nullable=False, default="UTC"),
    sa.Column("deletion", sa.Boolean(), nullable=False, default=False),
    sa.Column("override", sa.Boolean(), nullable=False, default=True),
    sa.Column("enabled", sa.Boolean(), nullable=False, default=True),
    sa.Column("speed_bytes_per_second", sa.BigInteger(), nullable=True, default=-1),
    sa.Column("copy_by_chunk", sa.Boolean(), nullable=False, default=False),
    sa.Column("single_active_replication", sa.Boolean(), nullable=False, default=False),
    sa.Column("max_deletions", sa.Integer(), nullable=False, default=100),
    sa.Column("max_deletion_fraction", sa.Float(), nullable=False, default=0.25),
    sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "repo_blob",
    META,
    sa.Column("repository_id", sa.Integer(), sa.ForeignKey("repository.id"), primary_key=True),
    sa.Column("digest", sa.String(150), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "repo_manifest",
    META,
    sa.Column("repository_id", sa.Integer(), sa.ForeignKey("repository.id"), primary_key=True),
    sa.Column("digest", sa.String(150), primary_key=True),
    sa.Column("subject_digest", sa.String(150), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_repo_manifest_subject", "repository_id", "subject_digest"),
)
sa.Table(
    "tag",
    META,
    sa.Column("repository_id", sa.Integer(), sa.ForeignKey("repository.id"), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("digest", sa.String(150), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_tag_digest", "repository_id", "digest"),
)
sa.Table(
    "execution",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("policy_id", sa.Integer(), sa.ForeignKey("policy.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="Pending"),
    sa.Column("status_text", sa.String(), nullable=False, default=""),
    sa.Column("trigger", sa.String(16), nullable=False, default="manual"),
    sa.Column("dry_run", sa.Boolean(), nullable=False, default=False),
    sa.Column("stop_requested", sa.Boolean(), nullable=False, default=False),
    sa.Column("total", sa.Integer(), nullable=False, default=0),
    sa.Column("succeed", sa.Integer(), nullable=False, default=0),
    sa.Column("failed", sa.Integer(), nullable=False, default=0),
    sa.Column("in_progress", sa.Integer(), nullable=False, default=0),
    sa.Column("stopped", sa.Integer(), nullable=False, default=0),
    sa.Column("skipped", sa.Integer(), nullable=False, default=0),
    sa.Column("bytes_copied", sa.BigInteger(), nullable=True, default=0),
    sa.Column("planned", sa.Boolean(), nullable=False, default=False),
    sa.Column("scope_json", sa.Text(), nullable=False, default=""),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True),
    sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_execution_policy", "policy_id", "id"),
)
sa.Table(
    "notify_webhook",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column(
        "policy_id", sa.Integer(), sa.ForeignKey("policy.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("description", sa.String(), nullable=False, default=""),
    sa.Column("address", sa.Text(), nullable=False),
    sa.Column("format", sa.String(16), nullable=False, default="default"),
    sa.Column("auth_header", sa.Text(), nullable=False, default=""),
    sa.Column(
        "event_types_json",
        sa.String(),
        nullable=False,
        default='["REPLICATION_STARTED", "ARTIFACT_REPLICATED", "ARTIFACT_FAILED", '
        '"REPLICATION_FINISHED", "REPLICATION_FAILED"]',
    ),
    sa.Column("enabled", sa.Boolean(), nullable=False, default=True),
    sa.Column("skip_cert_verify", sa.Boolean(), nullable=False, default=False),
    sa.Column("creator", sa.String(), nullable=False, default=""),
    sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("policy_id", "name", name="uq_notify_webhook_name"),
    sa.Index("ix_notify_webhook_policy_id", "policy_id"),
)
sa.Table(
    "replicated",
    META,
    sa.Column("policy_id", sa.Integer(), sa.ForeignKey("policy.id"), primary_key=True),
    sa.Column("dst_repository", sa.String(255), primary_key=True),
    sa.Column("tag", sa.String(128), primary_key=True),
    sa.Column("digest", sa.String(150), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Table(
    "notify_delivery",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column(
        "webhook_id",
        sa.Integer(),
        sa.ForeignKey("notify_webhook.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("policy_id", sa.Integer(), nullable=False),
    sa.Column("execution_id", sa.Integer(), nullable=True),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("event", sa.String(32), nullable=False, default=""),
    sa.Column("format", sa.String(16), nullable=False, default="default"),
    sa.Column("payload_json", sa.Text(), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="Pending"),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("last_http_status", sa.Integer(), nullable=True),
    sa.Column("last_error", sa.String(), nullable=False, default=""),
    sa.Column("history_json", sa.Text(), nullable=False, default="[]"),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_owner", sa.String(160), nullable=True),
    sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_notify_delivery_due", "status", "next_attempt_at"),
    sa.Index("ix_notify_delivery_policy", "policy_id", "id"),
    sa.Index("ix_notify_delivery_webhook", "webhook_id", "id"),
)
sa.Table(
    "task",
    META,
    sa.Column("id", sa.Integer(), primary_key=True),
    sa.Column("execution_id", sa.Integer(), sa.ForeignKey("execution.id"), nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="Pending"),
    sa.Column("operation", sa.String(16), nullable=False, default="copy"),
    sa.Column("resource_type", sa.String(32), nullable=False, default="image"),
    sa.Column("src_resource", sa.String(), nullable=False, default=""),
    sa.Column("dst_resource", sa.String(), nullable=False, default=""),
    sa.Column("src_repository", sa.String(), nullable=False, default=""),
    sa.Column("dst_repository", sa.String(), nullable=False, default=""),
    sa.Column("digest", sa.String(150), nullable=False, default=""),
    sa.Column("tags_json", sa.String(), nullable=False, default="[]"),
    sa.Column("outcome", sa.String(), nullable=False, default=""),
    sa.Column("reason", sa.String(), nullable=False, default=""),
    sa.Column("log", sa.Text(), nullable=False, default=""),
    sa.Column("attempts", sa.Integer(), nullable=False, default=0),
    sa.Column("lease_owner", sa.String(128), nullable=True),
    sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True),
    sa.Column("bytes_copied", sa.BigInteger(), nullable=True, default=0),
    sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
    sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_task_execution", "execution_id", "id"),
    sa.Index("ix_task_lease", "status", "lease_expires"),
)

#: ``registry.meta.db``'s PostgreSQL listing indexes as of 9420392 (name → what it indexes)
POSTGRES_INDEXES = {
    "ix_repository_name_c": 'ON repository (name COLLATE "C")',
    "ix_tag_name_c": 'ON tag (repository_id, name COLLATE "C")',
}


def is_applied(conn: Connection) -> bool:
    """Whether an un-versioned database holds all of this revision's schema."""
    if missing(conn, META.sorted_tables):
        return False
    if conn.dialect.name != "postgresql":
        return True
    inspector = sa.inspect(conn)
    present = {i["name"] for t in ("repository", "tag") for i in inspector.get_indexes(t)}
    return set(POSTGRES_INDEXES) <= present


def upgrade() -> None:
    ensure_tables(META.sorted_tables)
    if op.get_bind().dialect.name == "postgresql":
        for name, on in POSTGRES_INDEXES.items():
            op.execute(f"CREATE INDEX IF NOT EXISTS {name} {on}")


def downgrade() -> None:
    refuse_downgrade(revision)
