"""Regions and their latest failover checks (``engine.regions.models``): ``region`` (a
registry endpoint declared a replica of this logical registry; one per endpoint) and
``region_check`` (the latest check of each region, this Seawall's own included, and which
alerts are out).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

from seawall.migrations.errors import refuse_downgrade

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def is_applied(conn: Connection) -> bool:
    """Whether an un-versioned database holds both tables (made by ``create_all`` before the
    migrations ran on start)."""
    return {"region", "region_check"} <= set(sa.inspect(conn).get_table_names())


def upgrade() -> None:
    op.create_table(
        "region",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("registry_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("repositories_json", sa.Text(), nullable=False),
        sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["registry_id"], ["registry_endpoint.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("registry_id"),
    )
    op.create_table(
        "region_check",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("healthy", sa.Boolean(), nullable=False),
        sa.Column("consistent", sa.Boolean(), nullable=False),
        sa.Column("lag_seconds", sa.Float(), nullable=True),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unhealthy_alerted", sa.Boolean(), nullable=False),
        sa.Column("lag_alerted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    refuse_downgrade(revision)
