"""indexes for active runs and event digests

Revision ID: 0006
Revises: 0005

The claim, the merge of events into a queued run and the scope check read only the active runs
of a policy; without ``ix_execution_status`` each one read every run ever kept (measured: event
latency at 25 pushes/s grew over a minute as finished runs piled up). ``ix_event_digest`` serves
the push -> replicated histogram's lookup of a run's own digests.
"""

from __future__ import annotations

from alembic import op

from seawall.migrations.errors import refuse_downgrade

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_execution_status", "execution", ["status", "policy_id", "id"])
    op.create_index("ix_event_digest", "event", ["digest"])


def downgrade() -> None:
    refuse_downgrade(revision)
