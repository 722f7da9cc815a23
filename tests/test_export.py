"""`rltui export ID --format json|csv [-o FILE]` through the real command line, on a store filled by
StoreRecorder the way an algorithm fills it: a SQLite file and a PostgreSQL database (the command
line finds it through $RLTUI_DB, so the password never sits on a command line)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import rltui_cli
from pgserver import PASSWORD
from rltui.recorder import RecordPolicy, StepRecord, StoreRecorder
from rltui.store import open_store
from rltui.store.models import Run
from test_store import make_run


@pytest.fixture
def cli_store(store_url, monkeypatch):
    """A store, also the one every `rltui` command in the test talks to."""
    monkeypatch.setenv("RLTUI_DB", store_url)
    s = open_store(store_url)
    yield s
    s.dispose()


@pytest.fixture
def filled(cli_store):
    """A run with metrics (one NaN), train and eval episodes, two kept trajectories, a summary."""
    store = cli_store
    run_id = make_run(store)
    with store.write() as s:
        run = s.get(Run, run_id)
        run.config = {"name": "t", "seed": 3, "env": {"id": "maze", "gamma": 0.9}, "algo": {"id": "q_learning"}}
        run.config_toml = 'name = "t"\n'
    rec = StoreRecorder(store, run_id, policy=RecordPolicy(last=1, eval=True), flush_every=60)
    for step in range(10):
        rec.log(step, td_error=0.5**step, epsilon=1.0 - step / 10)
    rec.log(10, td_error=float("nan"))
    for i in range(3):  # only the last training trajectory is kept (last=1)
        steps = [
            StepRecord(t, t, int(np.int64(t % 4)), -0.01, t == 2,
                       {"Q": np.array([0.1 * t, 0.2, 0.3, 0.4]), "V": np.float64(0.4), "td_error": 0.01})
            for t in range(3)
        ]
        rec.episode(i, -0.03, 3, steps=steps, step=3 * (i + 1))
    rec.episode(0, 0.97, 2, phase="eval", steps=[StepRecord(0, 0, 1, -0.01), StepRecord(1, 4, 1, 1.0, True)], step=9)
    rec.summary(best_return=0.97, converged=True)
    rec.close()
    return store, run_id


def test_export_json_to_stdout(filled):
    _, run_id = filled
    proc = rltui_cli("export", str(run_id), "--format", "json", check=True)
    data = json.loads(proc.stdout)
    assert data["metrics"]["epsilon"] == [[s, 1.0 - s / 10] for s in range(10)]
    assert data["metrics"]["td_error"][:3] == [[0, 1.0], [1, 0.5], [2, 0.25]]
    assert data["metrics"]["td_error"][-1] == [10, None]  # NaN: JSON has none, so null
    eps = [(e["phase"], e["index"], e["return"], e["length"], e["step"]) for e in data["episodes"]]
    assert eps == [("eval", 0, 0.97, 2, 9), ("train", 0, -0.03, 3, 3), ("train", 1, -0.03, 3, 6), ("train", 2, -0.03, 3, 9)]
    assert [(t["phase"], t["index"]) for t in data["trajectories"]] == [("eval", 0), ("train", 2)]
    train = data["trajectories"][1]
    assert train["return"] == -0.03 and train["length"] == 3
    assert train["steps"][1] == {
        "t": 1, "state": 1, "action": 1, "reward": -0.01, "done": False,
        "extras": {"Q": [0.1, 0.2, 0.3, 0.4], "V": 0.4, "td_error": 0.01},
    }
    assert train["steps"][2]["done"] is True
    assert data["trajectories"][0]["steps"][1] == {"t": 1, "state": 4, "action": 1, "reward": 1.0, "done": True, "extras": {}}
    assert data["config"]["env"] == {"id": "maze", "gamma": 0.9}
    assert data["summary"] == {"best_return": 0.97, "converged": True}
    assert data["run"]["id"] == run_id and data["run"]["config_toml"] == 'name = "t"\n'


def test_export_json_to_a_file_and_csv_tables(filled, tmp_path):
    _, run_id = filled
    out = tmp_path / "run.json"
    rltui_cli("export", str(run_id), "-o", str(out), check=True)  # json is the default
    assert json.loads(out.read_text())["summary"]["best_return"] == 0.97

    proc = rltui_cli("export", str(run_id), "--format", "csv", check=True, cwd=tmp_path)
    folder = tmp_path / f"run-{run_id}-csv"  # the default directory, in the current directory
    assert "runs.csv" in proc.stderr
    tables = {}
    for name in ("runs", "metrics", "episodes", "steps"):
        with (folder / f"{name}.csv").open(newline="") as fh:
            tables[name] = list(csv.DictReader(fh))
    (run,) = tables["runs"]
    assert run["id"] == str(run_id) and json.loads(run["summary"]) == {"best_return": 0.97, "converged": True}
    assert json.loads(run["config"])["algo"] == {"id": "q_learning"}
    assert len(tables["metrics"]) == 21
    td = [r for r in tables["metrics"] if r["key"] == "td_error"]
    assert [float(r["value"]) for r in td[:3]] == [1.0, 0.5, 0.25] and td[-1]["value"] == "nan"
    assert [(r["phase"], r["index"], r["has_trajectory"]) for r in tables["episodes"]] == [
        ("eval", "0", "1"), ("train", "0", "0"), ("train", "1", "0"), ("train", "2", "1"),
    ]
    steps = tables["steps"]
    assert [(r["phase"], r["episode"], r["t"]) for r in steps] == [
        ("train", "2", "0"), ("train", "2", "1"), ("train", "2", "2"), ("eval", "0", "0"), ("eval", "0", "1"),
    ]  # by episode (rows in the order they were recorded), then t
    first = next(r for r in steps if r["phase"] == "train" and r["t"] == "1")
    assert json.loads(first["state"]) == 1 and json.loads(first["extras"])["Q"] == [0.1, 0.2, 0.3, 0.4]

    custom = tmp_path / "elsewhere"
    rltui_cli("export", str(run_id), "--format", "csv", "-o", str(custom), check=True)
    assert sorted(p.name for p in custom.iterdir()) == ["episodes.csv", "metrics.csv", "runs.csv", "steps.csv"]


def test_export_of_an_unknown_run_is_a_clear_error(cli_store):
    proc = rltui_cli("export", "42")
    assert proc.returncode == 2
    assert "no run with id 42" in proc.stderr and "Traceback" not in proc.stderr
    assert PASSWORD not in proc.stderr
    assert proc.stdout == ""


# --- 21: a failed export leaves its target untouched -------------------------------------------------
def test_failed_export_leaves_the_target_as_it_was(store, db_path, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    keep = tmp_path / "keep.json"
    keep.write_text('{"precious": true}\n')
    proc = rltui_cli("export", "999", "-o", str(keep), db=db_path)
    assert proc.returncode == 2 and "no run with id 999" in proc.stderr
    assert keep.read_text() == '{"precious": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]  # no temp file left behind
    assert rltui_cli("export", "999", "--format", "csv", "-o", str(tmp_path / "csv"), db=db_path).returncode == 2
    assert not (tmp_path / "csv").exists()  # nor a directory for an export that cannot be made
    run_id = make_run(store)
    rltui_cli("export", str(run_id), "-o", str(keep), db=db_path, check=True)
    assert '"precious"' not in keep.read_text() and sorted(p.name for p in tmp_path.iterdir()) == ["keep.json"]
