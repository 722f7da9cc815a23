"""episodes.return and steps.reward nullable: NULL stands for NaN and ±inf

NaN and ±inf are stored as null on every backend (SQLite turns a NaN REAL into NULL on its own;
PostgreSQL would keep NaN in a float column and refuse it inside JSON). With NOT NULL columns one
diverged episode made the recorder's whole batch fail, losing its metrics, episodes and steps.

Downgrade deletes the rows older rltui versions cannot hold (as 0003 does for metrics).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 20:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.alter_column("return", existing_type=sa.Float(), nullable=True)
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.alter_column("reward", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    # Steps first: foreign keys are off while migrations run on SQLite, so nothing cascades.
    op.execute('DELETE FROM steps WHERE reward IS NULL OR episode_id IN (SELECT id FROM episodes WHERE "return" IS NULL)')
    op.execute('DELETE FROM episodes WHERE "return" IS NULL')
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.alter_column("reward", existing_type=sa.Float(), nullable=False)
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.alter_column("return", existing_type=sa.Float(), nullable=False)
