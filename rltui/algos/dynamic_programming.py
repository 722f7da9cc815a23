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
- At the end: the "tabular" artifact (states, actions, V, Q, greedy policy), the "layout", and one
  evaluation episode (phase "eval") that follows the policy with Q(s,·), π(·|s), V(s) per step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rltui.envs.tabular import TabularMDP
from rltui.recorder import Recorder, StepRecord

V_BUDGET = 4_000_000  # floats of V snapshots kept per run (32 MB)


# --- shared pieces -------------------------------------------------------------------------------
def greedy(env: TabularMDP, Q: np.ndarray, prefer: np.ndarray | None = None) -> np.ndarray:
    """argmax_a Q(s,a) over available actions; `prefer` keeps an old action when it ties (so
    policy iteration cannot flip between equally good actions forever). Terminal states: -1."""
    Qm = np.where(env.available, Q, -np.inf)
    best = Qm.argmax(axis=1)
    if prefer is not None:
        keep = (prefer >= 0) & (Qm[np.arange(len(Q)), np.maximum(prefer, 0)] >= Qm.max(axis=1) - 1e-12)
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
            if p < 0:
                raise ValueError(f"algo.policy.{s_name}.{a_name}: negative probability {p}")
            row[a_index[a_name]] = p
        if abs(row.sum() - 1.0) > 1e-6:
            raise ValueError(f"algo.policy.{s_name}: probabilities sum to {row.sum():.6g}; they must sum to 1")
        pi[s] = row / row.sum()  # exact rows: sampling the evaluation episode needs them
    return pi


def bellman_expectation(env: TabularMDP, V: np.ndarray, pi: np.ndarray) -> np.ndarray:
    # V_{k+1}(s) = Σ_a π(a|s) Σ_s' P(s'|s,a) [r(s,a,s') + γ V_k(s')]
    return (pi * env.q_from_v(V)).sum(axis=1)


def bellman_optimality(env: TabularMDP, V: np.ndarray) -> np.ndarray:
    # V_{k+1}(s) = max_a Σ_s' P(s'|s,a) [r(s,a,s') + γ V_k(s')]; terminal states stay 0
    return env.q_actions_first(V, masked=True).max(axis=0)  # Q as [A, S]: unavailable = -inf


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
    """Iterative policy evaluation from V until delta < theta; returns (V^π, converged)."""
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


def finish(env: TabularMDP, V: np.ndarray, pi: np.ndarray, recorder: Recorder, seed: int, sweeps: _Sweeps) -> dict[str, Any]:
    """Store final V, Q, greedy π and the layout; play one evaluation episode following `pi`."""
    sweeps.finish(V)
    Q = env.q_from_v(V)
    actions = greedy(env, Q)
    recorder.artifact("tabular", tabular_artifact(env, V, Q, actions))
    recorder.artifact("layout", env.layout)
    ret, length = play_episode(env, pi, Q, V, recorder, np.random.default_rng(seed), index=0)
    return {"V_start": env.start_value(V), "eval_return": ret, "eval_length": length}


def tabular_artifact(env: TabularMDP, V: np.ndarray, Q: np.ndarray, actions: np.ndarray) -> dict[str, Any]:
    """The contract's "tabular" artifact. Q of an unavailable action is null; terminal rows are 0."""
    q_rows = []
    for s in range(env.n_states):
        if env.terminal[s]:
            q_rows.append([0.0] * env.n_actions)
        else:
            q_rows.append([float(Q[s, a]) if env.available[s, a] else None for a in range(env.n_actions)])
    return {
        "states": list(env.states),
        "actions": list(env.actions),
        "V": [float(v) for v in V],
        "Q": q_rows,
        "policy": [None if a < 0 else env.actions[a] for a in actions],
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


# --- the algorithms ------------------------------------------------------------------------------
def policy_evaluation(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    """V^π for a fixed policy π by iterating the Bellman expectation backup."""
    pi = policy_from_table(env, params.policy)
    sweeps = _Sweeps(env, recorder, params.max_sweeps)
    V = np.zeros(env.n_states)
    sweeps.start(V)
    V, converged = evaluate(env, pi, V, params.theta, sweeps, recorder)
    return {"sweeps": sweeps.count, "converged": converged, **finish(env, V, pi, recorder, seed, sweeps)}


def value_iteration(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    """V* by iterating the Bellman optimality backup; π* is greedy in Q*."""
    sweeps = _Sweeps(env, recorder, params.max_sweeps)
    V = np.zeros(env.n_states)
    sweeps.start(V)
    converged = False
    while not sweeps.exhausted:
        V_new = bellman_optimality(env, V)
        delta = float(np.max(np.abs(V_new - V))) if len(V) else 0.0
        V = V_new
        sweeps.done(V, delta)
        if delta < params.theta:
            converged = True
            break
        if not math.isfinite(delta) or recorder.should_stop():
            break
    pi = greedy_policy_matrix(env, greedy(env, env.q_from_v(V)))
    return {"sweeps": sweeps.count, "converged": converged, **finish(env, V, pi, recorder, seed, sweeps)}


def policy_iteration(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    """Start from the uniform random policy; evaluate it (iteratively, to theta), make it greedy in
    Q^π, repeat until the greedy policy no longer changes. Sweeps count evaluation sweeps."""
    sweeps = _Sweeps(env, recorder, params.max_sweeps)
    V = np.zeros(env.n_states)
    sweeps.start(V)
    pi = uniform_policy(env)
    actions = np.full(env.n_states, -1)
    iterations, converged = 0, False
    while not sweeps.exhausted:
        V, evaluated = evaluate(env, pi, V, params.theta, sweeps, recorder)
        # policy improvement: π'(s) = argmax_a Σ_s' P(s'|s,a) [r(s,a,s') + γ V^π(s')]
        new_actions = greedy(env, env.q_from_v(V), prefer=actions)
        changed = int(np.sum(new_actions != actions))
        iterations += 1
        recorder.log(sweeps.count, policy_changes=changed)
        if evaluated and changed == 0:
            converged = True
            break
        actions, pi = new_actions, greedy_policy_matrix(env, new_actions)
        if recorder.should_stop():
            break
    return {"sweeps": sweeps.count, "iterations": iterations, "converged": converged,
            **finish(env, V, pi, recorder, seed, sweeps)}
