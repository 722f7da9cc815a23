"""Custom MDP files: reading, every refusal with its message, and `rltui mdp` round trips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import SAMPLE_RUNS, rltui_cli
from rltui.config import ConfigError, load_config_text
from rltui.envs import tabular
from rltui.envs.mdp_file import dump_mdp, load_mdp
from rltui.schemas.tabular import ChainParams, CliffParams, GridworldParams, MazeParams

ABC = SAMPLE_RUNS / "mdps" / "custom_abc.toml"

GOOD = {
    "gamma": 0.9,
    "states": ["A", "B", "C"],
    "actions": ["left", "right"],
    "start": "A",
    "terminal": ["C"],
    "transitions": [
        ["A", "right", "B", 1.0, 0.0],
        ["A", "left", "A", 1.0, -1.0],
        ["B", "right", "C", 0.8, 1.0],
        ["B", "right", "A", 0.2, 0.0],
    ],
}


def write(tmp_path: Path, data: dict, name: str = "m.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_the_sample_file_loads_with_its_meaning():
    env = load_mdp(ABC)
    assert env.states == ["A", "B", "C"] and env.actions == ["left", "right"] and env.gamma == 0.9
    assert env.terminal.tolist() == [False, False, True]
    assert env.start.tolist() == [1.0, 0.0, 0.0]
    assert env.available.tolist() == [[True, True], [False, True], [False, False]]  # B: no `left`
    P, R = env.dense()
    assert P[1, 1].tolist() == [0.2, 0.0, 0.8] and R[1, 1].tolist() == [0.0, 0.0, 1.0]
    assert env.expected_reward[1, 1] == pytest.approx(0.8)
    assert env.layout == {"kind": "tabular", "states": ["A", "B", "C"], "actions": ["left", "right"]}


def test_json_and_toml_give_the_same_mdp_and_env_gamma_overrides(tmp_path):
    a, b = load_mdp(ABC), load_mdp(write(tmp_path, GOOD))
    for x, y in zip(a.dense(), b.dense()):
        assert np.array_equal(x, y)
    assert load_mdp(ABC, gamma=0.5).gamma == 0.5
    no_gamma = {k: v for k, v in GOOD.items() if k != "gamma"}
    assert load_mdp(write(tmp_path, no_gamma)).gamma == 0.9  # documented default


def test_start_distribution_table(tmp_path):
    env = load_mdp(write(tmp_path, {**GOOD, "start": {"A": 0.25, "B": 0.75}}))
    assert env.start.tolist() == [0.25, 0.75, 0.0]


def bad(**changes):
    return {**GOOD, **changes}


def rows(*extra, drop=()):
    return [t for i, t in enumerate(GOOD["transitions"]) if i not in drop] + list(extra)


@pytest.mark.parametrize(
    "data, key, message",
    [
        (bad(transitions=rows(drop=(3,))), "transitions",
         "probabilities for state 'B', action 'right' sum to 0.8; they must sum to 1"),
        (bad(transitions=rows(["A", "right", "C", -0.5, 0.0])), "transitions[4]",
         "negative probability -0.5 for state 'A', action 'right', next state 'C'"),
        (bad(transitions=rows(["D", "right", "C", 1.0, 0.0])), "transitions[4]", "unknown state 'D'. Known states: A, B, C"),
        (bad(transitions=rows(["B", "rigth", "C", 1.0, 0.0])), "transitions[4]",
         "unknown action 'rigth'. Known actions: left, right. Did you mean 'right'?"),
        (bad(transitions=rows(["A", "left", "Z", 1.0, 0.0], drop=(1,))), "transitions[3]", "unknown next state 'Z'"),
        (bad(gamma=1.5), "gamma", "the discount γ must be a number in [0, 1], got 1.5"),
        (bad(gamma=-0.1), "gamma", "must be a number in [0, 1], got -0.1"),
        (bad(states=[]), "states", "must be a non-empty list of names, got []"),
        (bad(actions=[]), "actions", "must be a non-empty list of names, got []"),
        (bad(states=["A", "B", "C", "D"]), "transitions",
         "state 'D' is not terminal but has no transitions; give it at least one action or list it in `terminal`"),
        (bad(transitions=rows(["C", "left", "A", 1.0, 0.0])), "transitions[4]",
         "state 'C' is terminal; terminal states have no transitions"),
        (bad(transitions=rows(["A", "right", "B", 1.0, 0.0])), "transitions[4]",
         "repeats state 'A', action 'right', next state 'B' (first given at transitions[0])"),
        (bad(transitions=rows(["A", "right", "B"])), "transitions[4]", "must be [state, action, next_state, probability, reward]"),
        (bad(transitions=rows(["A", "up", "B", "half", 0.0])), "transitions[4]", "unknown action 'up'"),
        (bad(transitions=rows(drop=(0,)) + [["A", "right", "B", "one", 0.0]]), "transitions[3]", "probability must be a finite number in [0, 1], got 'one'"),
        (bad(transitions=[]), "transitions", "must be a non-empty list"),
        (bad(start="Q"), "start", "unknown start state 'Q'"),
        (bad(start="C"), "start", "start state 'C' is terminal"),
        (bad(start={"A": 0.5, "B": 0.4}), "start", "start probabilities sum to 0.9; they must sum to 1"),
        (bad(terminal=["X"]), "terminal[0]", "unknown state 'X'"),
        (bad(states=["A", "B", "A"]), "states[2]", "'A' is listed twice"),
        ({**GOOD, "gama": 0.9}, "gama", "unknown key. Allowed: gamma, states, actions, start, terminal, transitions. Did you mean 'gamma'?"),
    ],
)
def test_bad_mdp_files_are_refused_naming_file_key_and_problem(tmp_path, data, key, message):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_mdp(path)
    assert err.value.source == str(path) and err.value.key == key
    assert message in err.value.message, err.value.message
    assert str(err.value).startswith(f"{path}: {key}: ")


def test_unparsable_files(tmp_path):
    (tmp_path / "x.toml").write_text("states = [\n")
    with pytest.raises(ConfigError, match="x.toml: not valid TOML"):
        load_mdp(tmp_path / "x.toml")
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold one table/object"):
        load_mdp(tmp_path / "x.json")
    with pytest.raises(ConfigError, match="nothere.toml: MDP file not found"):
        load_mdp(tmp_path / "nothere.toml")


def test_a_bad_mdp_file_is_refused_at_config_time_naming_the_mdp_file(tmp_path):
    path = write(tmp_path, bad(gamma=2))
    text = '[env]\nid = "custom"\npath = "m.json"\n[algo]\nid = "value_iteration"\n'
    with pytest.raises(ConfigError) as err:
        load_config_text(text, source=str(tmp_path / "run.toml"), base_dir=tmp_path)
    assert str(err.value).startswith(f"{path}: gamma: ")
    with pytest.raises(ConfigError, match=r"run.toml: env.gamma: .*less than or equal to 1"):
        load_config_text(text.replace('path = "m.json"', f'path = "{ABC}"\ngamma = 1.1'),
                         source=str(tmp_path / "run.toml"), base_dir=tmp_path)


def test_cli_refuses_a_bad_mdp_with_exit_2_and_no_run_row(tmp_path, db_path):
    write(tmp_path, bad(transitions=rows(drop=(3,))))
    cfg = tmp_path / "run.toml"
    cfg.write_text('[env]\nid = "custom"\npath = "m.json"\n[algo]\nid = "value_iteration"\n')
    proc = rltui_cli("run", str(cfg), db=db_path, cwd=Path("/"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert f"{tmp_path / 'm.json'}: transitions: probabilities for state 'B', action 'right' sum to 0.8" in proc.stderr
    listing = rltui_cli("ls", "--json", db=db_path, check=True)
    assert json.loads(listing.stdout) == []


# --- round trips ---------------------------------------------------------------------------------
ENVS = {
    "maze": lambda: tabular.make_maze(MazeParams()),
    "slippery maze": lambda: tabular.make_maze(MazeParams(slip=0.3, gamma=0.97)),
    "cliff with slip (merged outcomes)": lambda: tabular.make_cliff(CliffParams(slip=0.1)),
    "chain": lambda: tabular.make_chain(ChainParams(n=6, slip=0.1, step_reward=-0.3)),
    "gridworld": lambda: tabular.make_gridworld(GridworldParams(map=["S.H.", ".#.C", "C..G"], slip=0.2, gamma=0.8)),
    "custom": lambda: load_mdp(ABC),
}


@pytest.mark.parametrize("fmt", ["toml", "json"])
@pytest.mark.parametrize("name", list(ENVS))
def test_dump_loads_back_as_custom_with_identical_P_and_R(tmp_path, name, fmt):
    env = ENVS[name]()
    path = tmp_path / f"mdp.{fmt}"
    path.write_text(dump_mdp(env, fmt))
    back = load_mdp(path)
    assert back.states == env.states and back.actions == env.actions and back.gamma == env.gamma
    assert np.array_equal(back.start, env.start) and np.array_equal(back.terminal, env.terminal)
    P, R = env.dense()
    P2, R2 = back.dense()
    assert np.array_equal(P, P2) and np.array_equal(R, R2)
    assert np.array_equal(back.available, env.available)


def test_rltui_mdp_prints_toml_and_json_that_load_back(tmp_path):
    for fmt_args, name in (((), "maze.toml"), (("--json",), "maze.json")):
        proc = rltui_cli("mdp", str(SAMPLE_RUNS / "maze_value_iteration.toml"), *fmt_args, check=True)
        (tmp_path / name).write_text(proc.stdout)
        back = load_mdp(tmp_path / name)
        P, R = tabular.make_maze(MazeParams()).dense()
        assert np.array_equal(back.dense()[0], P) and np.array_equal(back.dense()[1], R)
    text = (tmp_path / "maze.toml").read_text()
    assert '["(2,3)", "down", "(3,3)", 1.0, 1.0],' in text  # one readable transition per line
    assert json.loads((tmp_path / "maze.json").read_text())["start"] == "(0,0)"
    # and the exported file runs as `custom`, giving the maze's values
    cfg = tmp_path / "run.toml"
    cfg.write_text('[env]\nid = "custom"\npath = "maze.toml"\n[algo]\nid = "value_iteration"\ntheta = 1e-12\n')
    proc = rltui_cli("run", str(cfg), "--json", db=tmp_path / "s.db", check=True)
    v_start = sum(0.9**k * -0.01 for k in range(5)) + 0.9**5
    assert json.loads(proc.stdout)["summary"]["V_start"] == pytest.approx(v_start, abs=1e-9)


def test_rltui_mdp_honours_set(tmp_path):
    proc = rltui_cli("mdp", str(SAMPLE_RUNS / "chain_value_iteration.toml"), "--set", "env.n=3", "--json", check=True)
    data = json.loads(proc.stdout)
    assert data["states"] == ["0", "1", "2"] and data["terminal"] == ["2"]


ABC_TOML = """gamma = 0.9
states = ["A", "B", "C"]
actions = ["left", "right"]
start = {start}
terminal = ["C"]
transitions = [
  ["A", "right", "B", {p}, 0.0],
  ["A", "left",  "A", 1.0, {r}],
  ["B", "right", "C", 1.0, 1.0],
]
"""


@pytest.mark.parametrize("start, p, r, key, message", [
    ('"A"', "nan", "-1.0", "transitions[0]", "probability must be a finite number in [0, 1], got nan"),
    ('"A"', "inf", "-1.0", "transitions[0]", "probability must be a finite number in [0, 1], got inf"),
    ('"A"', "1.0", "nan", "transitions[1]", "reward must be a finite number, got nan"),
    ('"A"', "1.0", "-inf", "transitions[1]", "reward must be a finite number, got -inf"),
    ("{A = nan, B = 1.0}", "1.0", "-1.0", "start.A", "a start probability must be a number in [0, 1], got nan"),
    ("{A = inf}", "1.0", "-1.0", "start.A", "a start probability must be a number in [0, 1], got inf"),
])
def test_nan_and_inf_are_refused_in_mdp_files(tmp_path, start, p, r, key, message):
    path = tmp_path / "m.toml"
    path.write_text(ABC_TOML.format(start=start, p=p, r=r))
    with pytest.raises(ConfigError) as err:
        load_mdp(path)
    assert err.value.key == key and err.value.message == message


def test_a_probability_one_ulp_above_one_is_accepted(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(ABC_TOML.format(start='"A"', p="1.0000000000000002", r="-1.0"))
    env = load_mdp(path)
    assert env.outcomes(0, 1) == [(1, 1.0000000000000002, 0.0)]
