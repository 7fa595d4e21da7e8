"""From 9420392 to the schema of the first release with versioned migrations: garbage
collection's fence (``blob_hold``, ``blob_gc``, ``gc_lease``) and its lookup indexes, durable
retries of event runs (``event_retry``), an endpoint's provider settings
(``registry_endpoint.options_json``) and a webhook's sealed ``Authorization`` header
(``notify_webhook.auth_header_encrypted``).

Seawall between 9420392 and this revision made these objects piecemeal (``create_all`` and its
add-columns step), so an un-versioned database may hold some of them: each is made only where
missing (:mod:`seawall.migrations.ensure`), and a database that has them all is stamped here
without running it (:func:`is_applied`). Frozen: never edit to follow the models.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from seawall.migrations.ensure import ensure_columns, ensure_indexes, ensure_tables, missing
from seawall.migrations.errors import refuse_downgrade

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

META = sa.MetaData()

NEW_TABLES = (
    sa.Table(
        "blob_gc",
        META,
        sa.Column("digest", sa.String(150), primary_key=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.String(64), nullable=True),
    ),
    sa.Table(
        "blob_hold",
        META,
        sa.Column("digest", sa.String(150), primary_key=True),
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    ),
    sa.Table(
        "event_retry",
        META,
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("scope_json", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False, default=1),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("execution_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_event_retry_due", "due_at"),
        sa.Index("ix_event_retry_execution", "execution_id"),
        sa.Index("ix_event_retry_policy_id", "policy_id"),
    ),
    sa.Table(
        "gc_lease",
        META,
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
    ),
)

# Existing tables, only with what this revision adds to them.
_ENDPOINT = sa.Table(
    "registry_endpoint",
    META,
    sa.Column("options_json", sa.Text(), nullable=False, default="{}"),
)
_WEBHOOK = sa.Table(
    "notify_webhook",
    META,
    sa.Column("auth_header_encrypted", sa.Text(), nullable=False, default=""),
)
NEW_COLUMNS = (*_ENDPOINT.columns, *_WEBHOOK.columns)

_REPO_BLOB = sa.Table("repo_blob", META, sa.Column("digest", sa.String(150)))
_MANIFEST_REF = sa.Table("manifest_ref", META, sa.Column("ref_digest", sa.String(150)))
_REPO_MANIFEST = sa.Table("repo_manifest", META, sa.Column("digest", sa.String(150)))
NEW_INDEXES = (  # garbage collection's lookups (registry.meta.gc)
    sa.Index("ix_repo_blob_digest", _REPO_BLOB.c.digest),
    sa.Index("ix_manifest_ref_ref", _MANIFEST_REF.c.ref_digest),
    sa.Index("ix_repo_manifest_digest", _REPO_MANIFEST.c.digest),
)


def is_applied(conn: Connection) -> bool:
    """Whether an un-versioned database holds everything this revision adds."""
    return not missing(conn, NEW_TABLES, NEW_COLUMNS, NEW_INDEXES)


def upgrade() -> None:
    ensure_tables(NEW_TABLES)
    ensure_columns(_ENDPOINT.name, _ENDPOINT.columns)
    ensure_columns(_WEBHOOK.name, _WEBHOOK.columns)
    ensure_indexes(NEW_INDEXES)


def downgrade() -> None:
    refuse_downgrade(revision)
