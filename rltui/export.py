"""`rltui export`: a run's data out of the store, as one JSON document or one CSV file per table.

JSON (to stdout, or to a file with -o):

    {"format": "rltui-export", "version": 1,
     "run": {...},                      # what `rltui show ID --json` prints, plus config_toml
     "config": {...}, "summary": {...},
     "metrics": {"loss": [[step, value], ...], ...},
     "episodes": [{"index", "phase", "return", "length", "step", "wall_time", "has_trajectory"}],
     "trajectories": [{"index", "phase", "return", "length", "step",
                       "steps": [{"t", "state", "action", "reward", "done", "extras"}]}],
     "artifacts": [{"name", "step", "kind", "bytes"}]}   # what is stored; data via `rltui show`

A NaN or infinite metric value is written as null (JSON has no NaN).

CSV (into a directory, default ./run-ID-csv): runs.csv, metrics.csv, episodes.csv, steps.csv.
JSON-valued cells (config, summary, state, action, extras) hold compact JSON text.
"""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

from sqlalchemy import Text, func, select, type_coerce
from sqlalchemy.orm import Session

from rltui.store.engine import Store
from rltui.store.models import Artifact, Episode, Metric, Run, Step
from rltui.store.queries import run_dict

FORMAT_VERSION = 1


class ExportError(Exception):
    """The export cannot be made as asked (an unknown run id)."""


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _run(session: Session, store: Store, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        where = store.path or store.engine.url.render_as_string()
        raise ExportError(f"no run with id {run_id} in {where} (`rltui ls` lists the runs)")
    return run


def _run_record(run: Run) -> dict[str, Any]:
    data = run_dict(run)
    data["config"] = run.config
    data["config_toml"] = run.config_toml
    data["config_path"] = run.config_path
    data["traceback"] = run.traceback
    return data


def _metric_rows(session: Session, run_id: int) -> Iterator[Any]:
    # Ordered along ix_metrics_run_key_step: one index scan, no sort.
    return session.execute(
        select(Metric.key, Metric.step, Metric.value, Metric.wall_time)
        .where(Metric.run_id == run_id)
        .order_by(Metric.key, Metric.step, Metric.id)
    )


def _episode_rows(session: Session, run_id: int) -> list[Any]:
    return list(
        session.execute(
            select(
                Episode.id, Episode.index, Episode.phase, Episode.return_, Episode.length,
                Episode.step, Episode.wall_time, Episode.has_trajectory,
            )
            .where(Episode.run_id == run_id)
            .order_by(Episode.phase, Episode.index)
        )
    )


def _step_rows(session: Session, run_id: int) -> Iterator[Any]:
    """Every recorded step of the run, JSON columns as their stored text (decoded by the caller)."""
    return session.execute(
        select(
            Step.episode_id, Step.t,
            type_coerce(Step.state, Text).label("state"),
            type_coerce(Step.action, Text).label("action"),
            Step.reward, Step.done,
            type_coerce(Step.extras, Text).label("extras"),
        )
        .join(Episode, Episode.id == Step.episode_id)
        .where(Episode.run_id == run_id)
        .order_by(Step.episode_id, Step.t)
    )


def _loads(text: Any) -> Any:
    # SQLite hands back the stored text; a driver such as psycopg hands back decoded JSON.
    return json.loads(text) if isinstance(text, (str, bytes)) else text


def _json_cell(text: Any) -> str:
    if text is None or text == "null":
        return ""
    return text if isinstance(text, str) else json.dumps(text, separators=(",", ":"))


def run_export(store: Store, run_id: int) -> dict[str, Any]:
    """The whole run as one JSON-able dict (see the module docstring)."""
    with store.read() as session:
        run = _run(session, store, run_id)
        record = _run_record(run)
        metrics: dict[str, list[list[Any]]] = {}
        for key, step, value, _wall in _metric_rows(session, run_id):
            metrics.setdefault(key, []).append([step, _finite(value)])
        episodes, trajectories, by_id = [], [], {}
        for e in _episode_rows(session, run_id):
            item = {
                "index": e.index, "phase": e.phase, "return": _finite(e.return_), "length": e.length,
                "step": e.step, "wall_time": e.wall_time, "has_trajectory": bool(e.has_trajectory),
            }
            episodes.append(item)
            if e.has_trajectory:
                by_id[e.id] = {**{k: item[k] for k in ("index", "phase", "return", "length", "step")}, "steps": []}
                trajectories.append(by_id[e.id])
        # Rows unpacked by position: a Row's `.t` is its tuple view, not the column.
        for episode_id, t, state, action, reward, done, extras in _step_rows(session, run_id):
            traj = by_id.get(episode_id)
            if traj is None:
                continue
            traj["steps"].append(
                {
                    "t": t, "state": _loads(state), "action": _loads(action),
                    "reward": reward, "done": bool(done), "extras": _loads(extras) or {},
                }
            )
        artifacts = [
            {"name": a.name, "step": a.step, "kind": a.kind, "bytes": a.size}
            for a in session.execute(
                select(Artifact.name, Artifact.step, Artifact.kind, func.length(Artifact.data).label("size"))
                .where(Artifact.run_id == run_id)
                .order_by(Artifact.name, Artifact.step, Artifact.id)
            )
        ]
    return {
        "format": "rltui-export",
        "version": FORMAT_VERSION,
        "run": record,
        "config": record["config"],
        "summary": record["summary"],
        "metrics": metrics,
        "episodes": episodes,
        "trajectories": trajectories,
        "artifacts": artifacts,
    }


def export_json(store: Store, run_id: int, out: IO[str]) -> None:
    json.dump(run_export(store, run_id), out, default=str)
    out.write("\n")


@contextmanager
def _atomic(path: Path) -> Iterator[IO[str]]:
    """Write beside `path` in a temp file, renamed over it only when the whole export is written:
    a failed export (an unknown run, a full disk) leaves the target as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            yield fh
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)  # keep the target's permissions
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def export_json_file(store: Store, run_id: int, path: str | Path) -> Path:
    """The JSON export into `path`, all or nothing (the run is read before the file is touched)."""
    target = Path(path)
    data = run_export(store, run_id)
    with _atomic(target) as fh:
        json.dump(data, fh, default=str)
        fh.write("\n")
    return target


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), default=str)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return "" if value is None else value


RUN_COLUMNS = [
    "id", "name", "env", "algo", "status", "seed", "device", "device_used", "progress",
    "created_at", "started_at", "finished_at", "duration_s", "pid", "host", "parent_id",
    "tags", "notes", "summary", "config", "config_toml", "config_path", "versions", "error", "traceback",
]


def export_csv(store: Store, run_id: int, directory: str | Path) -> list[Path]:
    """One CSV file per table in `directory` (created if needed); returns the files written."""
    out = Path(directory)
    with store.read() as session:
        record = _run_record(_run(session, store, run_id))  # an unknown run: nothing is created
        paths = [out / name for name in ("runs.csv", "metrics.csv", "episodes.csv", "steps.csv")]
        with _atomic(paths[0]) as fh:
            w = csv.writer(fh)
            w.writerow(RUN_COLUMNS)
            w.writerow([_cell(record.get(c)) for c in RUN_COLUMNS])
        with _atomic(paths[1]) as fh:
            w = csv.writer(fh)
            w.writerow(["run_id", "key", "step", "value", "wall_time"])
            w.writerows(
                (run_id, key, step, _cell(float("nan") if value is None else value), wall)
                for key, step, value, wall in _metric_rows(session, run_id)
            )
        episodes = _episode_rows(session, run_id)
        with _atomic(paths[2]) as fh:
            w = csv.writer(fh)
            w.writerow(["run_id", "phase", "index", "return", "length", "step", "wall_time", "has_trajectory"])
            w.writerows(
                (run_id, e.phase, e.index, _cell(e.return_), e.length, _cell(e.step), e.wall_time,
                 int(bool(e.has_trajectory)))
                for e in episodes
            )
        which = {e.id: (e.phase, e.index) for e in episodes}
        with _atomic(paths[3]) as fh:
            w = csv.writer(fh)
            w.writerow(["run_id", "phase", "episode", "t", "state", "action", "reward", "done", "extras"])
            for episode_id, t, state, action, reward, done, extras in _step_rows(session, run_id):
                phase, index = which[episode_id]
                w.writerow(
                    (run_id, phase, index, t, _json_cell(state), _json_cell(action),
                     _cell(reward), int(bool(done)), _json_cell(extras))
                )
    return paths
