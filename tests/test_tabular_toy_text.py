"""Gymnasium's toy-text envs as exact MDPs under their own ids: value/policy iteration, TD and
`rltui mdp` on FrozenLake-v1, Taxi-v4 and CliffWalking-v1, checked by hand and by linear solves."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SAMPLE_RUNS
from rltui import registry
from rltui.config import ConfigError, validate_config
from rltui.envs.control import ControlEnv
from rltui.envs.mdp_file import dump_mdp, mdp_from_data
from rltui.envs.tabular import as_tabular
from test_tabular_algos import linear_solve, run
from test_tabular_exact import exact_value_gamma_one, policy_matrix


def toy(env: dict):
    config = validate_config({"env": env, "algo": {"id": "value_iteration"}})
    return registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)


def test_frozen_lake_is_the_same_mdp_as_the_gridworld_lake(store):
    # Gymnasium's 4x4 lake (slip: 1/3 each of the intended and the two perpendicular moves) is
    # the sample map as a gridworld with slip 2/3 and only the goal paying: the same V*.
    out = run(store, {"id": "FrozenLake-v1", "gamma": 0.99}, {"id": "value_iteration", "theta": 1e-13, "max_sweeps": 5000})
    grid = run(store, {"id": "gridworld", "path": str(SAMPLE_RUNS / "maps" / "frozen_lake.txt"), "slip": 2 / 3,
                       "step_reward": 0.0, "pit_reward": 0.0, "bump_reward": 0.0, "gamma": 0.99},
               {"id": "value_iteration", "theta": 1e-13, "max_sweeps": 5000})
    assert out["tabular"]["states"] == grid["tabular"]["states"]
    assert out["tabular"]["V"] == pytest.approx(grid["tabular"]["V"], abs=1e-12)
    assert out["summary"]["V_start"] == pytest.approx(0.5420, abs=1e-4)  # the start state's value
    assert out["layout"]["kind"] == "grid" and out["layout"]["map"][1] == ".H.H"


@pytest.mark.parametrize("algo", ["value_iteration", "policy_iteration"])
def test_frozen_lake_8x8_without_slip_at_gamma_one(store, algo):
    env_cfg = {"id": "FrozenLake-v1", "map_name": "8x8", "is_slippery": False, "gamma": 1.0}
    out = run(store, env_cfg, {"id": algo})
    mdp = as_tabular(toy(env_cfg))
    tab = out["tabular"]
    assert out["summary"]["V_start"] == 1.0 and out["summary"]["eval_return"] == 1.0
    assert out["summary"]["eval_length"] == 14  # 7 right and 7 down, the shortest way
    assert exact_value_gamma_one(mdp, policy_matrix(mdp, tab["policy"]))[0] == pytest.approx(1.0)


def test_any_frozen_lake_map(store):
    out = run(store, {"id": "FrozenLake-v1", "desc": ["SFH", "FFG"], "is_slippery": False, "gamma": 0.9},
              {"id": "value_iteration", "theta": 1e-12})
    # S(0,0) -> (1,0) -> (1,1) -> G(1,2): reward 1 on the third move: V = γ²
    assert out["summary"]["V_start"] == pytest.approx(0.81, abs=1e-12)
    with pytest.raises(ConfigError, match="env.desc"):
        validate_config({"env": {"id": "FrozenLake-v1", "desc": ["SFX"]}, "algo": {"id": "value_iteration"}})


def test_cliff_walking_at_gamma_one_walks_the_edge(store):
    out = run(store, {"id": "CliffWalking-v1", "gamma": 1.0}, {"id": "value_iteration"})
    assert out["summary"]["V_start"] == -13.0 and out["summary"]["eval_return"] == -13.0


def test_taxi_by_hand_and_by_linear_solve(store):
    env_cfg = {"id": "Taxi-v4", "gamma": 1.0}
    out = run(store, env_cfg, {"id": "value_iteration", "max_sweeps": 2000})
    tab = out["tabular"]
    # taxi at R with the passenger at R, bound for G: pick up (-1), 8 moves around the walls (-8),
    # drop off (+20): 11
    assert tab["V"][tab["states"].index("(0,0) R→G")] == pytest.approx(11.0, abs=1e-9)
    mdp = as_tabular(toy(env_cfg))
    assert exact_value_gamma_one(mdp, policy_matrix(mdp, tab["policy"])) == pytest.approx(tab["V"], abs=1e-9)
    assert out["summary"]["V_start"] == pytest.approx(float(mdp.start @ np.array(tab["V"])), abs=1e-12)
    pi = run(store, {"id": "Taxi-v4", "gamma": 0.9}, {"id": "policy_iteration"})
    assert pi["summary"]["converged"] is True
    mdp9 = as_tabular(toy({"id": "Taxi-v4", "gamma": 0.9}))
    assert pi["tabular"]["V"] == pytest.approx(linear_solve(mdp9, policy_matrix(mdp9, pi["tabular"]["policy"])), abs=1e-9)


def test_td_learners_and_deep_algorithms_share_the_id(store):
    out = run(store, {"id": "CliffWalking-v1"}, {"id": "q_learning", "episodes": 30, "max_steps": 200}, record={"last": 0})
    assert out["summary"]["episodes"] == 30
    env = toy({"id": "CliffWalking-v1"})
    assert isinstance(env, ControlEnv)  # DQN/PPO keep Gymnasium's own stepping and time limit
    validate_config({"env": {"id": "Taxi-v4"}, "algo": {"id": "dqn"}})


def test_rltui_mdp_of_taxi_loads_back_identical(tmp_path):
    import tomllib

    mdp = as_tabular(toy({"id": "Taxi-v4", "gamma": 0.95}))
    back = mdp_from_data(tomllib.loads(dump_mdp(mdp, "toml")))
    assert np.array_equal(back.dense()[0], mdp.dense()[0]) and np.array_equal(back.dense()[1], mdp.dense()[1])
    assert np.array_equal(back.start, mdp.start) and back.states == mdp.states
