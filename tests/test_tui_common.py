"""Shared set-up for the TUI tests (no tests here): a fixed registry and a demo store.

The registry fixture swaps in a small, fixed set of specs so that the New-run form and its
snapshots do not change as other families (tabular, control, lm) land; the specs are real pydantic
schemas validated by the real rltui.config.validate_config. Store contents are written through the
real StoreRecorder (rltui.tui.demo) into a real SQLite file.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import pytest
from pydantic import Field

from rltui import registry
from rltui.config import Params
from rltui.registry import AlgoSpec, EnvSpec

FROZEN_NOW = datetime(2026, 1, 5, 10, 0, 0)


def frozen_clock() -> datetime:
    return FROZEN_NOW


class MazeParams(Params):
    gamma: float = Field(0.9, ge=0.0, le=1.0, description="discount γ of the MDP")
    slip: float = Field(0.0, ge=0.0, le=1.0, description="probability that a move slips sideways")


class ChainParams(Params):
    gamma: float = Field(0.95, ge=0.0, le=1.0, description="discount γ of the MDP")
    n: int = Field(7, ge=2, le=1000, description="number of states in the chain")


class CartPoleParams(Params):
    gamma: float = Field(0.99, ge=0.0, le=1.0, description="discount γ of the MDP")


class ValueIterationParams(Params):
    theta: float = Field(1e-8, gt=0.0, description="stop when max |V_{k+1} - V_k| < θ")
    max_sweeps: int = Field(1000, ge=1, description="give up after this many Bellman sweeps")


class QLearningParams(Params):
    episodes: int = Field(500, ge=1, description="training episodes")
    alpha: float = Field(0.5, gt=0.0, le=1.0, description="step size α")
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="ε of the ε-greedy behaviour policy")
    schedule: Literal["constant", "linear", "exponential"] = Field("constant", description="ε schedule")
    double: bool = Field(False, description="double Q-learning")


class PPOParams(Params):
    learning_rate: float = Field(3e-4, gt=0.0, description="Adam learning rate")
    n_steps: int = Field(2048, ge=1, description="steps per rollout")


TEST_ENVS = {
    "maze": EnvSpec("maze", MazeParams, "rltui.envs.tabular:maze", "tabular", "the seeds' 4x4 maze"),
    "chain": EnvSpec("chain", ChainParams, "rltui.envs.tabular:chain", "tabular", "an N-state chain"),
    "cartpole": EnvSpec("cartpole", CartPoleParams, "rltui.envs.control:cartpole", "control", "CartPole-v1"),
}
TEST_ALGOS = {
    "value_iteration": AlgoSpec("value_iteration", ValueIterationParams, "x:y", frozenset({"tabular"}),
                                "exact Bellman optimality sweeps"),
    "q_learning": AlgoSpec("q_learning", QLearningParams, "x:y", frozenset({"tabular"}), "off-policy TD control"),
    "ppo": AlgoSpec("ppo", PPOParams, "x:y", frozenset({"control"}), "clipped policy gradient", uses_torch=True),
}


@pytest.fixture
def test_registry(monkeypatch):
    monkeypatch.setattr(registry, "_gather", lambda: (TEST_ENVS, TEST_ALGOS))
    return registry


@pytest.fixture
def demo_store(store):
    from rltui.tui.demo import populate

    ids = populate(store)
    store.demo_ids = ids
    return store


def make_app(store, **kwargs):
    from rltui.tui.app import RlTuiApp

    kwargs.setdefault("clock", frozen_clock)
    kwargs.setdefault("poll_interval", 0.2)
    return RlTuiApp(store, **kwargs)
