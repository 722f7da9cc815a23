"""The experiment store's tables, as SQLAlchemy 2.x typed declarative models.

The schema itself is owned by Alembic (migrations/); tests/test_migrations.py proves that these
models and the migrations agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from rltui.store.status import (  # noqa: F401 — re-exported for the ORM's users
    ACTIVE_STATUSES,
    CANCELLED,
    COMPLETED,
    CRASHED,
    FAILED,
    FINAL_STATUSES,
    QUEUED,
    RUNNING,
    STATUSES,
)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_sweep_id_trial", "sweep_id", "trial"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    env_id: Mapped[str] = mapped_column(String(100))
    algo_id: Mapped[str] = mapped_column(String(100))
    # The TOML exactly as submitted (after --set overrides were applied), and its validated form.
    config_toml: Mapped[str] = mapped_column(Text)
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_path: Mapped[str | None] = mapped_column(Text, default=None)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    device: Mapped[str] = mapped_column(String(32), default="auto")  # as asked
    device_used: Mapped[str | None] = mapped_column(String(64), default=None)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # python/numpy/torch/cuda

    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    # The claiming host's "MACHINE_ID:BOOT_ID" and the worker's start time (/proc/PID/stat field 22):
    # a pid means this worker only on that host, in that boot, with that start time.
    host_id: Mapped[str | None] = mapped_column(String(100), default=None)
    pid_start: Mapped[int | None] = mapped_column(BigInteger, default=None)
    log_path: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # Runs this one needs completed before it starts (init_run, reward_run): ids, or "latest:ALGO"
    # while no run of ALGO exists on its env yet.
    waits_for: Mapped[list[Any] | None] = mapped_column(JSON, default=None)

    progress: Mapped[float] = mapped_column(Float, default=0.0)  # 0..1
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    traceback: Mapped[str | None] = mapped_column(Text, default=None)

    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    # A resumed run, or a later pipeline stage, names the run it continues from.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("runs.id", ondelete="SET NULL"), default=None
    )

    # A sweep's trial: one run per seed shares (sweep_id, trial). `node`: the Ray node it ran on.
    sweep_id: Mapped[int | None] = mapped_column(
        ForeignKey("sweeps.id", ondelete="SET NULL", name="fk_runs_sweep_id_sweeps"), default=None
    )
    trial: Mapped[int | None] = mapped_column(Integer, default=None)
    node: Mapped[str | None] = mapped_column(String(64), default=None)

    episodes: Mapped[list[Episode]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )
    artifacts: Mapped[list[Artifact]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class Metric(Base):
    """One scalar: `key` at `step` (environment steps, sweeps, episodes — the algorithm's x-axis)."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    step: Mapped[int] = mapped_column(Integer)
    # NULL stands for NaN and ±inf, on every backend (a diverged loss is worth keeping).
    value: Mapped[float | None] = mapped_column(Float, nullable=True)
    wall_time: Mapped[float] = mapped_column(Float)  # seconds since the run started
    # A bucket of thinned points (rltui/store/thinning.py): how many it stands for, their min, max
    # and mean; `value`, `step` and `wall_time` are its last point's. NULL: a raw point.
    bucket_size: Mapped[int | None] = mapped_column(Integer, default=None)
    value_min: Mapped[float | None] = mapped_column(Float, default=None)
    value_max: Mapped[float | None] = mapped_column(Float, default=None)
    value_mean: Mapped[float | None] = mapped_column(Float, default=None)


class MetricRollup(Base):
    """The aggregate of one aligned block of a metric's steps, [start, start + width), for plots that
    read a few thousand rows at any length (rltui/store/rollups.py keeps them; a missing one is read
    from the raw rows)."""

    __tablename__ = "metric_rollups"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    width: Mapped[int] = mapped_column(Integer, primary_key=True)  # a power of four, 16 to 2**30
    start: Mapped[int] = mapped_column(Integer, primary_key=True)
    points: Mapped[int] = mapped_column(Integer)  # finite points (a thinned row counts its bucket_size)
    nans: Mapped[int] = mapped_column(Integer)
    total: Mapped[float] = mapped_column(Float)  # sum of the finite points
    low: Mapped[float | None] = mapped_column(Float, nullable=True)
    high: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_step: Mapped[int] = mapped_column(Integer)
    last_wall: Mapped[float] = mapped_column(Float)


class Episode(Base):
    __tablename__ = "episodes"
    __table_args__ = (
        UniqueConstraint("run_id", "phase", "index", name="uq_episodes_run_phase_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No index of its own: uq_episodes_run_phase_index starts with run_id and serves lookups by run.
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16), default="train")  # train | eval
    # NULL stands for NaN or ±inf, as in metrics.value (a diverged run's returns are worth keeping).
    return_: Mapped[float | None] = mapped_column("return", Float, nullable=True)
    length: Mapped[int] = mapped_column(Integer)
    step: Mapped[int | None] = mapped_column(Integer, default=None)  # global step at its end
    wall_time: Mapped[float] = mapped_column(Float, default=0.0)
    has_trajectory: Mapped[bool] = mapped_column(Boolean, default=False)
    # A bucket of thinned episodes, as for metrics: the last episode's row, standing for
    # `bucket_size` episodes with these return and length figures. NULL: one episode.
    bucket_size: Mapped[int | None] = mapped_column(Integer, default=None)
    return_min: Mapped[float | None] = mapped_column(Float, default=None)
    return_max: Mapped[float | None] = mapped_column(Float, default=None)
    return_mean: Mapped[float | None] = mapped_column(Float, default=None)
    length_mean: Mapped[float | None] = mapped_column(Float, default=None)
    # The gold (oracle) score of an LM response where `return` is a learned reward model's proxy
    # score; null elsewhere. return − oracle_score ranks the responses that fool the reward model.
    oracle_score: Mapped[float | None] = mapped_column(Float, nullable=True, default=None)

    run: Mapped[Run] = relationship(back_populates="episodes")
    steps: Mapped[list[Step]] = relationship(
        back_populates="episode",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Step.t",
    )


class Step(Base):
    """One transition of a recorded trajectory: what the agent saw, did and got.

    `state` and `action` are JSON (a grid cell, an observation vector, a token); `extras` holds what
    the agent computed at that step: {"Q": [...], "pi": [...], "V": v, "td_error": δ, "logprob": ...}.
    """

    __tablename__ = "steps"
    __table_args__ = (Index("ix_steps_episode_t", "episode_id", "t"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    t: Mapped[int] = mapped_column(Integer)
    state: Mapped[Any] = mapped_column(JSON)
    action: Mapped[Any] = mapped_column(JSON)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)  # NULL: NaN or ±inf
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    extras: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    episode: Mapped[Episode] = relationship(back_populates="steps")


class Artifact(Base):
    """A named blob of a run: V after each sweep, the final Q/V/π, model weights.

    `kind` says how `data` is encoded: "json" (UTF-8 JSON), "npy" (numpy .npy bytes),
    "safetensors" (torch weights), "text".
    """

    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_run_name_step", "run_id", "name", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    step: Mapped[int | None] = mapped_column(Integer, default=None)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    run: Mapped[Run] = relationship(back_populates="artifacts")


class Sweep(Base):
    """A hyperparameter sweep: its checked spec, and the driver process that submits its trials.

    The trials themselves are ordinary runs (runs.sweep_id, runs.trial); their parameters are read
    back from the runs' configs, their values from the runs' metrics. `pruned` lists the trial
    numbers the driver stopped early (their runs end `cancelled`).
    """

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    spec_toml: Mapped[str] = mapped_column(Text)  # the sweep file as submitted
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # its checked form
    spec_path: Mapped[str | None] = mapped_column(Text, default=None)
    base_toml: Mapped[str] = mapped_column(Text)  # the base run config, as read
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | completed | cancelled | crashed | failed
    created_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, default=None)
    pid: Mapped[int | None] = mapped_column(Integer, default=None)  # the driver's
    host: Mapped[str | None] = mapped_column(String(255), default=None)
    log_path: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    pruned: Mapped[list[int]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
