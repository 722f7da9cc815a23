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
    # Optional, for grids: (dest [D, S] intp, which [A, K] ints, p [K] floats) such that outcome k of
    # action a from a non-terminal s goes to dest[which[a, k], s] with probability p[k] (before the
    # merging of equal s'). A sweep then gathers V D times instead of A·K times.
    stencil: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self._r_sa: np.ndarray | None = None
        self._sweep: _SweepPlan | None = None
        self.available = (self.prob.sum(axis=2) > 0) & ~self.terminal[:, None]  # [S, A]
        self._start_states = np.flatnonzero(self.start > 0).tolist() or [0]
        self._start_cum = np.cumsum(self.start[self._start_states]).tolist()
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

    def q_actions_first(self, V: np.ndarray, masked: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """Q as [A, S] = r(s,a) + γ Σ_k prob·V[next_state], in an action-major layout so that
        max_a Q(s,a) is `.max(axis=0)`, a reduction across contiguous rows (numpy reduces a
        [40000, 4] array along its short last axis ~10x slower). `masked`: an unavailable action is
        -inf (never the max); terminal states are 0 whatever V holds. `out`: an [A, S] float64
        array to write Q into."""
        plan = self._plan()
        V = np.asarray(V, dtype=np.float64)
        if out is None:
            out = np.empty((self.n_actions, self.n_states))
        r_as = plan.r_masked if masked else plan.r
        if plan.blocks is not None:
            for lo, hi, Q_block in plan.grid_q(V, r_as):
                out[:, lo:hi] = Q_block
            return out
        # fixed-width successors: gathered[k, a, s] = γ P_k(s,a) · V(s'_k), summed over k
        np.take(V, plan.next_k, out=plan.gathered, mode="clip")  # indices are valid: no checked copy
        plan.gathered *= plan.prob_k
        np.sum(plan.gathered, axis=0, out=out)
        out += r_as
        return out

    def backup_max(self, V: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out(s) = max_a Q(s,a) over available actions (terminal states 0), Q from V as in
        q_actions_first; a grid never holds the whole [A, S] Q, block by block in cache."""
        plan = self._plan()
        V = np.asarray(V, dtype=np.float64)
        if plan.blocks is not None:
            for lo, hi, Q_block in plan.grid_q(V, plan.r_masked):
                Q_block.max(axis=0, out=out[lo:hi])
            return out
        if plan.q is None:
            plan.q = np.empty((self.n_actions, self.n_states))
        return self.q_actions_first(V, masked=True, out=plan.q).max(axis=0, out=out)

    def _plan(self) -> "_SweepPlan":
        if self._sweep is None:
            self._sweep = _SweepPlan.of(self)
        return self._sweep

    def start_value(self, V: np.ndarray) -> float:
        return float(self.start @ V)

    # --- sampled stepping ------------------------------------------------------------------------
    def reset(self, rng: np.random.Generator) -> int:
        i = bisect.bisect_right(self._start_cum, rng.random() * self._start_cum[-1])
        return self._start_states[min(i, len(self._start_states) - 1)]

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


# States per block of a grid's sweep: its [4, GRID_BLOCK] buffers stay in a core's L2 cache, and the
# block's 4x4 by 4xGRID_BLOCK matrix product stays under OpenBLAS's threshold for spreading a product
# over threads (measured on 2 busy cores: 65536 states per block made each sweep 10x slower).
GRID_BLOCK = 16384


@dataclass
class _SweepPlan:
    """What one Bellman backup over all states reads, laid out once per MDP, with the buffers it
    writes (a sweep allocates nothing).

    A grid (it has a stencil) is swept in blocks of GRID_BLOCK states. In a block, G[d, s] =
    V(where a move in direction d from s lands), and Q = r + (γ W) G with W[a, d] the probability
    that action a moves in direction d: one small matrix product. G is not gathered element by
    element: in state order most moves in a direction land a fixed offset away (one row up:
    s - cols), so G[d] is a shifted slice of V, patched where a move does not (a bump, a cliff, a
    wall in between) and at terminal states (they read a trailing zero: Q = 0 there).

    Any other MDP gathers its K outcome slots at once, [K, A, S], weighs them and sums over k."""

    r: np.ndarray  # [A, S] r(s,a); 0 for terminal states
    r_masked: np.ndarray  # r, with -inf where an action is unavailable in a non-terminal state
    gathered: np.ndarray  # [D, GRID_BLOCK] (grid) or [K, A, S] (other): the gathered V
    q: np.ndarray | None = None  # [A, GRID_BLOCK] (grid) or [A, S] (other, for backup_max)
    weights: np.ndarray | None = None  # grid: [A, D] γ·P(direction d | action a)
    v_ext: np.ndarray | None = None  # grid: [S + 1], V and a trailing 0
    # grid: per block (lo, hi, per direction (a, b, src), odd, odd_dest): G[d, a:b] = v_ext[src:src+b-a]
    # (positions local to the block), then gathered.flat[odd] = v_ext[odd_dest]
    blocks: list[tuple[int, int, list[tuple[int, int, int]], np.ndarray, np.ndarray]] | None = None
    next_k: np.ndarray | None = None  # other: [K, A, S] intp
    prob_k: np.ndarray | None = None  # other: [K, A, S] γ·P(s'_k | s, a)

    def grid_q(self, V: np.ndarray, r_as: np.ndarray):
        """Yields (lo, hi, Q[:, lo:hi]) block by block; the block's Q is a buffer reused by the next."""
        v_ext, W, flat = self.v_ext, self.weights, self.gathered.reshape(-1)
        v_ext[:-1] = V
        for lo, hi, shifts, odd, odd_dest in self.blocks:
            G, Q = self.gathered[:, :hi - lo], self.q[:, :hi - lo]
            for d, (a, b, src) in enumerate(shifts):
                G[d, a:b] = v_ext[src:src + b - a]
            flat[odd] = v_ext[odd_dest]  # every direction's patches at once (flat positions in the buffer)
            np.matmul(W, G, out=Q)
            np.add(Q, r_as[:, lo:hi], out=Q)
            yield lo, hi, Q

    @staticmethod
    def grid_blocks(dest: np.ndarray, terminal: np.ndarray) -> list:
        """The `blocks` of a grid from dest[d, s] (see the field)."""
        D, S = dest.shape
        here = np.arange(S)
        per_direction = []
        for d in range(D):
            target = np.where(terminal, S, dest[d])  # a terminal state reads the zero slot
            step = target - here
            values, counts = np.unique(step, return_counts=True)
            offset = int(values[np.argmax(counts)]) if len(values) else 0
            odd = np.flatnonzero(step != offset)
            # the shifted slice may read v_ext[S], the zero slot: a terminal last state lands there
            per_direction.append((offset, max(0, -offset), min(S, S + 1 - offset), odd, target[odd]))
        width = min(S, GRID_BLOCK)  # the row length of the `gathered` buffer
        blocks = []
        for lo in range(0, S, GRID_BLOCK):
            hi = min(S, lo + GRID_BLOCK)
            shifts, odd_at, odd_from = [], [], []
            for d, (offset, first, last, odd, odd_dest) in enumerate(per_direction):
                a, b = max(lo, first), max(min(hi, last), max(lo, first))
                shifts.append((a - lo, b - lo, a + offset))
                i, j = np.searchsorted(odd, [lo, hi])
                odd_at.append(d * width + odd[i:j] - lo)
                odd_from.append(odd_dest[i:j])
            blocks.append((lo, hi, shifts, np.concatenate(odd_at).astype(np.intp), np.concatenate(odd_from).astype(np.intp)))
        return blocks

    @classmethod
    def of(cls, mdp: "TabularMDP") -> "_SweepPlan":
        S, A, K = mdp.prob.shape
        r = np.ascontiguousarray(mdp.expected_reward.T)
        unavailable = (~mdp.available & ~mdp.terminal[:, None]).T
        r_masked = np.where(unavailable, -np.inf, r)
        if mdp.stencil is not None:
            dest, which, p = mdp.stencil
            weights = np.zeros((A, len(dest)))
            for a in range(A):
                for k in range(len(p)):
                    weights[a, which[a, k]] += p[k]
            width = min(S, GRID_BLOCK)
            return cls(r, r_masked, np.empty((len(dest), width)), q=np.empty((A, width)), weights=mdp.gamma * weights,
                       v_ext=np.zeros(S + 1), blocks=cls.grid_blocks(dest, mdp.terminal))
        next_k = np.ascontiguousarray(mdp.next_state.transpose(2, 1, 0), dtype=np.intp)  # [K, A, S]
        prob_k = mdp.gamma * np.ascontiguousarray(mdp.prob.transpose(2, 1, 0))
        return cls(r, r_masked, np.empty(next_k.shape), next_k=next_k, prob_k=prob_k)


def as_tabular(env: Any) -> TabularMDP:
    """What the tabular algorithms run on: a TabularMDP as is, a toy-text env's exact MDP
    (rltui.envs.toy_text: a Gymnasium env that knows its transition table)."""
    mdp = getattr(env, "tabular_mdp", None)
    return mdp() if callable(mdp) else env


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
    allowed_chars = set(MAP_CHARS)
    for i, row in enumerate(rows, 1):
        if len(row) != width:
            raise MapError(f"row {i} has {len(row)} cells but row 1 has {width}; every row must have the same width")
        if not set(row) <= allowed_chars:  # a set per row, not a Python test per cell: maps can be 1000x1000
            j, ch = next((j, ch) for j, ch in enumerate(row, 1) if ch not in MAP_CHARS)
            allowed = ", ".join(f"{c} {w}" for c, w in MAP_CHARS.items())
            raise MapError(f"row {i}, column {j}: unknown character {ch!r}; allowed: {allowed}")
    starts = [(i, j) for i, row in enumerate(rows, 1) if "S" in row for j, ch in enumerate(row, 1) if ch == "S"]
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
    in row-major order, named "(r,c)" (0-based, as in the seed text).

    Built with whole-grid numpy operations (a million cells in about a second): for each of the
    four directions, where a move from every cell lands and what it pays (`_moves`); then each
    action's outcomes are the intended move (1 - slip) and the two perpendicular ones (slip/2
    each); outcomes of one (s, a) reaching the same s' are merged as in `from_outcomes`."""
    rows = validate_map(rows)
    R, C = len(rows), len(rows[0])
    grid = np.frombuffer("".join(rows).encode("ascii"), dtype=np.uint8).reshape(R, C)  # one byte per cell
    is_state = (grid != _CODE["#"]) & (grid != _CODE["C"])
    cell_state = np.full((R, C), -1, dtype=np.int64)
    cell_state[is_state] = np.arange(int(is_state.sum()))
    positions = np.argwhere(is_state)  # [S, 2], row-major
    S = len(positions)
    s0 = int(cell_state.ravel()[int(np.flatnonzero(grid.ravel() == _CODE["S"])[0])])
    kind = grid[is_state]
    terminal = (kind == _CODE["G"]) | (kind == _CODE["H"])

    dest, pay = _moves(grid, positions, cell_state, s0, step_reward, goal_reward, pit_reward, cliff_reward, bump_reward)
    direction = {d: i for i, d in enumerate(GRID_ACTIONS)}
    # outcome k of action a: k = 0 the intended move, k = 1, 2 the perpendicular ones
    which = np.array([[direction[d], *(direction[p] for p in _PERPENDICULAR[d])] for d in GRID_ACTIONS])  # [A, 3]
    next_state = dest[:, which]  # [S, A, 3]
    reward = pay[:, which]
    prob = np.broadcast_to(np.array([1.0 - slip, slip / 2, slip / 2]), next_state.shape).copy()
    prob[terminal] = 0.0
    next_state, prob, reward = _merge_same_next(next_state, prob, reward)
    start = np.zeros(S)
    start[s0] = 1.0
    cells = positions.tolist()
    states = [f"({r},{c})" for r, c in cells]
    layout = {
        "kind": "grid", "rows": R, "cols": C, "map": list(rows), "positions": cells,
        "states": states, "actions": list(GRID_ACTIONS),
    }
    stencil = (np.ascontiguousarray(dest.T, dtype=np.intp), which, np.array([1.0 - slip, slip / 2, slip / 2]))
    return TabularMDP(states=states, actions=list(GRID_ACTIONS), next_state=next_state, prob=prob, reward=reward,
                      terminal=terminal, start=start, gamma=float(gamma), layout=layout, name=name, stencil=stencil)


_CODE = {ch: ord(ch) for ch in MAP_CHARS}


def _moves(grid: np.ndarray, positions: np.ndarray, cell_state: np.ndarray, s0: int, step_reward: float,
           goal_reward: float, pit_reward: float, cliff_reward: float, bump_reward: float) -> tuple[np.ndarray, np.ndarray]:
    """dest[s, d], pay[s, d]: where a move in direction d (GRID_ACTIONS order) from state s lands,
    and its reward. A wall # or the border: stay put, bump_reward; a cliff C: back to the start,
    cliff_reward; a goal G: goal_reward; a pit H: pit_reward; else step_reward."""
    R, C = grid.shape
    S = len(positions)
    # a border of walls around the map: every move from a cell lands on a cell of the padded grid
    padded = np.full((R + 2, C + 2), _CODE["#"], dtype=np.uint8)
    padded[1:-1, 1:-1] = grid
    padded_state = np.full((R + 2, C + 2), -1, dtype=np.int64)
    padded_state[1:-1, 1:-1] = cell_state
    flat = (positions[:, 0] + 1) * (C + 2) + positions[:, 1] + 1
    dest = np.empty((S, 4), dtype=np.int64)
    pay = np.empty((S, 4))
    here = np.arange(S)
    for d, name in enumerate(GRID_ACTIONS):
        dr, dc = _MOVES[name]
        target = flat + dr * (C + 2) + dc
        cell = padded.ravel()[target]
        bump, cliff = cell == _CODE["#"], cell == _CODE["C"]
        dest[:, d] = np.where(bump, here, np.where(cliff, s0, padded_state.ravel()[target]))
        pay[:, d] = np.select([bump, cliff, cell == _CODE["G"], cell == _CODE["H"]],
                              [bump_reward, cliff_reward, goal_reward, pit_reward], step_reward)
    return dest, pay


def _merge_same_next(next_state: np.ndarray, prob: np.ndarray, reward: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge outcomes of one (s, a) that reach the same s' (P added, r the P-weighted mean), drop
    zero-probability outcomes, pack the rest first and cut K to the most any (s, a) keeps. Padding
    has p = 0 and points at the first outcome's s' (a state with no outcome at all: 0)."""
    K = next_state.shape[2]
    for j in range(1, K):
        for i in range(j):
            same = (next_state[:, :, j] == next_state[:, :, i]) & (prob[:, :, i] > 0) & (prob[:, :, j] > 0)
            if not same.any():
                continue
            p_i, p_j = prob[:, :, i][same], prob[:, :, j][same]
            total = p_i + p_j
            reward[:, :, i][same] = (p_i * reward[:, :, i][same] + p_j * reward[:, :, j][same]) / total
            prob[:, :, i][same] = total
            prob[:, :, j][same] = 0.0
    for _ in range(K - 1):  # bubble the p > 0 outcomes to the front, keeping their order
        for t in range(K - 1):
            move = (prob[:, :, t] <= 0) & (prob[:, :, t + 1] > 0)
            if move.any():
                for arr in (next_state, prob, reward):
                    arr[:, :, t][move], arr[:, :, t + 1][move] = arr[:, :, t + 1][move], arr[:, :, t][move]
    keep = max(1, int((prob > 0).sum(axis=2).max(initial=0)))
    next_state, prob, reward = next_state[:, :, :keep], prob[:, :, :keep], reward[:, :, :keep]
    live = prob > 0
    first = np.where(live[:, :, :1], next_state[:, :, :1], 0)
    next_state = np.where(live, next_state, first).astype(np.int32)
    reward = np.where(live, reward, 0.0)
    return np.ascontiguousarray(next_state), np.ascontiguousarray(prob), np.ascontiguousarray(reward)


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
