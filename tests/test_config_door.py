"""Strict at the door: every bad config, MDP file or argument gets one line naming the file, the key
and what is allowed, exit status 2, and no run row. Property-based tests (hypothesis) throw random
configs and MDP files at the same checks: they only ever accept or raise ConfigError."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SAMPLE_RUNS, rltui_cli
from rltui.config import ConfigError, load_config_text, validate_config
from rltui.envs.mdp_file import mdp_from_data
from rltui.store import open_store
from rltui.store.models import Run

BIG_LAKE = ["S" + "." * 199] + ["." * 200] * 198 + ["." * 199 + "G"]  # 40,000 states


def refused(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        validate_config(data, source="c.toml")
    return err.value


@pytest.mark.parametrize("data, key, message", [
    # no coercion: a boolean, a quoted number are not numbers
    ({"env": {"id": "maze", "gamma": True}, "algo": {"id": "value_iteration"}}, "env.gamma", "Input should be a valid number"),
    ({"env": {"id": "maze", "gamma": "0.9"}, "algo": {"id": "value_iteration"}}, "env.gamma", "Input should be a valid number"),
    ({"env": {"id": "maze"}, "algo": {"id": "q_learning", "episodes": "100"}}, "algo.episodes", "Input should be a valid integer"),
    ({"env": {"id": "maze"}, "algo": {"id": "q_learning", "episodes": 100.0}}, "algo.episodes", "Input should be a valid integer"),
    ({"env": {"id": "CartPole-v1"}, "algo": {"id": "ppo", "normalize_advantage": 1}}, "algo.normalize_advantage", "valid boolean"),
    ({"env": {"id": "maze"}, "algo": {"id": "value_iteration"}, "record": {"eval": "yes"}}, "record.eval", "valid boolean"),
    # NaN and inf, wherever a number is read
    ({"env": {"id": "maze"}, "algo": {"id": "q_learning", "q_init": math.nan}}, "algo.q_init", "finite number"),
    ({"env": {"id": "maze"}, "algo": {"id": "q_learning", "q_init": math.inf}}, "algo.q_init", "finite number"),
    ({"env": {"id": "gridworld", "map": ["SG"], "step_reward": math.nan}, "algo": {"id": "value_iteration"}},
     "env.step_reward", "finite number"),
    ({"env": {"id": "maze"}, "algo": {"id": "value_iteration", "theta": math.inf}}, "algo.theta", "finite number"),
    # every size bounded
    ({"seed": 10**23, "env": {"id": "maze"}, "algo": {"id": "value_iteration"}}, "seed", "integer in 0..4294967295"),
    ({"seed": -1, "env": {"id": "maze"}, "algo": {"id": "value_iteration"}}, "seed", "integer in 0..4294967295"),
    ({"env": {"id": "maze"}, "algo": {"id": "q_learning", "max_steps": 10**12}}, "algo.max_steps", "less than or equal to 1000000"),
    ({"env": {"id": "maze"}, "algo": {"id": "value_iteration"}, "record": {"max_steps": 10**9}}, "record.max_steps",
     "less than or equal to 1000000"),
    ({"env": {"id": "CartPole-v1"}, "algo": {"id": "ppo", "net_arch": [-1]}}, "algo.net_arch.0", "greater than or equal to 1"),
    ({"env": {"id": "CartPole-v1"}, "algo": {"id": "dqn", "net_arch": [64] * 17}}, "algo.net_arch", "at most 16 items"),
    ({"env": {"id": "CartPole-v1"}, "algo": {"id": "reinforce", "eval_every": 10**15}}, "algo.eval_every", "too large"),
    ({"name": "x" * 201, "env": {"id": "maze"}, "algo": {"id": "value_iteration"}}, "name", "at most 200"),
    # shapes
    ({"env": {"id": "maze"}, "algo": {"id": "value_iteration"}, "record": "all"}, "record", "must be a table"),
    # policy tables checked against the MDP
    ({"env": {"id": "maze"}, "algo": {"id": "policy_evaluation", "policy": {"(9,9)": "up"}}}, "algo.policy",
     "unknown state '(9,9)'"),
    ({"env": {"id": "maze"}, "algo": {"id": "policy_evaluation", "policy": {"(0,0)": "jump"}}}, "algo.policy.(0,0)",
     "unknown action 'jump'"),
    ({"env": {"id": "maze"}, "algo": {"id": "policy_evaluation", "policy": {"(0,0)": {"up": math.nan}}}},
     "algo.policy.(0,0).up", "finite number"),
    ({"env": {"id": "maze"}, "algo": {"id": "policy_evaluation", "policy": {"(3,3)": "up"}}}, "algo.policy", "terminal"),
])
def test_bad_configs_get_one_line_naming_the_key(data, key, message):
    err = refused(data)
    assert err.source == "c.toml" and err.key == key
    assert message in err.message and "\n" not in str(err) and len(str(err)) < 600, str(err)


def test_what_a_run_would_allocate_is_checked_against_the_machines_memory(monkeypatch):
    monkeypatch.setenv("RLTUI_MEMORY_LIMIT", str(2**30))  # 1 GiB for this test
    # DQN on a one-hot 40,000-state lake: 100,000 transitions x 2 x 40,000 float32 = 30 GiB
    err = refused({"env": {"id": "gridworld", "map": BIG_LAKE}, "algo": {"id": "dqn", "buffer_size": 100_000}})
    assert err.key == "algo.buffer_size" and "(29.8 GiB for algo.buffer_size)" in err.message
    assert "1.0 GiB available" in err.message
    err = refused({"env": {"id": "CartPole-v1"}, "algo": {"id": "ppo", "net_arch": [65_536] * 4}})
    assert err.key == "algo.net_arch"
    # ... and what fits goes through
    validate_config({"env": {"id": "gridworld", "map": BIG_LAKE}, "algo": {"id": "value_iteration"}})


def test_bad_toml_text_is_one_line():
    deep = "x = " + "[" * 1000 + "]" * 1000
    for text, message in [
        (deep, "nested too deeply"),
        ('[env]\nid = "maze"\n[algo]\nid = "policy_evaluation"\npolicy = ' + "{a = " * 40 + "1" + "}" * 40,
         "nested too deeply"),
        ("seed = = 1", "not valid TOML"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_config_text(text, source="c.toml")
        assert message in str(err.value) and "\n" not in str(err.value)


def test_mdp_files_refuse_deep_nesting_bad_utf8_and_json_nan(tmp_path):
    from rltui.envs.mdp_file import load_mdp

    cases = {
        "deep.json": ("[" * 5000 + "]" * 5000).encode(), "bytes.toml": b"states = [\"\xff\"]",
        "nan.json": json.dumps({"states": ["A"], "actions": ["a"], "transitions": [["A", "a", "A", float("nan"), 0]]}).encode(),
        "long.json": json.dumps({"states": ["A" * 201], "actions": ["a"], "transitions": []}).encode(),
    }
    messages = {"deep.json": "nested too deeply", "bytes.toml": "not valid UTF-8", "nan.json": "NaN is not a number JSON allows",
                "long.json": "at most 200 characters"}
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ConfigError) as err:
            load_mdp(tmp_path / name)
        assert messages[name] in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_the_cli_refuses_with_exit_2_one_line_and_no_run_row(tmp_path):
    db = tmp_path / "s.db"
    bad_utf8 = tmp_path / "bad.toml"
    bad_utf8.write_bytes(b'name = "\xff\xfe"\n[env]\nid = "maze"\n[algo]\nid = "value_iteration"\n')
    nan_start = tmp_path / "nan_start.toml"
    nan_start.write_text('gamma = 0.9\nstates = ["A", "B"]\nactions = ["go"]\nstart = {A = nan, B = 1.0}\n'
                         'terminal = ["B"]\ntransitions = [["A", "go", "B", 1.0, 1.0]]\n')
    cfg = tmp_path / "custom.toml"
    cfg.write_text('[env]\nid = "custom"\npath = "nan_start.toml"\n[algo]\nid = "value_iteration"\n')
    for args, needle in [
        (("run", str(bad_utf8)), "not valid UTF-8"),
        (("run", str(cfg)), "start.A"),
        (("run", str(SAMPLE_RUNS / "maze_q_learning.toml"), "--set", "algo.q_init=nan"), "algo.q_init"),
        (("run", str(SAMPLE_RUNS / "maze_q_learning.toml"), "--set", "seed=100000000000000000000000"), "seed"),
        (("run", str(SAMPLE_RUNS / "maze_policy_evaluation.toml"), "--set", 'algo.policy={"(7,7)" = "up"}'),
         "unknown state '(7,7)'"),
    ]:
        proc = rltui_cli(*args, db=db)
        assert proc.returncode == 2, (args, proc.stderr)
        assert needle in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "Traceback" not in proc.stderr
    proc = rltui_cli("show", str(10**20), db=db)
    assert proc.returncode == 2 and "run id" in proc.stderr and "Traceback" not in proc.stderr
    store = open_store(str(db))
    with store.read() as session:
        assert session.query(Run).count() == 0
    store.dispose()


# --- property-based: random configs and MDP files only ever pass or raise ConfigError ------------
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                      max_leaves=8)
TABULAR_KEYS = ["gamma", "slip", "map", "n", "step_reward", "path", "theta", "max_sweeps", "episodes", "alpha",
                "alpha_schedule", "epsilon", "q_init", "policy", "max_steps", "temperature"]


@st.composite
def configs(draw) -> dict:
    env = {"id": draw(st.sampled_from(["maze", "chain", "gridworld", "cliff", "nope"]))}
    algo = {"id": draw(st.sampled_from(["value_iteration", "policy_iteration", "policy_evaluation", "q_learning", "x"]))}
    for table in (env, algo):
        for key in draw(st.lists(st.sampled_from(TABULAR_KEYS), max_size=3, unique=True)):
            table[key] = draw(values)
    data = {"env": env, "algo": algo}
    if draw(st.booleans()):
        data["seed"] = draw(values)
    if draw(st.booleans()):
        data["record"] = draw(values)
    if draw(st.booleans()):
        data["name"] = draw(values)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_random_configs_are_accepted_or_refused_with_a_config_error(data):
    try:
        config = validate_config(data, source="fuzz.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.toml")
        return
    assert 0 <= config.seed <= 2**32 - 1 and isinstance(config.name, str) and len(config.name) <= 200
    gamma = getattr(config.env, "gamma", 0.5)
    assert isinstance(gamma, float) and 0 <= gamma <= 1


GOOD_MDP = {"gamma": 0.9, "states": ["A", "B", "C"], "actions": ["left", "right"], "start": "A", "terminal": ["C"],
            "transitions": [["A", "right", "B", 1.0, 0.0], ["A", "left", "A", 1.0, -1.0], ["B", "right", "C", 0.8, 1.0],
                            ["B", "right", "A", 0.2, 0.0]]}


@st.composite
def mdp_files(draw) -> dict:
    data = json.loads(json.dumps(GOOD_MDP))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "row", "cell"]))
        if where == "top":
            data[draw(st.sampled_from(list(GOOD_MDP) + ["extra"]))] = draw(values)
        elif where == "row" and isinstance(data.get("transitions"), list):
            data["transitions"].append(draw(values))
        elif isinstance(data.get("transitions"), list) and data["transitions"] and isinstance(data["transitions"][0], list):
            row = data["transitions"][draw(st.integers(0, len(data["transitions"]) - 1))]
            if isinstance(row, list) and row:
                row[draw(st.integers(0, len(row) - 1))] = draw(values)
    return data


@settings(max_examples=200, deadline=None)
@given(mdp_files())
def test_random_mdp_files_are_accepted_exactly_or_refused(data):
    try:
        env = mdp_from_data(data, source="fuzz.toml")
    except ConfigError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.toml")
        return
    # what is accepted is a proper MDP: finite numbers, rows that sum to 1, a start distribution
    assert np.all(np.isfinite(env.prob)) and np.all(np.isfinite(env.reward)) and np.all(env.prob >= 0)
    sums = env.prob.sum(axis=2)[env.available]
    assert np.allclose(sums, 1.0, atol=1e-6) and env.start.sum() == pytest.approx(1.0)
    assert 0 <= env.gamma <= 1
