"""Tabular MDPs M = (S, A, P, r, γ) with exact dynamics, printable and steppable.

Storage is compact so a 200x200 grid (40,000 states) fits: for each (s, a) the outcomes are padded
to K entries,

    next_state[s, a, k]   s'  (int32)
    prob[s, a, k]         P(s'|s,a)   (0 for padding)
    reward[s, a, k]       r(s,a,s')

and a Bellman backup Σ_k prob·(reward + γ V[next_state]) is a few vectorized numpy operations.
Outcomes of one (s, a) that lead to the same s' are merged at construction (probabilities added,
reward = the probability-weighted mean), so r(s,a,s') is one number and the dense P[s,a,s'] and
R[s,a,s'] are exact views of the same MDP.

An action with no outcomes is unavailable in that state. Terminal states have no transitions and
value 0. Sampled stepping: `reset(rng) -> s`, `step(s, a, rng) -> (s', r, terminated)`.

Built-in grids (maze, gridworld, cliff) share one builder. A move into cell X pays:
    wall # or off the map   stay put, `bump_reward`
    cliff C                 back to the start S, `cliff_reward`
    goal G (terminal)       `goal_reward` (instead of the step cost, not in addition to it)
    pit H (terminal)        `pit_reward`
    anything else           `step_reward`
With slip p (FrozenLake-style), the move goes in the intended direction with probability 1-p and to
each of the two perpendicular directions with probability p/2.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

GRID_ACTIONS = ("up", "down", "left", "right")
_MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
_PERPENDICULAR = {"up": ("left", "right"), "down": ("left", "right"), "left": ("up", "down"), "right": ("up", "down")}
MAP_CHARS = {"S": "start", "G": "goal", ".": "free", "#": "wall", "H": "pit", "C": "cliff"}

MAZE_MAP = ("S...", ".#..", "..#.", "...G")
CLIFF_MAP = ("............", "............", "............", "SCCCCCCCCCCG")


@dataclass
class TabularMDP:
    """M = (S, A, P, r, γ) in compact form; see the module docstring."""

    states: list[str]
    actions: list[str]
    next_state: np.ndarray  # [S, A, K] int32
    prob: np.ndarray  # [S, A, K] float64
    reward: np.ndarray  # [S, A, K] float64
    terminal: np.ndarray  # [S] bool
    start: np.ndarray  # [S] float64, a distribution over start states
    gamma: float
    layout: dict[str, Any] = field(default_factory=dict)
    name: str = "tabular"

    def __post_init__(self) -> None:
        self._r_sa: np.ndarray | None = None
        self._sweep: tuple[np.ndarray, ...] | None = None
        self.available = (self.prob.sum(axis=2) > 0) & ~self.terminal[:, None]  # [S, A]
        self._start_cum = np.cumsum(self.start).tolist()
        self._terminal = self.terminal.tolist()
        self._rows: list[list[tuple[list[float], list[int], list[float]]] | None] = [None] * len(self.states)
        if not self.layout:
            self.layout = {"kind": "tabular", "states": list(self.states), "actions": list(self.actions)}

    # --- shape -----------------------------------------------------------------------------------
    @property
    def n_states(self) -> int:
        return len(self.states)

    @property
    def n_actions(self) -> int:
        return len(self.actions)

    @property
    def expected_reward(self) -> np.ndarray:
        """r(s,a) = Σ_s' P(s'|s,a) r(s,a,s'), shape [S, A]."""
        if self._r_sa is None:
            self._r_sa = (self.prob * self.reward).sum(axis=2)
        return self._r_sa

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """(P[s,a,s'], R[s,a,s']) as dense arrays; only for small MDPs (S·A·S floats)."""
        S, A, _ = self.prob.shape
        P = np.zeros((S, A, S))
        R = np.zeros((S, A, S))
        s_idx, a_idx, k_idx = np.nonzero(self.prob)
        sp = self.next_state[s_idx, a_idx, k_idx]
        P[s_idx, a_idx, sp] = self.prob[s_idx, a_idx, k_idx]  # merged: each s' appears once
        R[s_idx, a_idx, sp] = self.reward[s_idx, a_idx, k_idx]
        return P, R

    def outcomes(self, s: int, a: int) -> list[tuple[int, float, float]]:
        """[(s', P(s'|s,a), r(s,a,s')), ...] for one state-action pair."""
        keep = self.prob[s, a] > 0
        return list(zip(self.next_state[s, a][keep].tolist(), self.prob[s, a][keep].tolist(), self.reward[s, a][keep].tolist()))

    # --- Bellman helpers (vectorized) ------------------------------------------------------------
    def q_from_v(self, V: np.ndarray) -> np.ndarray:
        """Q(s,a) = Σ_s' P(s'|s,a) [r(s,a,s') + γ V(s')], shape [S, A]; terminal rows are 0."""
        return self.q_actions_first(V, masked=False).T

    def q_actions_first(self, V: np.ndarray, masked: bool = True) -> np.ndarray:
        """Q as [A, S] = r(s,a) + γ Σ_k prob·V[next_state], computed in an action-major copy of the
        arrays: numpy reduces a [40000, 4] array along its short last axis ~10x slower than a
        [4, 40000] one along the first, so max_a Q(s,a) is `.max(axis=0)` here. `masked`: an
        unavailable action is -inf (never the max); terminal states stay 0."""
        if self._sweep is None:
            next_k = np.ascontiguousarray(self.next_state.transpose(2, 1, 0), dtype=np.intp)  # [K, A, S]
            prob_k = np.ascontiguousarray(self.prob.transpose(2, 1, 0))
            r_as = np.ascontiguousarray(self.expected_reward.T)
            unavailable = (~self.available & ~self.terminal[:, None]).T
            self._sweep = (next_k, prob_k, r_as, np.where(unavailable, -np.inf, r_as))
        next_k, prob_k, r_as, r_as_masked = self._sweep
        expected_next = np.einsum("kas,kas->as", prob_k, V[next_k])  # Σ_s' P(s'|s,a) V(s')
        return (r_as_masked if masked else r_as) + self.gamma * expected_next

    def start_value(self, V: np.ndarray) -> float:
        return float(self.start @ V)

    # --- sampled stepping ------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator) -> int:
        return min(bisect.bisect_right(self._start_cum, rng.random() * self._start_cum[-1]), self.n_states - 1)

    def step(self, s: int, a: int, rng: np.random.Generator) -> tuple[int, float, bool]:
        """Sample s' ~ P(·|s,a); returns (s', r(s,a,s'), terminated)."""
        row = self._rows[s]
        if row is None:  # plain-Python outcome lists per state, built on first visit: stepping is hot
            row = self._rows[s] = [self._outcome_lists(s, b) for b in range(self.n_actions)]
        cum, nexts, rewards = row[a]
        if not nexts:
            raise ValueError(f"action {self.actions[a]!r} is not available in state {self.states[s]!r}")
        k = 0 if len(nexts) == 1 else min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(nexts) - 1)
        s2 = nexts[k]
        return s2, rewards[k], self._terminal[s2]

    def _outcome_lists(self, s: int, a: int) -> tuple[list[float], list[int], list[float]]:
        outs = self.outcomes(s, a) if self.available[s, a] else []
        return list(itertools.accumulate(p for _, p, _ in outs)), [o[0] for o in outs], [o[2] for o in outs]


