"""A sweep's trials, read back from the store: what the driver resumes from and what `sweep show` and
the lab's Sweeps screen display. Plain SQL on `store.sql` (both backends), no Optuna, no SQLAlchemy.

A trial is the runs sharing (sweep_id, trial), one per seed. Its parameters are read from the runs'
configs at the swept keys; its value is the mean over seeds of each seed's objective:

    value = (1/|seeds|) Σ_seed  agg(metric series of that seed's run)
    agg = last value | best value (max or min by mode) | mean of the last k values
"""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from rltui.store.engine import Store
from rltui.store.sql import Json, as_datetime, as_json, in_list
from rltui.store.status import CANCELLED, COMPLETED, CRASHED, FAILED, QUEUED, RUNNING

# A sweep's own statuses (a trial's are its runs' joined up, plus "pruned").
SWEEP_RUNNING, SWEEP_COMPLETED, SWEEP_CANCELLED, SWEEP_CRASHED, SWEEP_FAILED = (
    "running", "completed", "cancelled", "crashed", "failed")
SWEEP_FINAL = (SWEEP_COMPLETED, SWEEP_CANCELLED, SWEEP_FAILED)
PRUNED = "pruned"
SWEEP_HEARTBEAT_TIMEOUT = 30.0  # s without a driver heartbeat (on another host) before it counts as dead


@dataclass
class Trial:
    trial: int
    run_ids: list[int]
    seeds: list[int]
    statuses: list[str]
    params: dict[str, Any]
    config: dict[str, Any]  # the first seed's stored config
    series: list[list[tuple[int, float]]] = field(default_factory=list)  # per run: (step, value)
    pruned: bool = False
    value: float | None = None
    status: str = QUEUED
    nodes: list[str | None] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"trial": self.trial, "run_ids": self.run_ids, "params": self.params, "value": self.value,
                "status": self.status}


@dataclass
class SweepRow:
    id: int
    name: str
    status: str
    spec: dict[str, Any]
    spec_toml: str
    base_toml: str
    spec_path: str | None
    created_at: datetime | None
    finished_at: datetime | None
    pid: int | None
    host: str | None
    log_path: str | None
    cancel_requested: bool
    pruned: list[int]
    error: str | None


_SWEEP_COLUMNS = ("id, name, status, spec, spec_toml, base_toml, spec_path, created_at, finished_at, pid, host,"
                  " log_path, cancel_requested, pruned, error")


def _sweep_row(row: tuple) -> SweepRow:
    (id_, name, status, spec, spec_toml, base_toml, spec_path, created, finished, pid, host, log_path, cancel,
     pruned, error) = row
    return SweepRow(id_, name, status, as_json(spec), spec_toml, base_toml, spec_path, as_datetime(created),
                    as_datetime(finished), pid, host, log_path, bool(cancel), list(as_json(pruned) or []), error)


def get_sweep(store: Store, sweep_id: int) -> SweepRow | None:
    with store.sql.read() as tx:
        row = tx.first(f"SELECT {_SWEEP_COLUMNS} FROM sweeps WHERE id = :id", id=sweep_id)
    return _sweep_row(row) if row else None


def list_sweeps(store: Store) -> list[SweepRow]:
    with store.sql.read() as tx:
        return [_sweep_row(r) for r in tx.all(f"SELECT {_SWEEP_COLUMNS} FROM sweeps ORDER BY id DESC")]


def create_sweep(store: Store, spec: Any, status: str = SWEEP_RUNNING) -> int:  # spec: SweepSpec
    from rltui.recorder import utcnow

    row = {"name": spec.name, "spec_toml": spec.source_text, "spec": Json(spec.to_dict()),
           "spec_path": spec.source_path, "base_toml": spec.base_toml, "status": status, "created_at": utcnow(),
           "heartbeat_at": utcnow(), "cancel_requested": False, "pruned": Json([])}
    with store.sql.write() as tx:
        return tx.scalar(
            f"INSERT INTO sweeps ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)}) RETURNING id", **row)


def update_sweep(store: Store, sweep_id: int, **values: Any) -> None:
    values = {k: Json(v) if k == "pruned" else v for k, v in values.items()}
    with store.sql.write() as tx:
        tx.run(f"UPDATE sweeps SET {', '.join(f'{k} = :{k}' for k in values)} WHERE id = :id", id=sweep_id, **values)


