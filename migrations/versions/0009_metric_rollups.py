"""metric_rollups: pre-aggregated blocks of each metric, so a plot of any length stays fast

One row per aligned block of a metric's steps [start, start + width), width a power of four: how
many finite and NaN points it holds, their sum, min and max, its last step and wall time. The plot
query reads these for the inside of each bucket and raw rows only at the bucket's edges; a missing
block is read raw, so every row is optional (rltui/store/rollups.py says who keeps them).

Upgrade backfills the runs already stored, one index-ordered pass per series. Downgrade drops the
table; nothing else refers to it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 23:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metric_rollups",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("nans", sa.Integer(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=True),
        sa.Column("high", sa.Float(), nullable=True),
        sa.Column("last_step", sa.Integer(), nullable=False),
        sa.Column("last_wall", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "key", "width", "start"),
    )
    # The same summing-up the recorder does as it flushes (one code path, tested with it).
    from rltui.store.rollups import backfill
    from rltui.store.sql import AlchemyTx

    backfill(AlchemyTx(op.get_bind()))


def downgrade() -> None:
    op.drop_table("metric_rollups")