def from_outcomes(
    states: Sequence[str],
    actions: Sequence[str],
    outcomes: dict[tuple[int, int], list[tuple[int, float, float]]],
    terminal: Sequence[bool] | np.ndarray,
    start: np.ndarray,
    gamma: float,
    layout: dict[str, Any] | None = None,
    name: str = "tabular",
) -> TabularMDP:
    """Build the compact arrays from {(s, a): [(s', p, r), ...]}, merging repeated s'."""
    S, A = len(states), len(actions)
    merged: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
    for key, outs in outcomes.items():
        acc: dict[int, list[tuple[float, float]]] = {}
        for s2, p, r in outs:
            if p > 0:
                acc.setdefault(s2, []).append((p, r))
        if acc:
            merged[key] = [(s2, *_merge(pr)) for s2, pr in acc.items()]
    K = max((len(v) for v in merged.values()), default=1)
    next_state = np.zeros((S, A, K), dtype=np.int32)
    prob = np.zeros((S, A, K))
    reward = np.zeros((S, A, K))
    for (s, a), outs in merged.items():
        for k, (s2, p, r) in enumerate(outs):
            next_state[s, a, k], prob[s, a, k], reward[s, a, k] = s2, p, r
        next_state[s, a, len(outs):] = outs[0][0]  # padding points somewhere valid, with p = 0
    return TabularMDP(
        states=list(states), actions=list(actions), next_state=next_state, prob=prob, reward=reward,
        terminal=np.asarray(terminal, dtype=bool), start=np.asarray(start, dtype=float), gamma=float(gamma),
        layout=layout or {}, name=name,
    )


