"""Run configuration: strict validation with messages naming file, key and what is allowed; --set
overrides; stored configs round-trip to TOML that reproduces the run; relative paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import SAMPLE_RUNS, rltui_cli
from rltui.config import ConfigError, load_config_file, load_config_text

BASE = """seed = 1
[env]
id = "maze"
gamma = 0.9
[algo]
id = "q_learning"
episodes = 20
alpha = 0.3
"""


def refused(text: str, source: str = "run.toml") -> str:
    with pytest.raises(ConfigError) as err:
        load_config_text(text, source=source)
    return str(err.value)


def test_unknown_key_typo_is_named_with_a_suggestion():
    msg = refused(BASE.replace("alpha = 0.3", "alhpa = 0.3"))
    assert msg.startswith("run.toml: algo.alhpa: unknown key. Allowed in [algo]: ")
    assert "alpha" in msg and "epsilon" in msg and msg.endswith("Did you mean 'alpha'?")
    msg = refused(BASE.replace("gamma = 0.9", "gama = 0.9"))
    assert msg.startswith("run.toml: env.gama: unknown key. Allowed in [env]: gamma, slip.")
    assert msg.endswith("Did you mean 'gamma'?")
    assert refused("sed = 1\n" + BASE).startswith("run.toml: sed: unknown key. Allowed at the top level:")


def test_wrong_type_names_key_value_and_meaning():
    msg = refused(BASE.replace("alpha = 0.3", 'alpha = "fast"'))
    assert msg.startswith("run.toml: algo.alpha: ")
    assert "'fast'" in msg and "step size α" in msg
    msg = refused(BASE.replace("episodes = 20", "episodes = 2.5"))
    assert msg.startswith("run.toml: algo.episodes: ") and "2.5" in msg


@pytest.mark.parametrize(
    "old, new, key, detail",
    [
        ("gamma = 0.9", "gamma = 1.5", "env.gamma", "less than or equal to 1"),
        ("alpha = 0.3", "alpha = 0", "algo.alpha", "greater than 0"),
        ("alpha = 0.3", "epsilon = -0.1", "algo.epsilon", "greater than or equal to 0"),
        ("episodes = 20", "episodes = 0", "algo.episodes", "greater than or equal to 1"),
        ("alpha = 0.3", 'alpha_schedule = "cosine"', "algo.alpha_schedule", "'constant', 'linear' or 'visits'"),
    ],
)
def test_out_of_range_values(old, new, key, detail):
    msg = refused(BASE.replace(old, new))
    assert msg.startswith(f"run.toml: {key}: ") and detail in msg


def test_unknown_ids_list_what_is_allowed_and_suggest():
    msg = refused(BASE.replace('id = "maze"', 'id = "mazee"'))
    assert msg.startswith("run.toml: env.id: unknown id 'mazee'. Allowed: ")
    allowed = msg.split("Allowed: ")[1].split(". Did you mean")[0].split(", ")
    assert {"chain", "cliff", "custom", "gridworld", "maze"} <= set(allowed)
    assert allowed == sorted(allowed, key=str.lower) or allowed == sorted(allowed)
    assert msg.endswith("Did you mean 'maze'?")
    msg = refused(BASE.replace('id = "q_learning"', 'id = "qlearning"'))
    assert "algo.id: unknown id 'qlearning'" in msg and msg.endswith("Did you mean 'q_learning'?")


def test_cli_bad_config_exits_2_without_traceback_or_run_row(tmp_path, db_path):
    cfg = tmp_path / "typo.toml"
    cfg.write_text(BASE.replace("alpha = 0.3", "alhpa = 0.3"))
    proc = rltui_cli("run", str(cfg), db=db_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith(f"rltui: {cfg}: algo.alhpa: unknown key")
    assert "Did you mean 'alpha'?" in proc.stderr
    assert json.loads(rltui_cli("ls", "--json", db=db_path, check=True).stdout) == []


def test_set_overrides(tmp_path, db_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(BASE)
    config = load_config_file(cfg, ["algo.alpha=0.5", "env.gamma=0.8", 'algo.alpha_schedule="linear"', "seed=7"])
    assert config.algo.alpha == 0.5 and config.env.gamma == 0.8 and config.algo.alpha_schedule == "linear"
    assert config.seed == 7
    with pytest.raises(ConfigError, match="algo.alhpa: unknown key.*Did you mean 'alpha'"):
        load_config_file(cfg, ["algo.alhpa=0.5"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        load_config_file(cfg, ["algo.alpha"])
    proc = rltui_cli("run", str(cfg), "--set", "algo.episodes=7", "--json", db=db_path, check=True)
    out = json.loads(proc.stdout)
    assert out["status"] == "completed" and out["summary"]["episodes"] == 7


def test_stored_config_round_trips_to_toml_that_reproduces_the_run(tmp_path, db_path):
    # a relative map path, run from another directory: the stored config holds the resolved path
    work = tmp_path / "work"
    (work / "maps").mkdir(parents=True)
    shutil.copy(SAMPLE_RUNS / "maps" / "frozen_lake.txt", work / "maps" / "lake.txt")
    cfg = work / "lake.toml"
    cfg.write_text('seed = 5\n[env]\nid = "gridworld"\npath = "maps/lake.txt"\nslip = 0.3\n'
                   '[algo]\nid = "sarsa"\nepisodes = 40\nepsilon = 0.2\nmax_steps = 50\n')
    first = json.loads(rltui_cli("run", str(cfg), "--json", db=db_path, check=True, cwd=Path("/")).stdout)
    toml = rltui_cli("show", str(first["id"]), "--toml", db=db_path, check=True).stdout
    assert f'path = "{work / "maps" / "lake.txt"}"' in toml  # resolved against the config file
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "again.toml").write_text(toml)
    second = json.loads(rltui_cli("run", str(elsewhere / "again.toml"), "--json", db=db_path, check=True).stdout)
    assert second["summary"] == first["summary"]
    show = [json.loads(rltui_cli("show", str(r["id"]), "--json", db=db_path, check=True).stdout) for r in (first, second)]
    assert show[0]["tabular"] == show[1]["tabular"]
    assert show[0]["config"] == show[1]["config"]


def test_relative_path_is_resolved_against_the_config_file(tmp_path):
    sub = tmp_path / "configs"
    (sub / "mdps").mkdir(parents=True)
    shutil.copy(SAMPLE_RUNS / "mdps" / "custom_abc.toml", sub / "mdps" / "abc.toml")
    (sub / "run.toml").write_text('[env]\nid = "custom"\npath = "mdps/abc.toml"\n[algo]\nid = "value_iteration"\n')
    config = load_config_file(sub / "run.toml")
    assert config.env.path == str((sub / "mdps" / "abc.toml").resolve())
    assert config.to_dict()["env"] == {"id": "custom", "path": str((sub / "mdps" / "abc.toml").resolve())}
    with pytest.raises(ConfigError, match=r"^x\.toml: env\.path: MDP file not found: .*mdps/abc\.toml"):
        load_config_text('[env]\nid = "custom"\npath = "mdps/abc.toml"\n[algo]\nid = "value_iteration"\n',
                         source="x.toml", base_dir=tmp_path)
