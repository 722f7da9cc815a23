"""The experiment store's tables, as SQLAlchemy 2.x typed declarative models.

The schema itself is owned by Alembic (migrations/); tests/test_migrations.py proves that these
models and the migrations agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
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
    log_path: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)

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
