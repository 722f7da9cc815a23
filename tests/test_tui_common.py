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


def _template(tmp_path_factory, live: bool):
    """The demo store is written once per test process, then copied for each test (it takes seconds)."""
    import json

    from rltui.store import open_store
    from rltui.tui.demo import populate

    path = tmp_path_factory.getbasetemp() / f"demo-template-{'live' if live else 'done'}.db"
    ids_path = path.with_suffix(".json")
    if not ids_path.exists():
        s = open_store(str(path))
        ids = populate(s, live=live)
        with s.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        s.dispose()
        ids_path.write_text(json.dumps(ids))
    return path, json.loads(ids_path.read_text())


def _copy_store(template, db_path):
    import shutil

    from rltui.store import open_store

    shutil.copyfile(template, db_path)
    return open_store(str(db_path))


def _keep_demo_runs_as_they_are(monkeypatch) -> None:
    """The demo's timestamps are pinned in January and its host is "lab": with the runner's default
    heartbeat timeout its `running` run would be marked crashed, and its long-queued run would look
    like a stalled queue that the lab restarts by handing it to a real worker (tests/test_runner.py
    covers that restart); here the demo runs stay as written."""
    from rltui.runner import lifecycle

    monkeypatch.setenv("RLTUI_HEARTBEAT_TIMEOUT", "1e12")
    monkeypatch.setattr(lifecycle, "kick_stalled_queue", lambda store, **options: 0)


@pytest.fixture
def demo_store(tmp_path_factory, db_path, monkeypatch):
    _keep_demo_runs_as_they_are(monkeypatch)
    template, ids = _template(tmp_path_factory, live=False)
    s = _copy_store(template, db_path)
    s.demo_ids = ids
    yield s
    s.dispose()


@pytest.fixture
def live_store(tmp_path_factory, db_path, monkeypatch):
    """The demo store plus one Q-learning run left `running` after 20 episodes."""
    _keep_demo_runs_as_they_are(monkeypatch)
    template, ids = _template(tmp_path_factory, live=True)
    s = _copy_store(template, db_path)
    s.demo_ids = ids
    yield s
    s.dispose()


async def settle(pilot, rounds: int = 2) -> None:
    """Let timers fire and thread workers finish, then let their results paint."""
    from textual.worker import WorkerCancelled

    for _ in range(rounds):
        await pilot.pause()
        try:
            await pilot.app.workers.wait_for_complete()
        except WorkerCancelled:  # an exclusive worker replaced by a newer one
            pass
        await pilot.pause()


def make_app(store, **kwargs):
    from rltui.tui.app import RlTuiApp

    kwargs.setdefault("clock", frozen_clock)
    kwargs.setdefault("poll_interval", 0.2)
    return RlTuiApp(store, **kwargs)


def text_of(widget) -> str:
    """The plain text a Static shows (its content may be a str, a rich Text, Table, Group or Syntax)."""
    import io

    from rich.console import Console
    from rich.text import Text

    content = widget.content
    if isinstance(content, str):
        return content
    if isinstance(content, Text):
        return content.plain
    console = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    console.print(content)
    return console.export_text()