def _merge(outcomes: list[tuple[float, float]]) -> tuple[float, float]:
    """(P, r) of several outcomes reaching the same s': P = Σ p, r = Σ p r / P (exact r if one)."""
    if len(outcomes) == 1:
        return outcomes[0]
    total = sum(p for p, _ in outcomes)
    return total, sum(p * r for p, r in outcomes) / total


# --- grids ---------------------------------------------------------------------------------------
class MapError(ValueError):
    """A bad ASCII map; the message says where and what is allowed."""


def validate_map(rows: Sequence[str]) -> list[str]:
    """Check an ASCII map; returns its rows. Raises MapError with row/column numbers (1-based)."""
    rows = [r.rstrip("\r\n") for r in rows]
    while rows and not rows[-1].strip():
        rows.pop()
    if not rows or not any(rows):
        raise MapError("the map is empty; give rows such as [\"S..\", \".#G\"]")
    width = len(rows[0])
    for i, row in enumerate(rows, 1):
        if len(row) != width:
            raise MapError(f"row {i} has {len(row)} cells but row 1 has {width}; every row must have the same width")
        for j, ch in enumerate(row, 1):
            if ch not in MAP_CHARS:
                allowed = ", ".join(f"{c} {w}" for c, w in MAP_CHARS.items())
                raise MapError(f"row {i}, column {j}: unknown character {ch!r}; allowed: {allowed}")
    starts = [(i, j) for i, row in enumerate(rows, 1) for j, ch in enumerate(row, 1) if ch == "S"]
    if len(starts) != 1:
        where = "" if not starts else " (at " + ", ".join(f"row {i} column {j}" for i, j in starts) + ")"
        raise MapError(f"the map needs exactly one S (start), found {len(starts)}{where}")
    if not any("G" in row for row in rows):
        raise MapError("the map needs at least one G (goal), found none")
    return rows