def driver_alive(row: SweepRow, heartbeat_at: datetime | None = None) -> bool:
    """Whether a running sweep's driver still lives: its pid on this host, else a fresh heartbeat."""
    from rltui.runner.lifecycle import pid_alive

    if row.pid is None:
        return False
    if row.host == socket.gethostname():
        return pid_alive(row.pid)
    from rltui.recorder import utcnow

    return heartbeat_at is not None and (utcnow() - heartbeat_at).total_seconds() < SWEEP_HEARTBEAT_TIMEOUT


def refresh_sweeps(store: Store) -> list[int]:
    """Mark running sweeps whose driver is gone as crashed (resumable); returns their ids."""
    with store.sql.read() as tx:
        rows = tx.all(f"SELECT {_SWEEP_COLUMNS}, heartbeat_at FROM sweeps WHERE status = :s", s=SWEEP_RUNNING)
    crashed = []
    for row in rows:
        sweep = _sweep_row(row[:-1])
        if sweep.pid is not None and not driver_alive(sweep, as_datetime(row[-1])):
            with store.sql.write() as tx:
                if tx.run("UPDATE sweeps SET status = :crashed, error = :error WHERE id = :id AND status = :running"
                          " AND pid = :pid", crashed=SWEEP_CRASHED, running=SWEEP_RUNNING, id=sweep.id, pid=sweep.pid,
                          error=f"the sweep's driver (pid {sweep.pid} on {sweep.host}) is gone"):
                    crashed.append(sweep.id)
    return crashed


# An objective metric no run logs as a metric is read from the runs' episodes of this phase.
EPISODE_METRICS = {"eval_return": "eval", "return": "train", "episode_return": "train"}


def _q(name: str) -> str:
    return f'"{name}"'  # `index` and `return` are reserved words on both backends


# --- trials ----------------------------------------------------------------------------------------
def param_value(config: dict[str, Any], key: str) -> Any:
    section, name = key.split(".", 1)
    return (config.get(section) or {}).get(name)


def aggregate(series: list[tuple[int, float]], use: str, mode: str, k: int | None, upto: int | None = None) -> float | None:
    """One seed's objective from its metric series (NaN points are skipped), up to step `upto`."""
    values = [v for s, v in series if (upto is None or s <= upto) and v is not None and math.isfinite(v)]
    if not values:
        return None
    if use == "last":
        return values[-1]
    if use == "best":
        return max(values) if mode == "max" else min(values)
    tail = values[-(k or 1):]
    return sum(tail) / len(tail)


def trial_value(trial: Trial, objective: dict[str, Any], upto: int | None = None) -> float | None:
    """The mean over seeds of each seed's objective; None if some seed has no value (yet)."""
    per_seed = [aggregate(s, objective["use"], objective["mode"], objective.get("k"), upto) for s in trial.series]
    if not per_seed or any(v is None for v in per_seed):
        return None
    return sum(per_seed) / len(per_seed)


def trial_status(statuses: list[str], pruned: bool) -> str:
    if pruned:
        return PRUNED
    for status in (FAILED, CRASHED, CANCELLED, RUNNING, QUEUED):
        if status in statuses:
            return status
    return COMPLETED


