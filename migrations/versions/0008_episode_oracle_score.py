"""episodes.oracle_score: the gold score beside a learned reward model's proxy

An LM episode's `return` is the reward model's score of the response (the proxy). The scripted
oracle's score (the gold) is kept beside it, so the lab can rank the responses that fool the reward
model (return − oracle_score) and replay them token by token. Null for every other env.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 20:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("oracle_score", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.drop_column("oracle_score")
