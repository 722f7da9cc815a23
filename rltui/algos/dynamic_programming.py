"""Exact dynamic programming on a known tabular MDP: policy evaluation, value iteration, policy
iteration. Vectorized numpy: one Bellman sweep over all states is a handful of array operations on
the compact (s, a, k) arrays of TabularMDP.

Conventions shared by the three:
- A sweep is synchronous (Jacobi): V_{k+1} is computed from V_k for every state at once.
- Terminal states have V = 0 and are never backed up; unavailable actions are never chosen.
- "delta" = max_s |V_{k+1}(s) - V_k(s)| is logged per sweep; the loop stops when delta < theta or
  after max_sweeps (then converged = false: e.g. γ = 1 with a policy that never terminates).
- V is stored as the artifact "V" (npy) with step = sweep: V_0 at step 0, then every sweep. For big
  state spaces it is thinned to keep about V_BUDGET floats in the store (every `stride`-th sweep,
  stride = ceil(S · max_sweeps / V_BUDGET)); the last sweep is always stored.
- Policy iteration evaluates each policy exactly: a linear solve of (I - γ P_π) V = r_π (at γ = 1
  on the states that leave their zero-reward closed classes, see `policy_value`), or for big MDPs an
  iteration from V = 0 stopped when the error bound γ·δ/(1-γ) is below θ.
- At γ = 1 the greedy policy breaks ties between Q-maximizing actions towards "proper" ones (that end
  the episode with probability 1): a tie between reaching the goal and bumping into a wall forever
  must not pick the wall (`proper_greedy`). For γ < 1 every greedy policy of V* is optimal.
- At the end: the "tabular" artifact (states, actions, V, Q, greedy policy), the "layout", and one
  evaluation episode (phase "eval") that follows the policy with Q(s,·), π(·|s), V(s) per step.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from rltui.envs.tabular import TabularMDP, as_tabular
from rltui.recorder import Recorder, StepRecord

V_BUDGET = 4_000_000  # floats of V snapshots kept per run (32 MB)


# --- shared pieces -------------------------------------------------------------------------------
def greedy(env: TabularMDP, Q: np.ndarray, prefer: np.ndarray | None = None, tol: float = 1e-12) -> np.ndarray:
    """argmax_a Q(s,a) over available actions; `prefer` keeps an old action when it ties within
    `tol` (so policy iteration cannot flip between equally good actions forever). Terminal: -1."""
    Qm = np.where(env.available, Q, -np.inf)
    best = Qm.argmax(axis=1)
    if prefer is not None:
        keep = (prefer >= 0) & (Qm[np.arange(len(Q)), np.maximum(prefer, 0)] >= Qm.max(axis=1) - tol)
        best = np.where(keep, prefer, best)
    return np.where(env.terminal, -1, best)


def greedy_policy_matrix(env: TabularMDP, actions: np.ndarray) -> np.ndarray:
    """π(a|s) as an [S, A] matrix for a deterministic policy (terminal rows all zero)."""
    pi = np.zeros((env.n_states, env.n_actions))
    live = actions >= 0
    pi[np.flatnonzero(live), actions[live]] = 1.0
    return pi


def uniform_policy(env: TabularMDP) -> np.ndarray:
    counts = env.available.sum(axis=1, keepdims=True)
    return np.divide(env.available, counts, out=np.zeros(env.available.shape), where=counts > 0)


def policy_from_table(env: TabularMDP, table: Any) -> np.ndarray:
    """π(a|s) from "uniform" or {state: action | {action: prob}}; unlisted states are uniform."""
    pi = uniform_policy(env)
    if table == "uniform":
        return pi
    s_index = {n: i for i, n in enumerate(env.states)}
    a_index = {n: i for i, n in enumerate(env.actions)}
    for s_name, spec in table.items():
        if s_name not in s_index:
            raise ValueError(f"algo.policy: unknown state {s_name!r}; states: {', '.join(env.states[:20])}")
        s = s_index[s_name]
        if env.terminal[s]:
            raise ValueError(f"algo.policy: state {s_name!r} is terminal; it has no actions")
        probs = {spec: 1.0} if isinstance(spec, str) else dict(spec)
        row = np.zeros(env.n_actions)
        for a_name, p in probs.items():
            if a_name not in a_index:
                raise ValueError(f"algo.policy.{s_name}: unknown action {a_name!r}; actions: {', '.join(env.actions)}")
            if not env.available[s, a_index[a_name]]:
                raise ValueError(f"algo.policy.{s_name}: action {a_name!r} is not available in state {s_name!r}")
            if not math.isfinite(p) or p < 0:
                raise ValueError(f"algo.policy.{s_name}.{a_name}: a probability must be a finite number ≥ 0, got {p}")
            row[a_index[a_name]] = p
        if abs(row.sum() - 1.0) > 1e-6:
            raise ValueError(f"algo.policy.{s_name}: probabilities sum to {row.sum():.6g}; they must sum to 1")
        pi[s] = row / row.sum()  # exact rows: sampling the evaluation episode needs them
    return pi


def bellman_expectation(env: TabularMDP, V: np.ndarray, pi: np.ndarray) -> np.ndarray:
    # V_{k+1}(s) = Σ_a π(a|s) Σ_s' P(s'|s,a) [r(s,a,s') + γ V_k(s')]
    return (env.q_actions_first(V, masked=False) * pi.T).sum(axis=0)  # Q as [A, S]: Σ_a across rows


def bellman_optimality(env: TabularMDP, V: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    # V_{k+1}(s) = max_a Σ_s' P(s'|s,a) [r(s,a,s') + γ V_k(s')]; terminal states stay 0, unavailable
    # actions are never the max
    return env.backup_max(V, out=np.empty(env.n_states) if out is None else out)


# --- exact evaluation of a policy ----------------------------------------------------------------
DENSE_LIMIT = 3000  # states up to which V^π is a dense linear solve (72 MB of float64 at the limit)


def policy_matrices(env: TabularMDP, pi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """P_π[s, s'] = Σ_a π(a|s) P(s'|s,a) (dense) and r_π(s) = Σ_a π(a|s) r(s,a)."""
    S = env.n_states
    P_pi = np.zeros((S, S))
    weight = pi[:, :, None] * env.prob  # [S, A, K]
    rows = np.broadcast_to(np.arange(S)[:, None, None], weight.shape)
    np.add.at(P_pi, (rows.ravel(), env.next_state.ravel()), weight.ravel())
    return P_pi, (pi * env.expected_reward).sum(axis=1)


def closed_classes(P_pi: np.ndarray) -> np.ndarray:
    """Which states lie in a closed communicating class of the chain P_π (a bottom strongly
    connected component: once there, never out)."""
    src, dst = np.nonzero(P_pi > 0)
    comp, closed = bottom_components(len(P_pi), src, dst)
    return closed[comp]


def bottom_components(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strongly connected components of the graph with edges src -> dst on n nodes (Tarjan's
    algorithm, iterative): (comp[v], closed[c]), closed meaning no edge leaves component c."""
    order = np.argsort(src, kind="stable")
    src, dst = np.asarray(src)[order], np.asarray(dst)[order]
    bounds = np.searchsorted(src, np.arange(n + 1)).tolist()
    targets = dst.tolist()
    index, low, comp = [-1] * n, [0] * n, [-1] * n
    on_stack, stack, counter, n_comp = [False] * n, [], 0, 0
    for root in range(n):
        if index[root] >= 0:
            continue
        work = [(root, bounds[root])]
        while work:
            v, i = work.pop()
            if index[v] < 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack[v] = True
            if i < bounds[v + 1]:
                work.append((v, i + 1))
                w = targets[i]
                if index[w] < 0:
                    work.append((w, bounds[w]))
                elif on_stack[w]:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on_stack[w] = False
                    comp[w] = n_comp
                    if w == v:
                        break
                n_comp += 1
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    comp_arr = np.array(comp, dtype=np.int64)
    closed = np.ones(n_comp, dtype=bool)  # a component with an edge to another one is not closed
    leaving = comp_arr[src] != comp_arr[dst]
    closed[comp_arr[src[leaving]]] = False
    return comp_arr, closed


