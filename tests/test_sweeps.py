"""Sweeps on a real store with real workers: the file checked at the door, trials as ordinary runs,
the objective over seeds, the best trial's config reproducing it, a killed driver resumed from the
store (Optuna's study rebuilt, no tables of its own), cancel, and the median rule."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from rltui.cli import main as cli_main
from rltui.store import open_store
from rltui.sweeps.driver import OptunaSampler, spec_of
from rltui.sweeps.spec import load_sweep_file
from rltui.sweeps.trials import Trial, aggregate, get_sweep, load_trials, should_prune, trial_value
from tests.conftest import REPO, rltui_cli


@pytest.fixture(autouse=True)
def _fast_lifecycle(monkeypatch):
    monkeypatch.setenv("RLTUI_HEARTBEAT_INTERVAL", "0.3")
    monkeypatch.setenv("RLTUI_HEARTBEAT_TIMEOUT", "5")
    monkeypatch.setenv("RLTUI_CANCEL_GRACE", "3")
    monkeypatch.setenv("PYTHONPATH", str(REPO))


MAZE_BASE = """name = "maze q"
seed = 0
[env]
id = "maze"
gamma = 0.9
[algo]
id = "q_learning"
episodes = 40
alpha = 0.5
epsilon = 0.3
max_steps = 100
eval_every = 10
"""

PROBE_BASE = """name = "probe"
seed = 0
[env]
id = "ticker"
episode_length = 5
[algo]
id = "heartbeat_probe"
steps = 10
step_seconds = 0.01
print_every = 0
"""


def write_sweep(tmp_path: Path, body: str, base: str = MAZE_BASE, name: str = "sweep.toml") -> Path:
    (tmp_path / "runs").mkdir(exist_ok=True)
    (tmp_path / "runs" / "base.toml").write_text(base)
    path = tmp_path / name
    path.write_text(body)
    return path


GRID = """name = "maze grid"
base = "runs/base.toml"
method = "grid"
seeds = [0, 1]
objective = { metric = "eval_return", mode = "max", use = "last" }
[parameters]
"algo.alpha" = [0.1, 0.9]
"algo.epsilon" = [0.2]
"""


# --- the file, checked as strictly as a run config -------------------------------------------------
P = '[parameters]\n'
BAD = [  # (top-level keys changed (None: removed), [parameters] block, the key named, what the line says)
    ({"methd": '"grid"'}, None, "methd", "unknown key"),
    ({"method": '"bayes"'}, None, "method", "allowed: grid, random, tpe"),
    ({"trials": None}, None, "trials", "missing"),
    ({"trials": "0"}, None, "trials", "positive integer"),
    ({"seeds": '[0, "1"]'}, None, "seeds", "non-negative integers"),
    ({"objective": '{ metric = "eval_return", use = "mean_last_k" }'}, None, "objective.k", "missing"),
    ({"objective": '{ metric = "eval_return", mode = "up" }'}, None, "objective.mode", "allowed: max, min"),
    ({"engine": '"slurm"'}, None, "engine", "allowed: local, ray"),
    ({"prune": '"hyperband"'}, None, "prune", "allowed: median"),
    ({}, P + '"algo.alhpa" = [0.1]\n', "parameters.algo.alhpa", "Did you mean 'alpha'?"),
    ({}, P + '"algo.alpha" = { log_uniform = [0.5, 0.1] }\n', "parameters.algo.alpha.log_uniform", "low must be below high"),
    ({}, P + '"algo.alpha" = { uniform = [0.1, 2.0] }\n', "parameters.algo.alpha", "2.0 is not allowed"),
    ({}, P + '"algo.alpha" = { normal = [0.1, 2.0] }\n', "parameters.algo.alpha.normal", "unknown range"),
    ({}, P + '"algo.episodes" = { int = [1.5, 10] }\n', "parameters.algo.episodes.int", "integers"),
    ({}, P + '"algo.id" = ["sarsa"]\n', "parameters.algo.id", "cannot be swept"),
    ({}, P + 'x = 1\n', "parameters.x", "SECTION.KEY"),
    ({"method": '"grid"'}, P + '"algo.alpha" = { uniform = [0.1, 0.5] }\n', "parameters.algo.alpha", "a grid needs"),
]


@pytest.mark.parametrize("top_changes,params,key,message", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_a_bad_sweep_file_is_one_line_naming_file_and_key_exit_2_nothing_stored(tmp_path, capsys, top_changes,
                                                                                params, key, message):
    top = {"name": '"s"', "base": '"runs/base.toml"', "method": '"random"', "trials": "2",
           "objective": '{ metric = "eval_return" }', **top_changes}
    body = "".join(f"{k} = {v}\n" for k, v in top.items() if v is not None)
    body += params or P + '"algo.alpha" = [0.1, 0.2]\n'
    path = write_sweep(tmp_path, body)
    db = tmp_path / "store.db"
    assert cli_main(["--db", str(db), "sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"rltui: {path}: {key}: ") and message in err, err
    assert not db.exists()  # nothing stored, not even an empty store


def test_a_bad_base_config_is_named_through_the_sweep_file(tmp_path, capsys):
    path = write_sweep(tmp_path, GRID, base=MAZE_BASE.replace("alpha = 0.5", "alpha = 5.0"))
    assert cli_main(["--db", str(tmp_path / "s.db"), "sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: base: the base config is not valid:" in err and "algo.alpha" in err


def test_the_sample_sweeps_are_valid():
    for path in sorted((REPO / "sample_runs" / "sweeps").glob("*.toml")):
        spec = load_sweep_file(path)
        assert spec.trials >= 1 and spec.parameters


# --- a grid sweep end to end ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_grid_sweep_runs_every_point_on_every_seed_and_its_best_config_reproduces_the_trial(tmp_path):
    db = tmp_path / "s.db"
    path = write_sweep(tmp_path, GRID)
    proc = rltui_cli("sweep", str(path), "--json", db=db, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) >= {"id", "status", "objective", "trials", "best"}
    assert data["status"] == "completed"
    assert [t["trial"] for t in data["trials"]] == [0, 1]
    assert [t["params"] for t in data["trials"]] == [{"algo.alpha": 0.1, "algo.epsilon": 0.2},
                                                    {"algo.alpha": 0.9, "algo.epsilon": 0.2}]
    store = open_store(str(db))
    try:
        sweep = get_sweep(store, data["id"])
        trials = load_trials(store, sweep)
        for t, shown in zip(trials, data["trials"]):
            assert shown["status"] == "completed" and len(shown["run_ids"]) == 2
            assert t.seeds == [0, 1]
            # The objective is the mean over seeds of each seed's last evaluation return.
            lasts = [s[-1][1] for s in t.series]
            assert shown["value"] == pytest.approx(sum(lasts) / 2)
        best = data["best"]
        assert best["value"] == max(t["value"] for t in data["trials"])
        # Every trial is an ordinary run: show --toml, export and the best config all work on it.
        best_runs = best["run_ids"]
        shown = rltui_cli("show", str(best_runs[0]), "--toml", db=db, check=True).stdout
        assert f"alpha = {best['params']['algo.alpha']}" in shown
        export = json.loads(rltui_cli("export", str(best_runs[0]), db=db, check=True).stdout)
        assert export["episodes"]
        (tmp_path / "best.toml").write_text(best["config_toml"])
        again = json.loads(rltui_cli("run", str(tmp_path / "best.toml"), "--json", db=db, check=True).stdout)
        seed0 = [t for t in trials if t.trial == best["trial"]][0].series[0]
        with store.sql.read() as tx:
            evals = [r for (r,) in tx.all('SELECT "return" FROM episodes WHERE run_id = :id AND phase = \'eval\''
                                          ' ORDER BY "index"', id=again["id"])]
        assert evals[-1] == seed0[-1][1]  # same config, same seed, on CPU: the same result
    finally:
        store.dispose()
    ls = rltui_cli("sweep", "ls", db=db, check=True).stdout
    assert "maze grid" in ls and "completed" in ls


# --- resumable: a killed driver loses nothing ----------------------------------------------------
RANDOM_PROBE = """name = "probe random"
base = "runs/base.toml"
method = "tpe"
seeds = [0]
trials = 4
parallel = 1
objective = { metric = "count", mode = "max", use = "last" }
[parameters]
"algo.steps" = { int = [8, 30] }
"algo.step_seconds" = { uniform = [0.02, 0.04] }
"""


@pytest.mark.slow
def test_a_killed_driver_resumes_from_the_store_with_every_trial_run_once(tmp_path):
    db = tmp_path / "s.db"
    path = write_sweep(tmp_path, RANDOM_PROBE, base=PROBE_BASE)
    started = json.loads(rltui_cli("sweep", str(path), "--detach", "--json", db=db, check=True).stdout)
    sweep_id = started["id"]
    store = open_store(str(db))
    try:
        deadline = time.monotonic() + 60
        while True:  # until two trials are done, then kill the driver without warning
            trials = load_trials(store, get_sweep(store, sweep_id))
            if sum(t.status == "completed" for t in trials) >= 1:
                break
            assert time.monotonic() < deadline, trials
            time.sleep(0.05)
        os.kill(get_sweep(store, sweep_id).pid, signal.SIGKILL)
        shown = json.loads(rltui_cli("sweep", "show", str(sweep_id), "--json", db=db, check=True).stdout)
        assert shown["status"] == "crashed"
        done_before = {t["trial"]: t for t in shown["trials"] if t["status"] == "completed"}

        resumed = rltui_cli("sweep", "resume", str(sweep_id), "--json", db=db, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        data = json.loads(resumed.stdout)
        assert data["status"] == "completed"
        assert [t["trial"] for t in data["trials"]] == list(range(4))
        assert all(t["status"] == "completed" and len(t["run_ids"]) == 1 for t in data["trials"])
        for number, before in done_before.items():  # finished trials kept as they were
            assert data["trials"][number] == before
        with store.sql.read() as tx:
            assert tx.scalar("SELECT count(*) FROM runs WHERE sweep_id = :s", s=sweep_id) == 4
        # Optuna kept no tables of its own in rltui's store.
        conn = sqlite3.connect(db)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
        assert tables == {"runs", "metrics", "metric_rollups", "episodes", "steps", "artifacts", "sweeps",
                          "rltui_alembic_version"}
        params = [tuple(t["params"].values()) for t in data["trials"]]
        assert len(set(params)) == 4  # the resumed sampler did not replay earlier draws
        # A probe counts to `steps`: each trial's objective (its last count) is its steps.
        assert all(t["value"] == t["params"]["algo.steps"] for t in data["trials"])
        # What a resumed driver starts from: the study rebuilt from the stored trials.
        sweep = get_sweep(store, sweep_id)
        study = OptunaSampler(spec_of(sweep), load_trials(store, sweep)).study
        assert sorted((t.value, t.params["algo.steps"]) for t in study.trials) == sorted(
            (t["value"], t["params"]["algo.steps"]) for t in data["trials"])
    finally:
        store.dispose()


@pytest.mark.slow
def test_cancel_stops_the_driver_and_the_trials_runs(tmp_path):
    db = tmp_path / "s.db"
    body = RANDOM_PROBE.replace('"algo.step_seconds" = { uniform = [0.02, 0.04] }', '"algo.step_seconds" = [0.2]')
    path = write_sweep(tmp_path, body, base=PROBE_BASE)
    sweep_id = json.loads(rltui_cli("sweep", str(path), "--detach", "--json", db=db, check=True).stdout)["id"]
    store = open_store(str(db))
    try:
        deadline = time.monotonic() + 30
        while not any(t.status == "running" for t in load_trials(store, get_sweep(store, sweep_id))):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        out = json.loads(rltui_cli("sweep", "cancel", str(sweep_id), "--json", db=db, check=True).stdout)
        assert out["status"] == "cancelled"
        deadline = time.monotonic() + 20
        while any(s in ("queued", "running") for t in load_trials(store, get_sweep(store, sweep_id)) for s in t.statuses):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        statuses = [s for t in load_trials(store, get_sweep(store, sweep_id)) for s in t.statuses]
        assert "cancelled" in statuses
    finally:
        store.dispose()


# --- the objective and the median rule, by hand ----------------------------------------------------
def test_each_seeds_objective_then_their_mean():
    series = [(0, 1.0), (10, 3.0), (20, None), (30, 2.0)]  # None: a NaN point, skipped
    assert aggregate(series, "last", "max", None) == 2.0
    assert aggregate(series, "best", "max", None) == 3.0
    assert aggregate(series, "best", "min", None) == 1.0
    assert aggregate(series, "mean_last_k", "max", 2) == 2.5
    assert aggregate(series, "last", "max", None, upto=10) == 3.0
    t = Trial(0, [1, 2], [0, 1], ["completed"] * 2, {}, {}, series=[series, [(0, 4.0), (30, 6.0)]])
    assert trial_value(t, {"use": "last", "mode": "max"}) == (2.0 + 6.0) / 2


def _trial(number: int, curve: list[tuple[int, float]], status: str = "completed") -> Trial:
    return Trial(number, [number], [0], [status], {}, {}, series=[curve])


def test_the_median_rule_prunes_below_the_completed_trials_median_at_the_same_step():
    objective = {"use": "last", "mode": "max"}
    done = [_trial(0, [(10, 1.0), (20, 5.0)]), _trial(1, [(10, 2.0), (20, 6.0)]), _trial(2, [(10, 3.0), (20, 7.0)])]
    # At step 10 the completed trials stood at 1, 2, 3: median 2.
    assert should_prune(_trial(3, [(10, 1.5)], "running"), done, objective)
    assert not should_prune(_trial(3, [(10, 2.5)], "running"), done, objective)
    # Too few completed trials to judge.
    assert not should_prune(_trial(3, [(10, 0.0)], "running"), done[:2], objective)
    # min mode: above the median is worse.
    assert should_prune(_trial(3, [(10, 2.5)], "running"), done, {"use": "last", "mode": "min"})


@pytest.mark.slow
def test_a_pruned_trial_is_stopped_through_the_graceful_cancel(tmp_path):
    from rltui.sweeps.driver import Driver, LocalEngine
    from rltui.sweeps.trials import create_sweep

    body = RANDOM_PROBE.replace('"algo.step_seconds" = { uniform = [0.02, 0.04] }', '"algo.step_seconds" = [0.1]')
    body = 'prune = "median"\n' + body.replace('"algo.steps" = { int = [8, 30] }', '"algo.steps" = [200]')
    path = write_sweep(tmp_path, body, base=PROBE_BASE)
    store = open_store(str(tmp_path / "s.db"))
    try:
        sweep_id = create_sweep(store, load_sweep_file(path))
        driver = Driver(store, sweep_id)
        driver.engine = LocalEngine(store, driver.spec)
        driver._submit(0, {"algo.steps": 200, "algo.step_seconds": 0.1})
        deadline = time.monotonic() + 30
        while (t := load_trials(store, get_sweep(store, sweep_id))[0]).status != "running" or not t.series[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        driver._prune(t)
        deadline = time.monotonic() + 20
        while (t := load_trials(store, get_sweep(store, sweep_id))[0]).statuses != ["cancelled"]:
            assert time.monotonic() < deadline, t.statuses
            time.sleep(0.1)
        assert t.status == "pruned" and get_sweep(store, sweep_id).pruned == [0]
        with store.sql.read() as tx:
            error, count = tx.first("SELECT error, (SELECT max(value) FROM metrics WHERE run_id = runs.id AND key = 'count')"
                                    " FROM runs WHERE id = :id", id=t.run_ids[0])
        assert error == "cancelled at a safe point" and 0 < count < 200  # stopped early, what it did kept
    finally:
        store.dispose()