def load_trials(store: Store, sweep: SweepRow, with_series: bool = True) -> list[Trial]:
    """Every trial of the sweep, in trial order, with its metric series and value (completed ones)."""
    keys = [p["key"] for p in sweep.spec["parameters"]]
    objective = sweep.spec["objective"]
    with store.sql.read() as tx:
        rows = tx.all("SELECT id, trial, seed, status, config, node FROM runs WHERE sweep_id = :sid"
                      " ORDER BY trial, seed, id", sid=sweep.id)
        series: dict[int, list[tuple[int, float]]] = {}
        if with_series and rows:
            marks, params = in_list("r", [r[0] for r in rows])
            for run_id, step, value in tx.all(
                f"SELECT run_id, step, value FROM metrics WHERE key = :key AND run_id IN ({marks})"
                " ORDER BY run_id, step, id", key=objective["metric"], **params):
                series.setdefault(run_id, []).append((step, value))
            phase = EPISODE_METRICS.get(objective["metric"])
            missing = [r[0] for r in rows if r[0] not in series]
            if phase and missing:
                # Tabular algorithms record their returns as episodes, not as a metric.
                marks, params = in_list("r", missing)
                for run_id, step, index, value in tx.all(
                    f"SELECT run_id, step, {_q('index')}, {_q('return')} FROM episodes WHERE phase = :phase"
                    f" AND run_id IN ({marks}) ORDER BY run_id, {_q('index')}", phase=phase, **params):
                    series.setdefault(run_id, []).append((step if step is not None else index, value))
    trials: dict[int, Trial] = {}
    pruned = set(sweep.pruned)
    for run_id, number, seed, status, config, node in rows:
        config = as_json(config)
        t = trials.get(number)
        if t is None:
            t = trials[number] = Trial(number, [], [], [], {k: param_value(config, k) for k in keys}, config,
                                       pruned=number in pruned)
        t.run_ids.append(run_id)
        t.seeds.append(seed)
        t.statuses.append(status)
        t.nodes.append(node)
        t.series.append(series.get(run_id, []))
    for t in trials.values():
        t.status = trial_status(t.statuses, t.pruned)
        if t.status in (COMPLETED, PRUNED, RUNNING):
            t.value = trial_value(t, objective)
        if t.status == COMPLETED and t.value is None:
            t.status = FAILED  # every run ended well, yet the objective's metric was never logged
    return [trials[n] for n in sorted(trials)]


def ranked(trials: list[Trial], mode: str) -> list[Trial]:
    """Trials with a value, best first (completed before pruned and running), then the others."""
    order = {COMPLETED: 0, RUNNING: 1, PRUNED: 2}
    valued = [t for t in trials if t.value is not None and t.status in order]
    sign = -1.0 if mode == "max" else 1.0
    valued.sort(key=lambda t: (order[t.status], sign * t.value, t.trial))
    rest = [t for t in trials if t not in valued]
    return valued + rest


def best_trial(trials: list[Trial], mode: str) -> Trial | None:
    done = [t for t in trials if t.status == COMPLETED and t.value is not None]
    if not done:
        return None
    return ranked(done, mode)[0]


def best_config_toml(sweep: SweepRow, best: Trial) -> str:
    """A run config that reproduces the best trial (its first seed)."""
    from rltui.config import dump_toml

    config = dict(best.config)
    config["name"] = f"{sweep.name} best (trial {best.trial})"
    return dump_toml(config)


def should_prune(trial: Trial, completed: list[Trial], objective: dict[str, Any], startup: int = 3) -> bool:
    """The median rule: stop a running trial whose value at its latest step s (every seed has reached s)
    is worse than the median of the completed trials' values at the same step s."""
    if len(completed) < startup or not trial.series or any(not s for s in trial.series):
        return False
    step = min(s[-1][0] for s in trial.series)
    mine = trial_value(trial, objective, upto=step)
    if mine is None:
        return False
    peers = [v for v in (trial_value(c, objective, upto=step) for c in completed) if v is not None]
    if len(peers) < startup:
        return False
    mid = median(peers)
    return mine < mid if objective["mode"] == "max" else mine > mid


def sweep_json(store: Store, sweep: SweepRow) -> dict[str, Any]:
    trials = load_trials(store, sweep)
    best = best_trial(trials, sweep.spec["objective"]["mode"])
    return {
        "id": sweep.id, "name": sweep.name, "status": sweep.status, "objective": sweep.spec["objective"],
        "method": sweep.spec["method"], "engine": sweep.spec["engine"], "seeds": sweep.spec["seeds"],
        "budget": sweep.spec["trials"], "error": sweep.error, "log_path": sweep.log_path,
        "trials": [t.to_json() for t in trials],
        "best": None if best is None else {"trial": best.trial, "params": best.params, "value": best.value,
                                           "run_ids": best.run_ids, "config_toml": best_config_toml(sweep, best)},
    }


def sweep_log_path(store: Store, sweep_id: int) -> str:
    from rltui.runner.launch import log_dir

    return str(log_dir(store) / f"sweep-{sweep_id}.log")


def this_host() -> tuple[int, str]:
    return os.getpid(), socket.gethostname()
