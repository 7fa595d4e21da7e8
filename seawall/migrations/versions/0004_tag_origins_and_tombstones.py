"""Tag origins and tombstones (``registry.meta.models``): ``tag.origin_region`` and
``tag.origin_at`` (the region that took the client's push and its time then; NULL for tags
written before), and ``tag_tombstone`` (a deleted tag: its digest and the deletion's origin),
so bidirectional replication settles conflicts and never brings a deleted tag back.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from seawall.migrations.errors import refuse_downgrade

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tag_tombstone",
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(150), nullable=False),
        sa.Column("origin_region", sa.String(63), nullable=False),
        sa.Column("origin_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["repository_id"],
            ["repository.id"],
        ),
        sa.PrimaryKeyConstraint("repository_id", "name"),
    )
    with op.batch_alter_table("tag", schema=None) as batch_op:
        batch_op.add_column(sa.Column("origin_region", sa.String(63), nullable=True))
        batch_op.add_column(sa.Column("origin_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    refuse_downgrade(revision)