def policy_value(env: TabularMDP, pi: np.ndarray) -> np.ndarray | None:
    """V^π exactly, from V = r_π + γ P_π V; None where it is not finite (γ = 1 and a closed class
    of the chain that collects non-zero reward forever). Dense: for MDPs up to DENSE_LIMIT states.

    γ < 1: V = (I - γ P_π)^{-1} r_π.
    γ = 1: a closed class (terminal states included) collects only zeros, so V = 0 there; on the
    other, transient states (I - P_TT) is invertible and V_T = (I - P_TT)^{-1} r_T."""
    P_pi, r_pi = policy_matrices(env, pi)
    S = env.n_states
    if env.gamma < 1.0:
        return np.linalg.solve(np.eye(S) - env.gamma * P_pi, r_pi)
    closed = closed_classes(P_pi)
    if np.any(np.abs(r_pi[closed]) > 0.0):
        return None  # Σ of a non-zero reward collected forever: ±∞ (or no limit)
    V = np.zeros(S)
    T = np.flatnonzero(~closed)
    if len(T):
        V[T] = np.linalg.solve(np.eye(len(T)) - P_pi[np.ix_(T, T)], r_pi[T])
    return V


# --- γ = 1: values that diverge ------------------------------------------------------------------
def _edges(env: TabularMDP, use: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst, a, k) of the transitions s -a-> s' with P > 0 over the (s, a) pairs in `use` [S, A]."""
    s_idx, a_idx, k_idx = np.nonzero(use[:, :, None] & (env.prob > 0))
    return s_idx, env.next_state[s_idx, a_idx, k_idx].astype(np.int64), a_idx, k_idx