def read_map_file(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return fh.read().splitlines()


def grid_mdp(
    rows: Sequence[str],
    *,
    gamma: float,
    slip: float = 0.0,
    step_reward: float = -0.01,
    goal_reward: float = 1.0,
    pit_reward: float = -1.0,
    cliff_reward: float = -100.0,
    bump_reward: float = -0.01,
    name: str = "gridworld",
) -> TabularMDP:
    """A grid MDP from a validated ASCII map. States are the cells that are not walls or cliff,
    in row-major order, named "(r,c)" (0-based, as in the seed text)."""
    rows = validate_map(rows)
    R, C = len(rows), len(rows[0])
    index: dict[tuple[int, int], int] = {}
    positions: list[list[int]] = []
    for r in range(R):
        for c in range(C):
            if rows[r][c] not in "#C":
                index[(r, c)] = len(positions)
                positions.append([r, c])
    start_cell = next((r, c) for r in range(R) for c in range(C) if rows[r][c] == "S")
    s0 = index[start_cell]
    terminal = np.array([rows[r][c] in "GH" for r, c in positions], dtype=bool)

    def move(r: int, c: int, direction: str) -> tuple[int, float]:
        dr, dc = _MOVES[direction]
        r2, c2 = r + dr, c + dc
        if not (0 <= r2 < R and 0 <= c2 < C) or rows[r2][c2] == "#":
            return index[(r, c)], bump_reward
        cell = rows[r2][c2]
        if cell == "C":
            return s0, cliff_reward
        if cell == "G":
            return index[(r2, c2)], goal_reward
        if cell == "H":
            return index[(r2, c2)], pit_reward
        return index[(r2, c2)], step_reward

    outcomes: dict[tuple[int, int], list[tuple[int, float, float]]] = {}
    for s, (r, c) in enumerate(positions):
        if terminal[s]:
            continue
        for a, direction in enumerate(GRID_ACTIONS):
            intended = move(r, c, direction)
            outs = [(intended[0], 1.0 - slip, intended[1])] if slip < 1.0 else []
            if slip > 0:
                for side in _PERPENDICULAR[direction]:
                    s2, rew = move(r, c, side)
                    outs.append((s2, slip / 2, rew))
            outcomes[(s, a)] = outs
    start = np.zeros(len(positions))
    start[s0] = 1.0
    states = [f"({r},{c})" for r, c in positions]
    layout = {
        "kind": "grid", "rows": R, "cols": C, "map": list(rows), "positions": positions,
        "states": states, "actions": list(GRID_ACTIONS),
    }
    return from_outcomes(states, GRID_ACTIONS, outcomes, terminal, start, gamma, layout, name)


def chain_mdp(n: int, *, gamma: float, slip: float = 0.0, step_reward: float = 0.0, goal_reward: float = 1.0) -> TabularMDP:
    """States 0..n-1 in a line, start at 0, state n-1 terminal. `right` moves one step right,
    `left` one step left (at 0 it stays put); with probability `slip` the move goes the other way.
    Reaching n-1 pays `goal_reward`, every other move `step_reward`.

    Closed form with slip = 0 and step_reward = 0: V*(i) = γ^(n-2-i) · goal_reward for i < n-1.
    """
    actions = ("left", "right")
    outcomes: dict[tuple[int, int], list[tuple[int, float, float]]] = {}

    def to(i: int) -> tuple[int, float]:
        j = max(i, 0)
        return j, goal_reward if j == n - 1 else step_reward

    for i in range(n - 1):
        left, right = to(i - 1), to(i + 1)
        outcomes[(i, 0)] = [(left[0], 1.0 - slip, left[1]), (right[0], slip, right[1])]
        outcomes[(i, 1)] = [(right[0], 1.0 - slip, right[1]), (left[0], slip, left[1])]
    terminal = np.zeros(n, dtype=bool)
    terminal[-1] = True
    start = np.zeros(n)
    start[0] = 1.0
    states = [str(i) for i in range(n)]
    layout = {"kind": "chain", "n": n, "states": states, "actions": list(actions)}
    return from_outcomes(states, actions, outcomes, terminal, start, gamma, layout, "chain")


# --- factories (called by the runner with the validated params) ----------------------------------
def make_maze(params: Any) -> TabularMDP:
    """The seeds' 4x4 maze: +1 on reaching G, -0.01 per step, -1 for bumping into a wall or border."""
    return grid_mdp(MAZE_MAP, gamma=params.gamma, slip=params.slip, step_reward=-0.01, goal_reward=1.0,
                    bump_reward=-1.0, name="maze")


def make_gridworld(params: Any) -> TabularMDP:
    rows = params.map if params.map is not None else read_map_file(params.path)
    return grid_mdp(
        rows, gamma=params.gamma, slip=params.slip, step_reward=params.step_reward,
        goal_reward=params.goal_reward, pit_reward=params.pit_reward, cliff_reward=params.cliff_reward,
        bump_reward=params.bump_reward, name="gridworld",
    )


def make_cliff(params: Any) -> TabularMDP:
    """The 4x12 cliff walk (Sutton & Barto, example 6.6): -1 per step (bumping too), -100 and back
    to the start on stepping into the cliff."""
    return grid_mdp(CLIFF_MAP, gamma=params.gamma, slip=params.slip, step_reward=-1.0, goal_reward=-1.0,
                    cliff_reward=-100.0, bump_reward=-1.0, name="cliff")


def make_chain(params: Any) -> TabularMDP:
    return chain_mdp(params.n, gamma=params.gamma, slip=params.slip, step_reward=params.step_reward,
                     goal_reward=params.goal_reward)


def make_custom(params: Any) -> TabularMDP:
    from rltui.envs.mdp_file import load_mdp

    return load_mdp(params.path, gamma=params.gamma)
