"""Read queries shared by the CLI and the TUI. Reads are short and incremental where they can be."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from rltui.store.models import Artifact, Episode, Metric, Run, Step
from rltui.store import runs_table
from rltui.store.runs_table import DETAIL_KEYS, RUN_ROW_KEYS, run_json
from rltui.store.runs_table import run_returns, run_rows, run_status_note, runs_fingerprint  # noqa: F401 (re-exported)


def decode_artifact(kind: str, data: bytes) -> Any:
    # The recorder (and numpy with it) loads only when an artifact is read: the lab's runs screen
    # imports these queries on its start-up path and reads no artifact.
    from rltui.recorder import decode_artifact as decode

    return decode(kind, data)


def run_dict(run: Run) -> dict[str, Any]:
    """A run as plain JSON-able data (what `rltui ls --json` and `show --json` print; runs_table.run_json)."""
    names = {"env": "env_id", "algo": "algo_id"}
    return run_json({key: getattr(run, names.get(key, key)) for key in RUN_ROW_KEYS + DETAIL_KEYS})


def list_runs(session: Session, limit: int | None = None) -> list[Run]:
    query = select(Run).order_by(Run.id.desc())
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def latest_artifact(session: Session, run_id: int, name: str) -> Any | None:
    from rltui.store.sql import AlchemyTx

    return runs_table.latest_artifact(AlchemyTx(session.connection()), run_id, name)


def artifact_series(session: Session, run_id: int, name: str) -> list[tuple[int | None, Any]]:
    rows = session.execute(
        select(Artifact.step, Artifact.kind, Artifact.data)
        .where(Artifact.run_id == run_id, Artifact.name == name)
        .order_by(Artifact.step, Artifact.id)
    )
    return [(r.step, decode_artifact(r.kind, r.data)) for r in rows]


# A skip scan of the (run, key, step) index: one seek per key, where DISTINCT walks every row of the run
# (0.17 s for 3 million points on an idle core; the run screen polls it, holding a WAL snapshot).
_METRIC_KEYS = text(
    "WITH RECURSIVE k(key) AS ("
    " SELECT min(key) FROM metrics WHERE run_id = :run"
    " UNION ALL SELECT (SELECT min(key) FROM metrics WHERE run_id = :run AND key > k.key) FROM k WHERE k.key IS NOT NULL"
    ") SELECT key FROM k WHERE key IS NOT NULL"
)


def metric_keys(session: Session, run_id: int) -> list[str]:
    """The run's metric names, sorted."""
    return list(session.scalars(_METRIC_KEYS, {"run": run_id}))


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


# --- the TUI's reads: incremental and downsampled ------------------------------------------------
# Everything below returns plain tuples/dicts (no ORM objects escape the short read transaction), so
# the TUI can run these in worker threads and hand the results to widgets.

def metric_count(session: Session, run_id: int, key: str) -> int:
    return session.scalar(
        select(func.count()).select_from(Metric).where(Metric.run_id == run_id, Metric.key == key)
    ) or 0


def metric_last_step(session: Session, run_id: int, key: str) -> int | None:
    return session.scalar(select(func.max(Metric.step)).where(Metric.run_id == run_id, Metric.key == key))


class MetricPoint(NamedTuple):
    """One drawn point of a metric: a bucket's last x, the mean of its values, their min and max, and
    how many of them were NaN. A raw point is a bucket of one (low == high == value)."""

    x: float
    value: float | None  # None: every value in the bucket was NaN
    low: float | None
    high: float | None
    nans: int = 0


def _raw_point(x: Any, value: Any) -> MetricPoint:
    v = None if value is None or math.isnan(value) else float(value)
    return MetricPoint(float(x), v, v, v, 0 if v is not None else 1)


