"""The k-armed testbed through the real runner and store: hand-checked first steps, and the shapes of
Sutton & Barto's Figures 2.2-2.5 (who wins, late in the run) on averaged independent testbeds."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from rltui.config import ConfigError, validate_config
from rltui.runner.execute import create_run, execute_run
from rltui.store.models import Metric, Run
from rltui.store.queries import latest_artifact


def play(store, algo: dict, env: dict | None = None, seed: int = 0) -> dict:
    config = validate_config({"seed": seed, "env": {"id": "bandit", **(env or {})}, "algo": algo})
    run_id = create_run(store, config)
    assert execute_run(store, run_id) == "completed"
    with store.read() as session:
        metrics = {key: np.array(list(session.scalars(select(Metric.value).where(Metric.run_id == run_id, Metric.key == key)
                                                      .order_by(Metric.step))))
                   for key in ("reward", "optimal_action", "regret")}
        return {"summary": dict(session.get(Run, run_id).summary), **metrics,
                "q_star": np.array(latest_artifact(session, run_id, "testbed")["q_star"])}


def test_ucb_tries_every_arm_once_first(store):
    # N(a) = 0 makes the bonus infinite: steps 1..k pull each arm once, so over those k steps every
    # run pulls its best arm exactly once (optimal_action sums to 1) and loses Σ_a (max q* - q*(a))
    k = 5
    out = play(store, {"id": "ucb", "steps": 20, "runs": 50}, {"k": k})
    q = out["q_star"]
    assert out["optimal_action"][:k].sum() == pytest.approx(1.0)
    assert out["regret"][:k].sum() == pytest.approx(np.mean(k * q.max(axis=1) - q.sum(axis=1)), abs=1e-12)


def test_greedy_with_one_run_matches_a_hand_replay(store):
    # ε = 0, sample averages: the agent keeps pulling an arm while its estimate stays the largest
    out = play(store, {"id": "epsilon_greedy", "epsilon": 0.0, "steps": 50, "runs": 1}, {"arms": "bernoulli", "k": 3})
    q = out["q_star"][0]
    regret = out["regret"]
    # every step's regret is the gap of one of the three arms, and optimal_action agrees with it
    gaps = q.max() - q
    assert all(np.isclose(r, gaps).any() for r in regret)
    assert np.array_equal(out["optimal_action"] == 1.0, np.isclose(regret, 0.0))


def test_figure_2_2_epsilon_greedy_beats_greedy_late(store):
    greedy = play(store, {"id": "epsilon_greedy", "epsilon": 0.0, "steps": 1000, "runs": 400})
    eps = play(store, {"id": "epsilon_greedy", "epsilon": 0.1, "steps": 1000, "runs": 400})
    late = slice(800, 1000)
    assert eps["optimal_action"][late].mean() > greedy["optimal_action"][late].mean() + 0.2  # ~0.8 vs ~0.35
    assert eps["reward"][late].mean() > greedy["reward"][late].mean()
    assert eps["summary"]["total_regret"] < greedy["summary"]["total_regret"]


def test_figure_2_3_optimistic_greedy_beats_realistic_epsilon_greedy_late(store):
    optimistic = play(store, {"id": "epsilon_greedy", "epsilon": 0.0, "q_init": 5.0, "alpha": 0.1, "steps": 1000, "runs": 400})
    realistic = play(store, {"id": "epsilon_greedy", "epsilon": 0.1, "alpha": 0.1, "steps": 1000, "runs": 400})
    assert optimistic["optimal_action"][:5].mean() < 0.3  # it explores every arm at first
    assert optimistic["optimal_action"][800:].mean() > realistic["optimal_action"][800:].mean()


def test_figure_2_4_ucb_beats_epsilon_greedy_on_reward(store):
    u = play(store, {"id": "ucb", "c": 2.0, "steps": 1000, "runs": 400})
    eps = play(store, {"id": "epsilon_greedy", "epsilon": 0.1, "steps": 1000, "runs": 400})
    assert u["reward"][500:].mean() > eps["reward"][500:].mean()


def test_figure_2_5_gradient_bandit_needs_its_baseline(store):
    # q*(a) ~ N(4, 1): without the baseline every reward pushes the chosen arm's preference up
    with_b = play(store, {"id": "gradient_bandit", "alpha": 0.1, "steps": 1000, "runs": 300}, {"mean": 4.0})
    without = play(store, {"id": "gradient_bandit", "alpha": 0.1, "baseline": False, "steps": 1000, "runs": 300}, {"mean": 4.0})
    assert with_b["optimal_action"][800:].mean() > without["optimal_action"][800:].mean() + 0.2


def test_thompson_sampling_on_bernoulli_arms(store):
    out = play(store, {"id": "thompson", "steps": 1000, "runs": 200}, {"arms": "bernoulli"})
    assert out["optimal_action"][-100:].mean() > 0.6 and out["optimal_action"][:10].mean() < 0.3
    assert np.all(out["q_star"] >= 0) and np.all(out["q_star"] <= 1)


def test_bandit_algorithms_run_only_on_the_bandit():
    with pytest.raises(ConfigError, match="cannot run on 'maze'"):
        validate_config({"env": {"id": "maze"}, "algo": {"id": "ucb"}})
    with pytest.raises(ConfigError, match="cannot run on 'bandit'"):
        validate_config({"env": {"id": "bandit"}, "algo": {"id": "q_learning"}})
