"""Read queries shared by the CLI and the TUI. Reads are short and incremental where they can be."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rltui.recorder import decode_artifact
from rltui.store.models import Artifact, Episode, Metric, Run, Step


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def run_dict(run: Run) -> dict[str, Any]:
    """A run as plain JSON-able data (what `rltui ls --json` and `show --json` print)."""
    duration = None
    if run.started_at:
        end = run.finished_at or datetime.utcnow()
        duration = (end - run.started_at).total_seconds()
    return {
        "id": run.id,
        "name": run.name,
        "env": run.env_id,
        "algo": run.algo_id,
        "status": run.status,
        "seed": run.seed,
        "device": run.device,
        "device_used": run.device_used,
        "progress": run.progress,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "heartbeat_at": _iso(run.heartbeat_at),
        "duration_s": duration,
        "pid": run.pid,
        "host": run.host,
        "summary": run.summary or {},
        "tags": run.tags or [],
        "notes": run.notes or "",
        "parent_id": run.parent_id,
        "versions": run.versions or {},
        "error": run.error,
    }


def list_runs(session: Session, limit: int | None = None) -> list[Run]:
    query = select(Run).order_by(Run.id.desc())
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def latest_artifact(session: Session, run_id: int, name: str) -> Any | None:
    row = session.execute(
        select(Artifact.kind, Artifact.data)
        .where(Artifact.run_id == run_id, Artifact.name == name)
        .order_by(Artifact.id.desc())
        .limit(1)
    ).first()
    return decode_artifact(row.kind, row.data) if row else None


def artifact_series(session: Session, run_id: int, name: str) -> list[tuple[int | None, Any]]:
    rows = session.execute(
        select(Artifact.step, Artifact.kind, Artifact.data)
        .where(Artifact.run_id == run_id, Artifact.name == name)
        .order_by(Artifact.step, Artifact.id)
    )
    return [(r.step, decode_artifact(r.kind, r.data)) for r in rows]


def metric_keys(session: Session, run_id: int) -> list[str]:
    return list(session.scalars(select(Metric.key).where(Metric.run_id == run_id).distinct().order_by(Metric.key)))


def metric_series(
    session: Session, run_id: int, key: str, since_step: int | None = None
) -> list[tuple[int, float, float]]:
    """(step, value, wall_time) rows of one metric, optionally only those after `since_step`."""
    query = select(Metric.step, Metric.value, Metric.wall_time).where(
        Metric.run_id == run_id, Metric.key == key
    )
    if since_step is not None:
        query = query.where(Metric.step > since_step)
    return [tuple(r) for r in session.execute(query.order_by(Metric.step, Metric.id))]


def episodes(session: Session, run_id: int, phase: str | None = None) -> list[Episode]:
    query = select(Episode).where(Episode.run_id == run_id)
    if phase:
        query = query.where(Episode.phase == phase)
    return list(session.scalars(query.order_by(Episode.phase, Episode.index)))


def trajectory(session: Session, episode_id: int) -> list[Step]:
    return list(session.scalars(select(Step).where(Step.episode_id == episode_id).order_by(Step.t)))


def step_dict(step: Step) -> dict[str, Any]:
    return {
        "t": step.t,
        "state": step.state,
        "action": step.action,
        "reward": step.reward,
        "done": step.done,
        "extras": step.extras or {},
    }


def count_runs(session: Session) -> int:
    return session.scalar(select(func.count(Run.id))) or 0
