"""Ids → factories and parameter schemas, for every env and algorithm the lab knows.

The TOML loader, the CLI and the TUI's forms are all generated from these schemas (pydantic models).
Factories are named as "module:function" strings and imported only when a run is built, so reading
the registry (the TUI does) never imports torch or gymnasium.

Each family of the lab declares its own specs in rltui/schemas/<family>.py; this module gathers them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:
    from pydantic import BaseModel

# toytext: Gymnasium env + exact MDP; pixels: image observations (MinAtar)
EnvKind = Literal["tabular", "control", "toytext", "bandit", "episodic", "pomdp", "text", "diagnostic", "pixels"]


@dataclass(frozen=True)
class EnvSpec:
    id: str
    params: type[BaseModel]
    factory: str  # "module:function", called as factory(params, base_dir) -> env
    kind: EnvKind
    summary: str = ""


@dataclass(frozen=True)
class AlgoSpec:
    id: str
    params: type[BaseModel]
    entry: str  # "module:function", called as train(env, params, recorder, seed=, device=)
    env_kinds: frozenset[str]  # which env kinds it can run on
    summary: str = ""
    uses_torch: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)


def load_callable(path: str) -> Callable[..., Any]:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


_FAMILIES = ("rltui.schemas.tabular", "rltui.schemas.control", "rltui.schemas.lm", "rltui.schemas.diagnostics")

# Which family declares each id. Only a hint, so that finding one spec imports one family (a worker
# needs just its run's; building every family's pydantic models costs a worker ~0.1 s). An id not
# listed here is still found, by gathering every family; tests/test_launch_path.py checks the hint
# against what the families declare.
_FAMILY_HINT = {
    "rltui.schemas.tabular": (
        "maze", "gridworld", "cliff", "chain", "custom",
        "policy_evaluation", "value_iteration", "policy_iteration", "q_learning", "sarsa", "expected_sarsa",
        "bandit", "epsilon_greedy", "ucb", "thompson", "gradient_bandit", "Blackjack-v1", "monte_carlo",
        "pomdp", "qmdp",
    ),
    "rltui.schemas.diagnostics": ("ticker", "heartbeat_probe"),
    "rltui.schemas.lm": ("lm-reviews", "lm-arithmetic", "lm_pretrain", "reward_model", "lm_ppo", "grpo", "dpo", "best_of_n"),
    "rltui.schemas.control": (
        "CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1", "LunarLander-v3", "FrozenLake-v1",
        "CliffWalking-v1", "Taxi-v4", "MountainCarContinuous-v0", "MinAtar/Breakout-v1", "MinAtar/Asterix-v1",
        "MinAtar/Freeway-v1", "MinAtar/Seaquest-v1", "MinAtar/SpaceInvaders-v1", "ALE/Breakout-v5", "ALE/Pong-v5",
        "ALE/SpaceInvaders-v5", "ALE/Seaquest-v5", "ALE/BeamRider-v5", "ALE/Qbert-v5", "ALE/Enduro-v5",
        "ALE/MsPacman-v5", "dqn", "reinforce", "ppo", "a2c", "sac", "td3",
    ),
}
_FAMILY_OF = {spec_id: family for family, ids in _FAMILY_HINT.items() for spec_id in ids}


@cache
def _family(family: str) -> tuple[dict[str, EnvSpec], dict[str, AlgoSpec]]:
    """The env and algo specs one family module declares (empty for a family not built yet)."""
    try:
        module = importlib.import_module(family)
    except ModuleNotFoundError as exc:
        if exc.name == family:
            return {}, {}
        raise
    return ({spec.id: spec for spec in getattr(module, "ENVS", ())},
            {spec.id: spec for spec in getattr(module, "ALGOS", ())})


@cache
def _gather() -> tuple[dict[str, EnvSpec], dict[str, AlgoSpec]]:
    envs: dict[str, EnvSpec] = {}
    algos: dict[str, AlgoSpec] = {}
    for family in _FAMILIES:
        family_envs, family_algos = _family(family)
        envs.update(family_envs)
        algos.update(family_algos)
    return envs, algos


def envs() -> dict[str, EnvSpec]:
    return _gather()[0]


def algos() -> dict[str, AlgoSpec]:
    return _gather()[1]


def _all_gathered() -> bool:
    """Whether every family is loaded already (then one dict lookup answers). A `_gather` replaced
    by a test's own registry counts as loaded, so lookups agree with it."""
    cache_info = getattr(_gather, "cache_info", None)
    return cache_info is None or cache_info().currsize > 0


def _find(spec_id: str, which: int) -> Any:
    if not _all_gathered():
        family = _FAMILY_OF.get(spec_id)
        spec = _family(family)[which].get(spec_id) if family else None
        if spec is not None:
            return spec
    return _gather()[which].get(spec_id)


def find_env(env_id: str) -> EnvSpec | None:
    """The spec of `env_id` (importing only its family when the hint knows it), or None if unknown."""
    return _find(env_id, 0)


def find_algo(algo_id: str) -> AlgoSpec | None:
    return _find(algo_id, 1)


def env_spec(env_id: str) -> EnvSpec:
    spec = find_env(env_id)
    if spec is None:
        raise KeyError(env_id)
    return spec


def algo_spec(algo_id: str) -> AlgoSpec:
    spec = find_algo(algo_id)
    if spec is None:
        raise KeyError(algo_id)
    return spec