def _name(env: TabularMDP, states: np.ndarray) -> str:
    start = int(np.argmax(env.start))
    s = start if start in set(states.tolist()) else int(states[0])
    more = f" (and {len(states) - 1} more state{'s' * (len(states) != 2)} it loops through)" if len(states) > 1 else ""
    return f"{env.states[s]!r}{more}"


def never_ending_loops(env: TabularMDP, use: np.ndarray) -> list[np.ndarray]:
    """The loops that never end the episode when only the (s, a) pairs in `use` [S, A] are taken:
    the closed classes (bottom strongly connected components) holding no terminal state. They lie
    among the states that cannot reach a terminal state at all (a backward search, vectorized), a
    set closed under those pairs, so Tarjan's algorithm runs on that set only, often empty."""
    layer, _ = _backward_layers(env, use & ~env.terminal[:, None], env.prob > 0)
    stuck = np.flatnonzero((layer < 0) & ~env.terminal)
    if not len(stuck):
        return []
    local = np.full(env.n_states, -1)
    local[stuck] = np.arange(len(stuck))
    inside = np.zeros((env.n_states, env.n_actions), dtype=bool)
    inside[stuck] = use[stuck]
    src, dst, _, _ = _edges(env, inside)
    comp, closed = bottom_components(len(stuck), local[src], local[dst])
    order = np.argsort(comp, kind="stable")
    bounds = np.searchsorted(comp[order], np.arange(len(closed) + 1))
    return [stuck[order[bounds[c]:bounds[c + 1]]] for c in np.flatnonzero(closed).tolist()]


