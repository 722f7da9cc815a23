"""Every ready-made config in sample_runs/ runs to completion through the real CLI.

Tabular and diagnostic samples run exactly as shipped. Deep-RL and language-model samples are the
benchmark settings (minutes of training), so here they run as shipped except for a smaller budget
given with --set, the way a user would try one quickly; the language-model chains run in order in
one store, each stage finding the one before it through `init_run = "latest:..."`.
"""

from __future__ import annotations

import json
import tomllib

import pytest

from conftest import SAMPLE_RUNS, rltui_cli

CONFIGS = sorted(SAMPLE_RUNS.glob("*.toml"))

# Smaller budgets for the samples that train networks: {file stem: [--set overrides]}.
_EVAL = ["algo.eval_every=200", "algo.eval_episodes=1"]
QUICK = {
    "cartpole_dqn": ["algo.total_timesteps=600", "algo.learning_starts=200", "algo.train_freq=50",
                     "algo.gradient_steps=4", *_EVAL],
    "cartpole_ppo": ["algo.total_timesteps=512", *_EVAL],
    "cartpole_reinforce": ["algo.total_timesteps=600", "algo.episodes_per_update=2", *_EVAL],
    "cartpole_a2c": ["algo.total_timesteps=400", *_EVAL],
    "pendulum_sac": ["algo.total_timesteps=300", "algo.batch_size=32", "algo.net_arch=[32, 32]", *_EVAL],
    "pendulum_td3": ["algo.total_timesteps=300", "algo.learning_starts=100", "algo.batch_size=32",
                     "algo.train_freq=50", "algo.gradient_steps=4", "algo.net_arch=[32, 32]", *_EVAL],
    "pendulum_ppo": ["algo.total_timesteps=512", "algo.n_steps=64", *_EVAL],
    "maze_dqn": ["algo.total_timesteps=600", "algo.learning_starts=100", *_EVAL],
    "minatar_breakout_dqn": ["algo.total_timesteps=600", "algo.learning_starts=200", "algo.buffer_size=1000", *_EVAL],
    "lunarlander_ppo": ["algo.total_timesteps=1024", "algo.n_steps=32", "env.num_envs=4", *_EVAL],
}
_LM_EVAL = ["algo.eval_prompts=8"]
LM_CHAINS = {
    "reviews": {
        "lm_reviews_1_pretrain": ["algo.steps=20", "algo.eval_every=20", *_LM_EVAL],
        "lm_reviews_2_reward_model": ["algo.n_pairs=64", "algo.heldout_pairs=32", "algo.epochs=1"],
        "lm_reviews_3_ppo": ["algo.iterations=1", "algo.batch_size=8", "algo.mini_batch_size=8",
                             "algo.eval_every=1", *_LM_EVAL],
        "lm_reviews_4_dpo": ["algo.n_pairs=32", "algo.epochs=1", "algo.eval_every=1", *_LM_EVAL],
        "lm_reviews_5_grpo": ["algo.iterations=1", "algo.prompts_per_iter=2", "algo.group_size=4",
                              "algo.eval_every=1", *_LM_EVAL],
    },
    "arithmetic": {
        "lm_arith_1_pretrain": ["algo.steps=20", "algo.eval_every=20", *_LM_EVAL],
        "lm_arith_2_grpo": ["algo.iterations=1", "algo.prompts_per_iter=2", "algo.group_size=4",
                            "algo.mini_batch_size=8", "algo.eval_every=1", *_LM_EVAL],
        "lm_arith_3_ppo": ["algo.iterations=1", "algo.batch_size=8", "algo.mini_batch_size=8",
                           "algo.eval_every=1", *_LM_EVAL],
    },
}
LM_STAGES = {stem for chain in LM_CHAINS.values() for stem in chain}
AS_SHIPPED = [p for p in CONFIGS if p.stem not in QUICK and p.stem not in LM_STAGES]


def _family(path) -> str:
    return tomllib.loads(path.read_text())["algo"]["id"]


def _run(config, db, overrides=()) -> dict:
    args = ["run", str(config), "--json"]
    for item in overrides:
        args += ["--set", item]
    proc = rltui_cli(*args, db=db)
    assert proc.returncode == 0, f"{config.name}: {proc.stdout}\n{proc.stderr}"
    out = json.loads(proc.stdout)
    assert out["status"] == "completed", out
    assert out["summary"], out
    return out


def test_there_are_sample_runs_for_every_tabular_env_and_algorithm():
    pairs = {(d["env"]["id"], d["algo"]["id"]) for d in (tomllib.loads(p.read_text()) for p in CONFIGS)}
    envs, algos = {e for e, _ in pairs}, {a for _, a in pairs}
    assert {"maze", "gridworld", "cliff", "chain", "custom"} <= envs
    assert {"policy_evaluation", "value_iteration", "policy_iteration", "q_learning", "sarsa", "expected_sarsa"} <= algos
    assert {"dqn", "ppo", "reinforce", "lm_pretrain", "reward_model", "lm_ppo", "grpo", "dpo"} <= algos


def test_every_network_sample_has_a_quick_budget_here():
    """A new deep or LM sample must be listed above, or it would run for minutes in the suite."""
    torch_algos = {"dqn", "ppo", "a2c", "sac", "td3", "reinforce", "lm_pretrain", "reward_model", "lm_ppo", "grpo", "dpo"}
    unlisted = [p.name for p in AS_SHIPPED if _family(p) in torch_algos]
    assert unlisted == []


@pytest.mark.parametrize("config", AS_SHIPPED, ids=[p.stem for p in AS_SHIPPED])
def test_sample_run_completes(config, tmp_path):
    out = _run(config, tmp_path / "store.db")
    assert out["id"] == 1


@pytest.mark.parametrize("stem", sorted(QUICK))
def test_network_sample_runs_with_a_small_budget(stem, tmp_path):
    _run(SAMPLE_RUNS / f"{stem}.toml", tmp_path / "store.db", QUICK[stem])


def test_lunarlander_with_continuous_throttles(tmp_path):
    shown = _run(SAMPLE_RUNS / "lunarlander_ppo.toml", tmp_path / "store.db", [*QUICK["lunarlander_ppo"], "env.continuous=true"])
    assert shown["status"] == "completed" and shown["summary"]["global_step"] >= 1024


@pytest.mark.parametrize("chain", sorted(LM_CHAINS))
def test_language_model_chain_runs_in_order(chain, tmp_path):
    db = tmp_path / "store.db"
    ids = [_run(SAMPLE_RUNS / f"{stem}.toml", db, overrides)["id"] for stem, overrides in LM_CHAINS[chain].items()]
    assert ids == list(range(1, len(ids) + 1))
    # every later stage names the pretraining run it started from
    shown = [json.loads(rltui_cli("show", str(i), "--json", db=db, check=True).stdout) for i in ids[1:]]
    assert all(s["parent_id"] is not None for s in shown)
