"""Tabular family: the MDPs (maze, gridworld, cliff, chain, custom) and the tabular algorithms.

Parameter schemas only (pydantic, numpy-free at import): the TOML loader, the CLI and the TUI forms
are generated from them. Maps and custom MDP files are checked here, at the door, so a bad one is
refused before any run row is written.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from rltui.config import DoorError, Params
from rltui.registry import AlgoSpec, EnvSpec

MAX_MAP_BYTES = 64 * 2**20  # a map file bigger than this is refused before it is read
GRID_BYTES_PER_STATE = 1_000  # the compact (s, a, k) arrays of a grid, their action-major copy and the build's temporaries


class TabularEnvParams(Params):
    """An env of the tabular family: it knows (an upper bound of) its number of states, for the
    memory check at the door and for the one-hot observation of the deep algorithms."""

    def n_states(self) -> int:
        raise NotImplementedError

    def observation_size(self) -> int:
        return self.n_states()

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        return [("id", self.n_states() * GRID_BYTES_PER_STATE)]

# --- envs ----------------------------------------------------------------------------------------
GAMMA_DOC = "discount γ in [0, 1]; part of the MDP M = (S, A, P, r, γ)"
SLIP_DOC = "probability that a move slips to one of the two perpendicular directions (half each)"


class MazeParams(TabularEnvParams):
    gamma: float = Field(0.9, ge=0.0, le=1.0, description=GAMMA_DOC)
    slip: float = Field(0.0, ge=0.0, le=1.0, description=SLIP_DOC)

    def n_states(self) -> int:
        return 14


def _map_error(message: str, source: str = "") -> PydanticCustomError:
    where = f"map file {source}: " if source else ""
    return PydanticCustomError("map", "{msg}", {"msg": where + message})


class GridworldParams(TabularEnvParams):
    gamma: float = Field(0.95, ge=0.0, le=1.0, description=GAMMA_DOC)
    map: list[str] | None = Field(
        None,
        description="rows of the ASCII map: S start, G goal (terminal), . free, # wall, H pit (terminal), "
        "C cliff (back to S); give `map` or `path`",
    )
    path: str | None = Field(None, description="a text file holding the ASCII map (relative to the config file)")
    slip: float = Field(0.0, ge=0.0, le=1.0, description=SLIP_DOC)
    step_reward: float = Field(-0.01, description="reward of an ordinary move")
    goal_reward: float = Field(1.0, description="reward for the move that reaches a G cell (replaces the step reward)")
    pit_reward: float = Field(-1.0, description="reward for falling into a pit H (terminal)")
    cliff_reward: float = Field(-100.0, description="reward for stepping into a cliff cell C (sent back to S)")
    bump_reward: float = Field(-0.01, description="reward for bumping into a wall or the border (the agent stays put)")

    @field_validator("map")
    @classmethod
    def _check_map(cls, rows: list[str] | None) -> list[str] | None:
        if rows is None:
            return rows
        from rltui.envs.tabular import MapError, validate_map

        try:
            return validate_map(rows)
        except MapError as exc:
            raise _map_error(str(exc)) from None

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str | None) -> str | None:
        if path is None:
            return path
        from rltui.envs.tabular import MapError, read_map_file, validate_map

        import os

        try:
            if os.path.isfile(path) and os.path.getsize(path) > MAX_MAP_BYTES:
                raise _map_error(f"the file has {os.path.getsize(path):,} bytes; at most {MAX_MAP_BYTES:,}", path)
            validate_map(read_map_file(path))
        except FileNotFoundError:
            raise _map_error("no such file", path) from None
        except OSError as exc:
            raise _map_error(f"cannot read: {exc.strerror}", path) from None
        except UnicodeDecodeError as exc:
            raise _map_error(f"not valid UTF-8 text (byte {exc.start})", path) from None
        except MapError as exc:
            raise _map_error(str(exc), path) from None
        except ValueError as exc:  # a NUL byte in the path
            raise _map_error(f"not a usable path: {exc}", path[:200]) from None
        return path

    def n_states(self) -> int:
        from rltui.envs.tabular import read_map_file

        rows = self.map if self.map is not None else read_map_file(self.path or "")
        return max(1, sum(len(row) - row.count("#") - row.count("C") for row in rows))

    @model_validator(mode="after")
    def _map_or_path(self) -> "GridworldParams":
        if (self.map is None) == (self.path is None):
            raise PydanticCustomError(
                "map_or_path",
                "give exactly one of `map` (rows inline) or `path` (a map file), not {what}",
                {"what": "both" if self.map is not None else "neither"},
            )
        return self


class CliffParams(TabularEnvParams):
    gamma: float = Field(1.0, ge=0.0, le=1.0, description=GAMMA_DOC)
    slip: float = Field(0.0, ge=0.0, le=1.0, description=SLIP_DOC)

    def n_states(self) -> int:
        return 38


class ChainParams(TabularEnvParams):
    gamma: float = Field(0.9, ge=0.0, le=1.0, description=GAMMA_DOC)
    n: int = Field(7, ge=2, le=100_000, description="number of states; 0 is the start, n-1 the terminal goal")
    slip: float = Field(0.0, ge=0.0, le=1.0, description="probability that a move goes the opposite way")
    step_reward: float = Field(0.0, description="reward of a move that does not reach the goal")
    goal_reward: float = Field(1.0, description="reward of the move that reaches state n-1")

    def n_states(self) -> int:
        return self.n


class CustomParams(TabularEnvParams):
    path: str = Field(..., description="the MDP file (TOML, or JSON for *.json), relative to the config file")
    gamma: float | None = Field(
        None, ge=0.0, le=1.0, description="discount γ in [0, 1]; leave out to use the MDP file's gamma"
    )

    @field_validator("path")
    @classmethod
    def _check_file(cls, path: str) -> str:
        import os

        from rltui.envs.mdp_file import load_mdp

        if not os.path.exists(path):  # a FIFO, a device or a folder: load_mdp says "not a regular file"
            raise PydanticCustomError("mdp_file", "MDP file not found: {path}", {"path": path})
        # A bad file raises ConfigError naming the MDP file and the entry; pydantic lets it through.
        _CUSTOM_STATES[path] = load_mdp(path).n_states
        return path

    def n_states(self) -> int:
        from rltui.envs.mdp_file import load_mdp

        if self.path not in _CUSTOM_STATES:
            _CUSTOM_STATES[self.path] = load_mdp(self.path).n_states
        return _CUSTOM_STATES[self.path]


_CUSTOM_STATES: dict[str, int] = {}  # states of each custom file checked at the door (read it once)


class POMDPParams(Params):
    path: str = Field(..., description="the POMDP file: an MDP file plus observations and observation_probs "
                      "[action, next_state, observation, O(o|s',a)] (relative to the config file)")
    gamma: float | None = Field(None, ge=0.0, le=1.0, description="discount γ in [0, 1]; leave out to use the file's")

    @field_validator("path")
    @classmethod
    def _check_file(cls, path: str) -> str:
        import os

        from rltui.envs.pomdp import load_pomdp

        if not os.path.isfile(path):
            raise PydanticCustomError("pomdp_file", "POMDP file not found: {path}", {"path": path})
        load_pomdp(path)  # a bad file raises ConfigError naming the file and the entry
        return path


class QMDPParams(Params):
    theta: float = Field(1e-10, gt=0.0, description="value iteration on the hidden MDP stops when max|ΔV| < θ")
    max_sweeps: int = Field(10_000, ge=1, le=10_000_000, description="at most this many sweeps")
    episodes: int = Field(200, ge=1, le=1_000_000, description="episodes played on the exact belief")
    max_steps: int = Field(100, ge=1, le=1_000_000, description="an episode is cut after this many steps")


class BlackjackParams(Params):
    gamma: float = Field(1.0, ge=0.0, le=1.0, description=GAMMA_DOC)


class BanditParams(Params):
    k: int = Field(10, ge=2, le=1000, description="number of arms")
    arms: Literal["gaussian", "bernoulli"] = Field(
        "gaussian", description="gaussian: q*(a) ~ N(mean, 1), R ~ N(q*(a), 1); bernoulli: q*(a) ~ U(0, 1), R ∈ {0, 1}")
    mean: float = Field(0.0, ge=-1e6, le=1e6, description="mean of the gaussian testbed's q*(a) (Figure 2.5 uses 4)")


ENVS = [
    EnvSpec("maze", MazeParams, "rltui.envs.tabular:make_maze", "tabular",
            "the seeds' 4x4 maze: +1 at the goal, -0.01 per step, -1 for bumping"),
    EnvSpec("gridworld", GridworldParams, "rltui.envs.tabular:make_gridworld", "tabular",
            "any ASCII map with walls, pits, cliffs, slip and configurable rewards"),
    EnvSpec("cliff", CliffParams, "rltui.envs.tabular:make_cliff", "tabular",
            "the 4x12 cliff walk: -1 per step, -100 and back to start in the cliff"),
    EnvSpec("chain", ChainParams, "rltui.envs.tabular:make_chain", "tabular",
            "an N-state chain, reward at the right end"),
    EnvSpec("custom", CustomParams, "rltui.envs.tabular:make_custom", "tabular",
            "an MDP read from your TOML or JSON file"),
    EnvSpec("pomdp", POMDPParams, "rltui.envs.pomdp:make_pomdp", "pomdp",
            "a tabular POMDP from your file (the Tiger problem: sample_runs/mdps/tiger.toml); agents see observations"),
    EnvSpec("Blackjack-v1", BlackjackParams, "rltui.envs.blackjack:make_blackjack", "episodic",
            "Gymnasium's Blackjack-v1 (S&B example 5.1): sampled episodes, no model; for Monte Carlo"),
    EnvSpec("bandit", BanditParams, "rltui.envs.bandit:make_bandit", "bandit",
            "the k-armed testbed: one state, k arms, a testbed drawn per run from the seed"),
]


# --- algorithms ----------------------------------------------------------------------------------
class DPParams(Params):
    theta: float = Field(1e-8, gt=0.0, description="stop when the largest change of V in a sweep, max|V_k+1 - V_k|, is below theta")
    max_sweeps: int = Field(1000, ge=1, le=10_000_000, description="give up (converged = false) after this many sweeps")
    horizon: int | None = Field(
        None, ge=1, le=100_000, description="if set, the H-step problem by backward induction: a non-stationary "
        "policy π_h for h = 0..H-1 (theta and max_sweeps unused)")

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        from rltui.algos.dynamic_programming import DENSE_LIMIT, V_BUDGET

        S = env.n_states() if isinstance(env, TabularEnvParams) else 0
        dense = 3 * S * S * 8 if S <= DENSE_LIMIT else 0  # policy iteration's linear solves
        per_step = 8 + 32 * S  # π_h and V_h kept for every h (and π_h's names in the artifact)
        horizon = [("horizon", self.horizon * per_step)] if self.horizon is not None else []
        return [("max_sweeps", min(V_BUDGET, S * self.max_sweeps) * 8 + 64 * S + dense), *horizon]


class PolicyEvaluationParams(DPParams):
    policy: Literal["uniform"] | dict[str, str | dict[str, float]] = Field(
        "uniform",
        description='the policy π to evaluate: "uniform" over available actions, or a table state -> action '
        'name or {action = probability}; states left out are uniform',
    )

    def check_with_env(self, env_id: str, env: Params) -> None:
        """A policy table names states and actions of this env, available there, summing to 1."""
        if self.policy == "uniform":
            return
        from rltui import registry
        from rltui.algos.dynamic_programming import policy_from_table

        from rltui.envs.tabular import as_tabular

        mdp = as_tabular(registry.load_callable(registry.env_spec(env_id).factory)(env))
        try:
            policy_from_table(mdp, self.policy)
        except ValueError as exc:
            key, _, message = str(exc).partition(": ")
            raise DoorError(key.removeprefix("algo."), message) from None


class ValueIterationParams(DPParams):
    pass


class PolicyIterationParams(DPParams):
    pass


class TDParams(Params):
    episodes: int = Field(500, ge=1, le=10_000_000, description="training episodes")
    max_steps: int = Field(1000, ge=1, le=1_000_000, description="an episode is cut (truncated, not terminal) after this many steps")
    alpha: float = Field(0.1, gt=0.0, le=1.0, description="step size α")
    alpha_schedule: Literal["constant", "linear", "visits"] = Field(
        "constant",
        description="constant α; linear from alpha to alpha_end over the episodes; visits: α/N(s,a)^alpha_power",
    )
    alpha_end: float = Field(0.01, gt=0.0, le=1.0, description="final α of the linear schedule")
    alpha_power: float = Field(0.8, gt=0.5, le=1.0, description="exponent ω of the visit-count schedule α/N(s,a)^ω")
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="ε of ε-greedy exploration (the start value when scheduled)")
    epsilon_end: float | None = Field(None, ge=0.0, le=1.0, description="if set, ε decays linearly to this value")
    epsilon_fraction: float = Field(0.5, gt=0.0, le=1.0, description="fraction of the episodes over which ε decays")
    temperature: float | None = Field(
        None, gt=0.0, description="if set, Boltzmann exploration π(a|s) ∝ exp(Q(s,a)/τ) instead of ε-greedy"
    )
    ucb_c: float | None = Field(
        None, ge=0.0, le=1e6, description="if set, explore by a UCB bonus instead: greedy in Q(s,a) + c sqrt(ln N(s) / N(s,a))")
    q_init: float = Field(0.0, ge=-1e12, le=1e12, description="initial Q(s,a) for every available action (optimistic when high)")
    eval_every: int = Field(0, ge=0, description="play a greedy evaluation episode every N training episodes (0: only at the end)")
    eval_episodes: int = Field(1, ge=1, le=1000, description="greedy episodes per evaluation (their mean is reported)")

    @model_validator(mode="after")
    def _one_exploration(self) -> "TDParams":
        if self.ucb_c is not None and self.temperature is not None:
            raise DoorError("ucb_c", "give either `ucb_c` (a UCB bonus) or `temperature` (Boltzmann), not both")
        return self

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        # Q and the visit counts N as Python lists of floats/ints: ~80 bytes per (s, a) with their boxes
        S = env.n_states() if isinstance(env, TabularEnvParams) else 0
        return [("episodes", S * 4 * 80)]


class BanditCommon(Params):
    steps: int = Field(1000, ge=1, le=1_000_000, description="steps (pulls) per run")
    runs: int = Field(200, ge=1, le=10_000, description="independent testbeds played side by side and averaged")

    def allocations(self, env: Params | None = None) -> list[tuple[str, int]]:
        k = getattr(env, "k", 10)
        return [("runs", self.runs * k * 8 * 12)]  # q*, Q, N, noise and temporaries, [runs, k] each


class EpsilonGreedyParams(BanditCommon):
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="probability of pulling a random arm")
    q_init: float = Field(0.0, ge=-1e6, le=1e6, description="initial estimate Q_1(a) (optimistic when high, e.g. 5)")
    alpha: float | None = Field(None, gt=0.0, le=1.0, description="constant step size; empty: sample averages 1/N(a)")


class UCBParams(BanditCommon):
    c: float = Field(2.0, ge=0.0, le=1e6, description="exploration weight c of the bonus c sqrt(ln t / N(a))")
    q_init: float = Field(0.0, ge=-1e6, le=1e6, description="initial estimate Q_1(a)")
    alpha: float | None = Field(None, gt=0.0, le=1.0, description="constant step size; empty: sample averages 1/N(a)")


class ThompsonParams(BanditCommon):
    pass


class GradientBanditParams(BanditCommon):
    alpha: float = Field(0.1, gt=0.0, le=100.0, description="step size α of the preferences H(a)")
    baseline: bool = Field(True, description="subtract the mean reward so far, R̄_t, from R_t")


class MonteCarloParams(Params):
    episodes: int = Field(100_000, ge=1, le=100_000_000, description="episodes to learn from")
    max_steps: int = Field(1000, ge=1, le=1_000_000, description="an episode is cut after this many steps")
    visit: Literal["first", "every"] = Field("first", description="first-visit or every-visit returns")
    exploring_starts: bool = Field(
        False, description="start each episode in a random state with a random action, then act greedily "
        "(else ε-soft: ε-greedy from the env's start)")
    epsilon: float = Field(0.1, ge=0.0, le=1.0, description="ε of the ε-soft behaviour (without exploring starts)")


BANDIT = frozenset({"bandit"})
TABULAR = frozenset({"tabular", "toytext"})  # toytext: Gymnasium's FrozenLake, Taxi, CliffWalking as exact MDPs
TD_KINDS = TABULAR | {"pomdp"}  # the TD learners also run on a POMDP's observations, as if they were states
ALGOS = [
    AlgoSpec("policy_evaluation", PolicyEvaluationParams, "rltui.algos.dynamic_programming:policy_evaluation", TABULAR,
             "iterative policy evaluation: V^π by repeated Bellman expectation backups", tags=("dp",)),
    AlgoSpec("value_iteration", ValueIterationParams, "rltui.algos.dynamic_programming:value_iteration", TABULAR,
             "value iteration: V* by repeated Bellman optimality backups", tags=("dp",)),
    AlgoSpec("policy_iteration", PolicyIterationParams, "rltui.algos.dynamic_programming:policy_iteration", TABULAR,
             "policy iteration: evaluate π, improve greedily, repeat until stable", tags=("dp",)),
    AlgoSpec("qmdp", QMDPParams, "rltui.algos.pomdp:qmdp", frozenset({"pomdp"}),
             "QMDP: the hidden MDP's Q* on the exact belief, argmax_a Σ_s b(s) Q(s,a)", tags=("pomdp",)),
    AlgoSpec("q_learning", TDParams, "rltui.algos.td:q_learning", TD_KINDS,
             "Q-learning: off-policy TD control, bootstraps max_a' Q(s',a')", tags=("td",)),
    AlgoSpec("sarsa", TDParams, "rltui.algos.td:sarsa", TD_KINDS,
             "SARSA: on-policy TD control, bootstraps Q(s',a') of the action taken next", tags=("td",)),
    AlgoSpec("expected_sarsa", TDParams, "rltui.algos.td:expected_sarsa", TD_KINDS,
             "Expected SARSA: bootstraps Σ π(a'|s') Q(s',a')", tags=("td",)),
    AlgoSpec("monte_carlo", MonteCarloParams, "rltui.algos.monte_carlo:monte_carlo_control", TABULAR | {"episodic"},
             "Monte Carlo control: first- or every-visit returns, exploring starts or ε-soft", tags=("mc",)),
    AlgoSpec("epsilon_greedy", EpsilonGreedyParams, "rltui.algos.bandits:epsilon_greedy", BANDIT,
             "ε-greedy action values (optimistic with a high q_init)", tags=("bandit",)),
    AlgoSpec("ucb", UCBParams, "rltui.algos.bandits:ucb", BANDIT,
             "upper confidence bound: argmax Q(a) + c sqrt(ln t / N(a))", tags=("bandit",)),
    AlgoSpec("thompson", ThompsonParams, "rltui.algos.bandits:thompson", BANDIT,
             "Thompson sampling from each arm's posterior", tags=("bandit",)),
    AlgoSpec("gradient_bandit", GradientBanditParams, "rltui.algos.bandits:gradient_bandit", BANDIT,
             "softmax preferences H(a) by stochastic gradient ascent, with a reward baseline", tags=("bandit",)),
]