def metric_downsampled(
    session: Session, run_id: int, key: str, max_points: int, x: str = "step"
) -> list[MetricPoint]:
    """At most `max_points` points of one metric, the last point always included.

    Small series come back whole. Longer ones are cut into even step buckets, each keeping the mean,
    min and max of its values and how many were NaN: a loss spike or a best return survives the
    downsampling, a NaN is reported. A thinned row (store/thinning.py) counts for the points it
    stands for. The inside of each bucket is read from the stored rollups (store/rollups.py), the raw
    rows only at its edges and where a block is not rolled up yet: two statements of a few thousand
    rows at any length. `x` is "step" or "wall" (wall time in seconds since the run started).
    """
    from rltui.store.rollups import bucket_aggregates
    from rltui.store.sql import AlchemyTx

    max_points = max(2, int(max_points))
    where = (Metric.run_id == run_id, Metric.key == key)
    xcol = Metric.step if x == "step" else Metric.wall_time
    # Each read below walks the (run_id, key, step) index for a few rows only. (A single
    # `SELECT min(step), max(step)` would scan the whole range: SQLite's min/max shortcut needs one
    # aggregate per query.)
    last = session.execute(
        select(xcol, Metric.value, Metric.step).where(*where).order_by(Metric.step.desc()).limit(1)
    ).first()
    if last is None:
        return []
    probe = session.execute(
        select(xcol, Metric.value, Metric.step).where(*where).order_by(Metric.step).limit(max_points + 1)
    ).all()
    if len(probe) <= max_points:  # a short series comes back whole
        return [_raw_point(a, b) for a, b, _ in probe]
    edges = bucket_edges(int(probe[0][2]), int(last[2]), max_points)
    points = [
        MetricPoint(float(b.last_step if x == "step" else b.last_wall), b.mean, b.low, b.high, b.nans)
        for b in bucket_aggregates(AlchemyTx(session), run_id, key, edges)
        if b is not None  # an empty bucket (a gap in the steps) has no x
    ]
    points.append(_raw_point(last[0], last[1]))  # the last step comes back as itself
    return points


def bucket_edges(lo: int, hi: int, max_points: int) -> list[int]:
    """Even step buckets [e[i], e[i+1]) over [lo, hi), the last step `hi` left for itself."""
    return sorted({lo + (hi - lo) * i // (max_points - 1) for i in range(max_points - 1)} | {hi})


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def episode_returns(
    session: Session, run_id: int, after_id: int = 0, phase: str = "train"
) -> list[tuple[int, int, int | None, float, float, int]]:
    """(id, index, step, wall_time, return, length) of episodes with id > after_id, in id order.

    A return stored as NULL (it was NaN or ±inf) comes back as NaN, a number the plots can skip."""
    rows = session.execute(
        select(Episode.id, Episode.index, Episode.step, Episode.wall_time, Episode.return_, Episode.length)
        .where(Episode.run_id == run_id, Episode.phase == phase, Episode.id > after_id)
        .order_by(Episode.id)
    )
    nan = float("nan")
    return [(i, index, step, wall, nan if ret is None else ret, length) for i, index, step, wall, ret, length in rows]


def episode_rows(
    session: Session, run_id: int, after_id: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """Episodes for the run screen's list (every phase), oldest first, only those after `after_id`."""
    query = (
        select(Episode.id, Episode.index, Episode.phase, Episode.return_, Episode.length, Episode.step,
               Episode.wall_time, Episode.has_trajectory, Episode.oracle_score)
        .where(Episode.run_id == run_id, Episode.id > after_id)
        .order_by(Episode.id)
    )
    if limit:
        query = query.limit(limit)
    return [
        {"id": r.id, "index": r.index, "phase": r.phase, "return": r.return_, "length": r.length,
         "step": r.step, "wall_time": r.wall_time, "has_trajectory": r.has_trajectory,
         "oracle_score": r.oracle_score}
        for r in session.execute(query)
    ]


def proxy_gold_gap(episode: dict[str, Any]) -> float | None:
    """How far the reward model overrates a response: its proxy score (the return) minus the gold
    (oracle) score. None where no gold is stored (every non-LM episode)."""
    gold = episode.get("oracle_score")
    return None if gold is None else episode["return"] - gold


def by_proxy_gold_gap(episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The episodes that fool the reward model first (largest proxy − gold); those without gold last."""
    return sorted(episodes, key=lambda e: (proxy_gold_gap(e) is None, -(proxy_gold_gap(e) or 0.0)))


def trajectory_dicts(session: Session, episode_id: int) -> list[dict[str, Any]]:
    return [step_dict(s) for s in trajectory(session, episode_id)]


def artifact_names(session: Session, run_id: int) -> dict[str, int]:
    """Artifact name -> how many versions the run stored (e.g. one "V" per sweep)."""
    rows = session.execute(
        select(Artifact.name, func.count(Artifact.id)).where(Artifact.run_id == run_id).group_by(Artifact.name)
    )
    return {name: n for name, n in rows}


def artifact_at(session: Session, run_id: int, name: str, index: int) -> tuple[int | None, Any] | None:
    """The `index`-th version (0-based, in step order) of an artifact: one V sweep at a time."""
    row = session.execute(
        select(Artifact.step, Artifact.kind, Artifact.data)
        .where(Artifact.run_id == run_id, Artifact.name == name)
        .order_by(Artifact.step, Artifact.id)
        .offset(max(0, index))
        .limit(1)
    ).first()
    return (row.step, decode_artifact(row.kind, row.data)) if row else None
