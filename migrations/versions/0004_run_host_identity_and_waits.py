"""runs: the worker's host identity and process start time, and the runs a run waits for

- host_id: the machine id and boot id of the host that claimed the run ("MACHINE:BOOT"). Two
  machines with one hostname (cloud images) no longer share slots or judge each other's pids, and a
  run claimed before a reboot is known dead at once.
- pid_start: the worker's process start time (/proc/PID/stat field 22, clock ticks since boot), so a
  reused pid is never taken for the worker.
- waits_for: the runs named by the config (init_run, reward_run), as ids, or "latest:ALGO" while no
  such run exists yet. A queued run starts only once they have all completed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 20:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("host_id", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("pid_start", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("waits_for", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("waits_for")
        batch_op.drop_column("pid_start")
        batch_op.drop_column("host_id")
