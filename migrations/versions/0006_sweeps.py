"""sweeps: a sweep's spec and driver; runs.sweep_id, runs.trial and runs.node

A sweep is a set of ordinary runs: every trial is one run per seed, tagged with the sweep's id and
the trial's number, so Compare, replay, export and `show --toml` work on trials as on any run.
`runs.node` names the Ray node a trial ran on (NULL for runs a local worker executed).

Downgrade drops the sweeps and the three columns; the trials' runs stay as plain runs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 20:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sweeps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("spec_toml", sa.Text(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("spec_path", sa.Text(), nullable=True),
        sa.Column("base_toml", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("pruned", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sweep_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("trial", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("node", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            "fk_runs_sweep_id_sweeps", "sweeps", ["sweep_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index("ix_runs_sweep_id_trial", ["sweep_id", "trial"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_sweep_id_trial")
        batch_op.drop_constraint("fk_runs_sweep_id_sweeps", type_="foreignkey")
        batch_op.drop_column("node")
        batch_op.drop_column("trial")
        batch_op.drop_column("sweep_id")
    op.drop_table("sweeps")
