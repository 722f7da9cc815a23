"""Every ready-made config in sample_runs/ runs to completion through the real CLI."""

from __future__ import annotations

import json

import pytest

from conftest import SAMPLE_RUNS, rltui_cli

CONFIGS = sorted(SAMPLE_RUNS.glob("*.toml"))


def test_there_are_sample_runs_for_every_tabular_env_and_algorithm():
    import tomllib

    pairs = {(d["env"]["id"], d["algo"]["id"]) for d in (tomllib.loads(p.read_text()) for p in CONFIGS)}
    envs, algos = {e for e, _ in pairs}, {a for _, a in pairs}
    assert {"maze", "gridworld", "cliff", "chain", "custom"} <= envs
    assert {"policy_evaluation", "value_iteration", "policy_iteration", "q_learning", "sarsa", "expected_sarsa"} <= algos


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_sample_run_completes(config, tmp_path):
    proc = rltui_cli("run", str(config), "--json", db=tmp_path / "store.db")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["status"] == "completed" and out["id"] == 1
    assert out["summary"], out
