"""metrics.value nullable: NULL stands for NaN

SQLite stores a NaN REAL as NULL, so with a NOT NULL value column one diverging `loss=nan` made the
recorder's whole batch fail. A NaN is worth keeping (it says when training blew up), so the column
accepts NULL and readers turn it back into NaN.

Downgrade deletes the NaN points first: older rltui versions cannot hold them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.alter_column("value", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM metrics WHERE value IS NULL")
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.alter_column("value", existing_type=sa.Float(), nullable=False)