def earns_forever(env: TabularMDP, pi: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(the states, the gain) of a closed class of the chain of π (a loop that never ends the
    episode) whose average reward per step, its gain, is positive, if π has one; else None. At
    γ = 1 such a policy's value, and so V*, is +∞ there.

    The gain of an irreducible class C is μ·r_π with μ its stationary distribution, μ > 0 on C:
    from μ (P_C - I) = 0, Σ μ = 1 for classes up to DENSE_LIMIT states; a bigger one counts where
    r_π ≥ 0 on it with some r_π > 0 (then the gain is positive but not computed: nan)."""
    use = (pi > 0) & env.available
    r_pi = (np.where(use, pi, 0.0) * env.expected_reward).sum(axis=1)
    best: tuple[np.ndarray, float] | None = None
    for C in never_ending_loops(env, use):
        r = r_pi[C]
        if r.max() <= 0.0:
            continue
        if len(C) <= DENSE_LIMIT:
            src, dst, a_idx, k_idx = _edges(env, np.isin(np.arange(env.n_states), C)[:, None] & use)
            where = np.full(env.n_states, -1)
            where[C] = np.arange(len(C))
            P_C = np.zeros((len(C), len(C)))
            np.add.at(P_C, (where[src], where[dst]), pi[src, a_idx] * env.prob[src, a_idx, k_idx])
            A = P_C.T - np.eye(len(C))
            A[-1] = 1.0  # μ (P_C - I) = 0 with one equation traded for Σ μ = 1
            b = np.zeros(len(C))
            b[-1] = 1.0
            gain = float(np.linalg.solve(A, b) @ r)
            if gain <= 1e-12 * (1.0 + float(np.abs(r).max())):
                continue
        elif r.min() >= 0.0:
            gain = math.nan
        else:
            continue
        if best is None or math.isnan(best[1]) or gain > best[1]:
            best = (C, gain)
    return best


def pays_forever(env: TabularMDP, change: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(the states, the bound) of a set closed under every available action (no action ever ends
    the episode) in which the last sweep lowered every value, if there is one. At γ = 1 each later
    sweep lowers them at least as much: restricted to a closed set the Bellman operator T is
    monotone and shifts with constants, so V_k+1 = T V_k <= T(V_k-1 + m) = V_k + m with m = max ΔV
    over the set < 0. V* is -∞ there: even the best policy loses at least |m| per step."""
    worst: tuple[np.ndarray, float] | None = None
    for C in never_ending_loops(env, env.available):
        m = float(change[C].max())
        if m < 0.0 and (worst is None or m < worst[1]):
            worst = (C, m)
    return worst


def divergence_message(env: TabularMDP, V: np.ndarray, change: np.ndarray) -> str | None:
    """At γ = 1, after sweeps that did not converge: why, where the values provably diverge (a
    greedy policy that earns reward forever, or a trap where every policy pays forever); None
    where neither is shown."""
    if env.gamma != 1.0 or not len(V):
        return None
    # where no value rose, none can rise later (T is monotone: V_k+1 <= V_k gives V_k+2 <= V_k+1)
    found = earns_forever(env, greedy_policy_matrix(env, greedy(env, env.q_from_v(V)))) if change.max() > 0 else None
    if found is not None:
        C, gain = found
        rate = "a positive reward" if math.isnan(gain) else f"{gain:+.6g}"
        return (f"the values diverge at γ = 1 because a policy can earn reward forever: from state {_name(env, C)} "
                f"the greedy policy never ends the episode and earns {rate} per step on average, so V grows "
                f"without bound; use γ < 1 or a horizon, or make that loop end")
    trapped = pays_forever(env, change) if change.min() < 0 else None
    if trapped is not None:
        C, m = trapped
        return (f"the values diverge to -∞ at γ = 1: from state {_name(env, C)} no action ever ends the episode, "
                f"and even the best policy loses at least {-m:.6g} per step there; use γ < 1 or a horizon, or "
                f"give that state a way out")
    return None


def unbounded_policy_message(env: TabularMDP, pi: np.ndarray, iteration: int) -> str | None:
    """Policy iteration at γ = 1, when the policy it evaluates has no finite value: why."""
    if env.gamma != 1.0:
        return None
    found = earns_forever(env, pi)
    if found is not None:
        C, gain = found
        rate = "a positive reward" if math.isnan(gain) else f"{gain:+.6g}"
        return (f"the values diverge at γ = 1 because a policy can earn reward forever: from state {_name(env, C)} "
                f"policy iteration's policy (iteration {iteration}) never ends the episode and earns {rate} per step "
                f"on average, so V* is unbounded; use γ < 1 or a horizon, or make that loop end")
    r_pi = (pi * env.expected_reward).sum(axis=1)
    paying = [C for C in never_ending_loops(env, (pi > 0) & env.available) if np.any(r_pi[C] != 0.0)]
    if not paying:
        return None
    C = paying[0]
    return (f"policy iteration stopped at iteration {iteration}: at γ = 1 the policy it evaluates has no finite value; "
            f"from state {_name(env, C)} it never ends the episode and collects non-zero reward forever; use γ < 1 "
            f"or a horizon")


def report_divergence(summary: dict[str, Any], message: str | None, algo: str) -> dict[str, Any]:
    """The run's one line on why it did not converge: in the summary ("diverged") and the log."""
    if message is not None:
        summary["diverged"] = message
        print(f"{algo}: {message}", file=sys.stderr, flush=True)
    return summary


# --- greedy policies that end the episode ---------------------------------------------------------
def proper_greedy(env: TabularMDP, Q: np.ndarray, tol: float) -> np.ndarray:
    """A greedy action per state (terminal: -1) that, among the actions within `tol` of max_a Q(s,a),
    prefers ones under which the episode ends with probability 1 where such a choice exists.

    Almost-sure reachability of the terminal states using tied actions only: W starts as every
    state; repeatedly keep the tied actions whose outcomes all stay in W, and shrink W to the states
    that reach a terminal state with positive probability through them (a backward breadth-first
    search, layer by layer). At the fixed point each state of W takes a kept action with an outcome
    one layer closer to the end: from every state, the end is reached with positive probability
    within |layers| steps, hence with probability 1. Other states take the first tied action."""
    Qm = np.where(env.available, Q, -np.inf)
    top = Qm.max(axis=1, initial=-np.inf)
    tied = env.available & (Qm >= top[:, None] - tol)
    fallback = np.where(env.terminal, -1, Qm.argmax(axis=1))
    nonzero = env.prob > 0
    in_w = np.ones(env.n_states, dtype=bool)
    while True:
        stays = tied & np.where(nonzero, in_w[env.next_state], True).all(axis=2) & in_w[:, None]
        layer, choice = _backward_layers(env, stays & ~env.terminal[:, None], nonzero)
        reached = layer >= 0
        if np.array_equal(reached, in_w):
            break
        in_w = reached
    return np.where(reached & ~env.terminal, choice, fallback)


def _backward_layers(env: TabularMDP, usable: np.ndarray, nonzero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breadth-first search backwards from the terminal states over the edges s -a-> s' of usable
    (s, a) pairs: layer[s] = fewest such steps to a terminal state with positive probability
    (-1: none), choice[s] = the action of the edge that found s. Vectorized per layer."""
    s_idx, a_idx, k_idx = np.nonzero(usable[:, :, None] & nonzero)
    dst = env.next_state[s_idx, a_idx, k_idx]
    order = np.argsort(dst, kind="stable")
    src, act, dst = s_idx[order], a_idx[order], dst[order]
    starts = np.searchsorted(dst, np.arange(env.n_states))
    ends = np.searchsorted(dst, np.arange(env.n_states), side="right")
    layer = np.full(env.n_states, -1, dtype=np.int64)
    choice = np.full(env.n_states, -1, dtype=np.int64)
    frontier = np.flatnonzero(env.terminal)
    layer[frontier] = 0
    depth = 0
    while len(frontier):
        depth += 1
        counts = ends[frontier] - starts[frontier]
        total = int(counts.sum())
        if total == 0:
            break
        offsets = np.repeat(starts[frontier] - np.cumsum(counts) + counts, counts) + np.arange(total)
        cand, cand_act = src[offsets], act[offsets]
        new = layer[cand] < 0
        cand, cand_act = cand[new], cand_act[new]
        frontier, first = np.unique(cand, return_index=True)
        layer[frontier] = depth
        choice[frontier] = cand_act[first]
    return layer, choice


def tie_tolerance(V: np.ndarray, theta: float) -> float:
    """Q values within this of the best count as tied (the solve or the sweeps are exact to ~θ)."""
    scale = 1.0 + (float(np.max(np.abs(V))) if len(V) else 0.0)
    return max(1e-9, 10.0 * theta) * scale


class _Sweeps:
    """Counts sweeps across calls, logs delta, stores thinned V snapshots, reports progress."""

    def __init__(self, env: TabularMDP, recorder: Recorder, max_sweeps: int) -> None:
        self.recorder, self.max_sweeps, self.count = recorder, max_sweeps, 0
        self.stride = max(1, math.ceil(env.n_states * max_sweeps / V_BUDGET))
        self.last_stored = -1

    def start(self, V: np.ndarray) -> None:
        self.recorder.artifact("V", V.copy(), step=0)
        self.last_stored = 0

    def done(self, V: np.ndarray, delta: float) -> None:
        self.count += 1
        self.recorder.log(self.count, delta=delta)
        if self.count % self.stride == 0:
            self.recorder.artifact("V", V.copy(), step=self.count)
            self.last_stored = self.count
        if self.count % 16 == 0:
            self.recorder.progress(self.count / self.max_sweeps)

    def finish(self, V: np.ndarray) -> None:
        if self.last_stored != self.count:
            self.recorder.artifact("V", V.copy(), step=self.count)

    @property
    def exhausted(self) -> bool:
        return self.count >= self.max_sweeps


def evaluate(env: TabularMDP, pi: np.ndarray, V: np.ndarray, theta: float, sweeps: _Sweeps, recorder: Recorder) -> tuple[np.ndarray, bool]:
    """Iterative policy evaluation from V until delta < theta; returns (V, converged)."""
    while not sweeps.exhausted:
        V_new = bellman_expectation(env, V, pi)
        delta = float(np.max(np.abs(V_new - V))) if len(V) else 0.0
        V = V_new
        sweeps.done(V, delta)
        if not math.isfinite(delta):
            return V, False
        if delta < theta:
            return V, True
        if recorder.should_stop():
            break
    return V, False


def evaluate_exactly(env: TabularMDP, pi: np.ndarray, V_old: np.ndarray, theta: float, sweeps: _Sweeps,
                     recorder: Recorder) -> tuple[np.ndarray, bool]:
    """(V^π, exact): a linear solve up to DENSE_LIMIT states (one logged "sweep", delta = the change
    from V_old); beyond, sweeps from V = 0 (never from the previous policy's V, which a zero-reward
    loop would keep forever) until ||V - V^π|| ≤ γδ/(1-γ) < θ. At γ = 1 the big-MDP sweeps stop at
    δ < θ, which bounds nothing: reported as not exact."""
    if env.n_states <= DENSE_LIMIT:
        V = policy_value(env, pi)
        if V is not None:
            sweeps.done(V, float(np.max(np.abs(V - V_old))) if len(V) else 0.0)
            return V, True
        V, _ = evaluate(env, pi, np.zeros(env.n_states), theta, sweeps, recorder)
        return V, False  # no finite value: report what max_sweeps sweeps gave
    gamma = env.gamma
    bound = theta * (1.0 - gamma) / gamma if 0.0 < gamma < 1.0 else theta
    V, converged = evaluate(env, pi, np.zeros(env.n_states), bound, sweeps, recorder)
    return V, converged and gamma < 1.0


def finish(env: TabularMDP, V: np.ndarray, pi: np.ndarray, actions: np.ndarray, recorder: Recorder, seed: int,
           sweeps: _Sweeps) -> dict[str, Any]:
    """Store final V, Q, the policy's actions and the layout; play one evaluation episode following `pi`."""
    sweeps.finish(V)
    Q = env.q_from_v(V)
    recorder.artifact("tabular", tabular_artifact(env, V, Q, actions))
    recorder.artifact("layout", env.layout)
    ret, length = play_episode(env, pi, Q, V, recorder, np.random.default_rng(seed), index=0)
    return {"V_start": env.start_value(V), "eval_return": ret, "eval_length": length}


def tabular_artifact(env: TabularMDP, V: np.ndarray, Q: np.ndarray, actions: np.ndarray) -> dict[str, Any]:
    """The contract's "tabular" artifact. Q of an unavailable action is null, and so is every Q of a
    terminal state (no action is taken there); V of a terminal state is 0."""
    q_rows: list[list[float | None]] = Q.tolist()  # one C-level conversion, then the nulls patched in
    for s in np.flatnonzero(env.terminal).tolist():
        q_rows[s] = [None] * env.n_actions
    for s, a in zip(*(ix.tolist() for ix in np.nonzero(~env.available & ~env.terminal[:, None]))):
        q_rows[s][a] = None
    names = list(env.actions)
    return {
        "states": list(env.states),
        "actions": names,
        "V": np.asarray(V, dtype=float).tolist(),
        "Q": q_rows,
        "policy": [None if a < 0 else names[a] for a in np.asarray(actions).tolist()],
    }


def q_list(env: TabularMDP, Q: np.ndarray, s: int) -> list[float | None]:
    return [float(Q[s, a]) if env.available[s, a] else None for a in range(env.n_actions)]


def play_episode(env: TabularMDP, pi: np.ndarray, Q: np.ndarray, V: np.ndarray, recorder: Recorder,
                 rng: np.random.Generator, index: int, max_steps: int | None = None) -> tuple[float, int]:
    """One episode following π(·|s) (phase "eval"), recorded with Q(s,·), π(·|s), V(s) per step.
    The return is undiscounted, the sum of rewards, as episode returns are everywhere in the lab."""
    max_steps = max_steps or min(10_000, 4 * env.n_states + 100)
    s = env.reset(rng)
    steps: list[StepRecord] = []
    ret, t, done = 0.0, 0, False
    while not done and t < max_steps:
        a = int(rng.choice(env.n_actions, p=pi[s]))
        s2, r, done = env.step(s, a, rng)
        steps.append(StepRecord(t, s, a, r, done, {"Q": q_list(env, Q, s), "pi": pi[s].tolist(), "V": float(V[s])}))
        ret += r
        s, t = s2, t + 1
    recorder.episode(index, ret, t, phase="eval", steps=steps if recorder.wants_trajectory(index, "eval") else None)
    return ret, t


# --- finite horizon -------------------------------------------------------------------------------
def backward_induction(env: TabularMDP, horizon: int, recorder: Recorder, seed: int,
                       pi: np.ndarray | None = None) -> dict[str, Any]:
    """The H-step problem exactly: V_H = 0 and, for h = H-1 down to 0,

        Q_h(s,a) = Σ_s' P(s'|s,a) [r(s,a,s') + γ V_{h+1}(s')]
        V_h(s)   = max_a Q_h(s,a), π_h(s) = argmax_a Q_h(s,a)    (pi given: V_h = Σ_a π(a|s) Q_h(s,a))

    The optimal policy is non-stationary: π_h depends on the steps left, H - h. V with k steps left
    is stored as "V" at step k (the slider steps over h); π_h for every h as "policy_h"; the tabular
    artifact holds V_0, Q_0 and π_0; the evaluation episode follows π_0, π_1, ... for at most H steps."""
    V = np.zeros(env.n_states)
    values = [V]  # values[k] = V with k steps left, V_{H-k}
    recorder.artifact("V", V.copy(), step=0)
    stride = max(1, math.ceil(env.n_states * horizon / V_BUDGET))
    policies: list[np.ndarray] = []
    for k in range(1, horizon + 1):
        Q = env.q_from_v(V)  # Q_{H-k}
        policies.append(greedy(env, Q))
        V = (pi * Q).sum(axis=1) if pi is not None else np.where(env.available, Q, -np.inf).max(axis=1, initial=-np.inf)
        V = np.where(env.terminal, 0.0, V)
        values.append(V)
        if k % stride == 0 or k == horizon:
            recorder.artifact("V", V.copy(), step=k)
        if k % 16 == 0:
            recorder.progress(k / horizon)
        if recorder.should_stop():
            break
    policies.reverse()  # policies[h] = π_h, with H - h steps left
    recorder.artifact("policy_h", {"horizon": horizon, "states": list(env.states),
                                   "policy": [[None if a < 0 else env.actions[a] for a in acts] for acts in policies]})
    recorder.artifact("tabular", tabular_artifact(env, V, Q, policies[0]))
    recorder.artifact("layout", env.layout)
    ret, length = play_nonstationary(env, policies, pi, values, recorder, np.random.default_rng(seed))
    return {"horizon": horizon, "sweeps": len(policies), "converged": len(policies) == horizon,
            "V_start": env.start_value(V), "eval_return": ret, "eval_length": length}


def play_nonstationary(env: TabularMDP, policies: list[np.ndarray], pi: np.ndarray | None, values: list[np.ndarray],
                       recorder: Recorder, rng: np.random.Generator) -> tuple[float, int]:
    """One evaluation episode of at most H steps: π_h at step h (or the fixed π being evaluated),
    recorded with π(·|s), V_h(s) and h per step."""
    H = len(policies)
    s, ret, t, done = env.reset(rng), 0.0, 0, False
    steps: list[StepRecord] = []
    while not done and t < H:
        if pi is not None:
            probs = pi[s]
        else:
            probs = np.zeros(env.n_actions)
            probs[policies[t][s]] = 1.0
        a = int(rng.choice(env.n_actions, p=probs))
        s2, r, done = env.step(s, a, rng)
        steps.append(StepRecord(t, s, a, r, done, {"pi": probs.tolist(), "V": float(values[H - t][s]), "h": t}))
        ret += r
        s, t = s2, t + 1
    recorder.episode(0, ret, t, phase="eval", steps=steps if recorder.wants_trajectory(0, "eval") else None)
    return ret, t


# --- the algorithms ------------------------------------------------------------------------------
def optimal_actions(env: TabularMDP, V: np.ndarray, theta: float) -> np.ndarray:
    """A greedy action per state in Q = q_from_v(V); at γ = 1 one whose policy ends the episode
    where any tied one does (an improper greedy policy can be worse than V* there)."""
    Q = env.q_from_v(V)
    if env.gamma < 1.0:
        return greedy(env, Q)
    return proper_greedy(env, Q, tie_tolerance(V, theta))


def policy_evaluation(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    """V^π for a fixed policy π by iterating the Bellman expectation backup."""
    env = as_tabular(env)
    pi = policy_from_table(env, params.policy)
    if params.horizon is not None:
        return backward_induction(env, params.horizon, recorder, seed, pi)
    sweeps = _Sweeps(env, recorder, params.max_sweeps)
    V = np.zeros(env.n_states)
    sweeps.start(V)
    V, converged = evaluate(env, pi, V, params.theta, sweeps, recorder)
    actions = optimal_actions(env, V, params.theta)  # the improvement step: greedy in Q^π
    return {"sweeps": sweeps.count, "converged": converged, **finish(env, V, pi, actions, recorder, seed, sweeps)}


def value_iteration(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    """V* by iterating the Bellman optimality backup; π* is greedy in Q* (proper at γ = 1)."""
    env = as_tabular(env)
    if params.horizon is not None:
        return backward_induction(env, params.horizon, recorder, seed)
    sweeps = _Sweeps(env, recorder, params.max_sweeps)
    V = np.zeros(env.n_states)
    sweeps.start(V)
    converged = False
    # buffers for the whole run: the next V and |ΔV|; V and V_new swap roles each sweep
    V_new, change = np.empty(env.n_states), np.empty(env.n_states)
    diverged: str | None = None
    check_at, delta_half, stopped = 16, math.inf, False
    while not sweeps.exhausted:
        bellman_optimality(env, V, out=V_new)
        np.abs(np.subtract(V_new, V, out=change), out=change)
        delta = float(change.max()) if len(V) else 0.0
        V, V_new = V_new, V  # V_new now holds V_k-1
        sweeps.done(V, delta)
        if delta < params.theta:
            converged = True
            break
        if not math.isfinite(delta) or recorder.should_stop():
            stopped = True
            break
        # γ = 1: a max|ΔV| that stopped shrinking may be values growing without bound; look at
        # sweeps 16, 32, 64, ... where it has not halved since half as many sweeps
        if env.gamma == 1.0 and sweeps.count == check_at // 2:
            delta_half = delta
        elif env.gamma == 1.0 and sweeps.count == check_at:
            check_at *= 2
            if delta > 0.5 * delta_half:
                diverged = divergence_message(env, V, V - V_new)
                if diverged is not None:
                    break
    if not converged and not stopped and diverged is None:
        diverged = divergence_message(env, V, V - V_new)
    actions = optimal_actions(env, V, params.theta)
    pi = greedy_policy_matrix(env, actions)
    summary = {"sweeps": sweeps.count, "converged": converged, **finish(env, V, pi, actions, recorder, seed, sweeps)}
    return report_divergence(summary, diverged, "value_iteration")


def policy_iteration(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    """Start from the uniform random policy; evaluate it exactly (evaluate_exactly), make it greedy in
    Q^π keeping the current action wherever it is among the best, repeat until no action changes.
    Converged means: the stored V is the stored policy's own value and that policy is greedy in it.
    Sweeps count evaluations (a linear solve counts one) plus any iterative evaluation sweeps.
    With a horizon H the optimal H-step policy comes by backward induction, as for value iteration."""
    env = as_tabular(env)
    if params.horizon is not None:
        return backward_induction(env, params.horizon, recorder, seed)
    sweeps = _Sweeps(env, recorder, params.max_sweeps)
    V = np.zeros(env.n_states)
    sweeps.start(V)
    pi = uniform_policy(env)
    actions = np.full(env.n_states, -1)
    iterations, converged, diverged = 0, False, None
    while not sweeps.exhausted:
        V, exact = evaluate_exactly(env, pi, V, params.theta, sweeps, recorder)
        if not exact:
            diverged = unbounded_policy_message(env, pi, iterations)
            break
        # policy improvement: π'(s) = argmax_a Σ_s' P(s'|s,a) [r(s,a,s') + γ V^π(s')], the old action on ties
        Q = env.q_from_v(V)
        tol = tie_tolerance(V, params.theta)
        new_actions = greedy(env, Q, prefer=actions, tol=tol)
        if env.gamma == 1.0:  # where the old action is not among the best, pick a proper one
            proper = proper_greedy(env, Q, tol)
            new_actions = np.where(new_actions == actions, actions, proper)
        changed = int(np.sum(new_actions != actions))
        iterations += 1
        recorder.log(sweeps.count, policy_changes=changed)
        if changed == 0:
            converged = True
            break
        actions, pi = new_actions, greedy_policy_matrix(env, new_actions)
        if recorder.should_stop():
            break
    if not converged and np.all(actions < 0):  # stopped before any improvement: report π's greedy step
        actions = optimal_actions(env, V, params.theta)
    summary = {"sweeps": sweeps.count, "iterations": iterations, "converged": converged,
               **finish(env, V, pi, actions, recorder, seed, sweeps)}
    return report_divergence(summary, diverged, "policy_iteration")
