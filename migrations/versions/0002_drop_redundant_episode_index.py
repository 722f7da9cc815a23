"""episodes: drop ix_episodes_run_id, which uq_episodes_run_phase_index already covers

The unique index on (run_id, phase, index) starts with run_id, so it already serves every lookup by
run (the episode list, the foreign-key check when a run is deleted). The separate run_id index was
a third b-tree that every episode insert had to update for nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 16:10:00
"""

from alembic import op


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.drop_index("ix_episodes_run_id")


def downgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.create_index("ix_episodes_run_id", ["run_id"], unique=False)
