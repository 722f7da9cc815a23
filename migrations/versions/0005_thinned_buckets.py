"""bucket columns: thinned metric points and episode rows keep min, max, mean and count

Past `[record]`'s bounds (max_metric_points, max_episodes) a run's older rows are merged into
buckets (rltui/store/thinning.py). A bucket is its last row, which keeps its value, and gains how
many raw rows it stands for and their min, max and mean, so a plot can still draw the true envelope.
NULL in all of them: a raw row. Every column is nullable, so older rows need no rewrite.

Downgrade drops the columns: buckets become plain rows holding their last value.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 20:45:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

METRIC_COLUMNS = ("value_min", "value_max", "value_mean")
EPISODE_COLUMNS = ("return_min", "return_max", "return_mean", "length_mean")


def upgrade() -> None:
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bucket_size", sa.Integer(), nullable=True))
        for name in METRIC_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("bucket_size", sa.Integer(), nullable=True))
        for name in EPISODE_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("episodes", schema=None) as batch_op:
        for name in reversed(EPISODE_COLUMNS):
            batch_op.drop_column(name)
        batch_op.drop_column("bucket_size")
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        for name in reversed(METRIC_COLUMNS):
            batch_op.drop_column(name)
        batch_op.drop_column("bucket_size")
