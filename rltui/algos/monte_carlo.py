"""Monte Carlo control (Sutton & Barto, chapter 5): Q from complete episodes' returns, no model.

    generate an episode S_0, A_0, R_1, ..., S_{T-1}, A_{T-1}, R_T with the behaviour policy
    G ← 0;  for t = T-1 down to 0:   G ← γ G + R_{t+1}
        if every-visit, or (S_t, A_t) does not occur before t (first-visit):
            N(S_t, A_t) += 1;   Q(S_t, A_t) ← Q(S_t, A_t) + (G - Q(S_t, A_t)) / N(S_t, A_t)

Behaviour: `exploring_starts` (S_0, A_0 drawn uniformly from the env's exploring starts and
available actions, then greedy in Q, ties at random; Figure 5.2 on Blackjack) or ε-soft
(ε-greedy in Q from the env's own start). The target policy is greedy in Q.

Runs on any sampled tabular env (reset(rng), step(s, a, rng)): the MDPs of rltui.envs.tabular, the
toy-text envs, and Blackjack-v1 (rltui.envs.blackjack), where the usable-ace and no-usable-ace
policy and value grids (player sum 12-21 x dealer 1-10) are stored as the `blackjack` artifact.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rltui.algos.dynamic_programming import tabular_artifact
from rltui.algos.td import greedy_action
from rltui.envs.tabular import as_tabular
from rltui.recorder import Recorder

LOG_POINTS = 2000


def monte_carlo_control(env: Any, p: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    env = as_tabular(env)
    rng = np.random.default_rng(seed)
    gamma = env.gamma
    acts_of = [np.flatnonzero(env.available[s]).tolist() for s in range(env.n_states)]
    Q = [[0.0] * env.n_actions for _ in range(env.n_states)]
    N = [[0] * env.n_actions for _ in range(env.n_states)]
    if p.exploring_starts:
        starts = env.exploring_starts() if hasattr(env, "exploring_starts") else \
            [s for s in range(env.n_states) if not env.terminal[s]]
    window = max(1, math.ceil(p.episodes / LOG_POINTS))
    returns: list[float] = []
    global_step = 0

    def behave(s: int) -> int:
        if not p.exploring_starts and rng.random() < p.epsilon:
            return acts_of[s][int(rng.random() * len(acts_of[s]))]
        return greedy_action(Q[s], acts_of[s], rng)

    for episode in range(p.episodes):
        if p.exploring_starts:
            s = starts[int(rng.random() * len(starts))]
            a = acts_of[s][int(rng.random() * len(acts_of[s]))]
        else:
            s = env.reset(rng)
            a = behave(s)
        visited: list[tuple[int, int, float]] = []
        for _ in range(p.max_steps):
            s2, r, done = env.step(s, a, rng)
            visited.append((s, a, r))
            if done:
                break
            s = s2
            a = behave(s)
        first = {}
        for t, (s_t, a_t, _) in enumerate(visited):
            first.setdefault((s_t, a_t), t)
        G = 0.0
        for t in range(len(visited) - 1, -1, -1):
            s_t, a_t, r = visited[t]
            G = gamma * G + r  # G_t = R_{t+1} + γ G_{t+1}
            if p.visit == "every" or first[(s_t, a_t)] == t:
                N[s_t][a_t] += 1
                Q[s_t][a_t] += (G - Q[s_t][a_t]) / N[s_t][a_t]
        ret = sum(r for _, _, r in visited)
        returns.append(ret)
        global_step += len(visited)
        recorder.episode(episode, ret, len(visited), phase="train", step=global_step)
        if (episode + 1) % window == 0:
            recorder.log(global_step, mean_return=float(np.mean(returns[-window:])))
            recorder.progress((episode + 1) / p.episodes)
            if recorder.should_stop():
                break

    Qa = np.array(Q)
    masked = np.where(env.available, Qa, -np.inf)
    V = np.where(env.terminal, 0.0, masked.max(axis=1, initial=-np.inf))
    V = np.where(np.isfinite(V), V, 0.0)
    actions = np.array([-1 if env.terminal[s] else greedy_action(Q[s], acts_of[s], rng) for s in range(env.n_states)])
    recorder.artifact("tabular", tabular_artifact(env, V, Qa, actions))
    recorder.artifact("layout", env.layout)
    summary = {"episodes": len(returns), "steps": global_step,
               "mean_return_last_10pct": float(np.mean(returns[-max(1, len(returns) // 10):]))}
    if hasattr(env, "exploring_starts") and env.name == "Blackjack-v1":
        grids = blackjack_grids(Qa)
        recorder.artifact("blackjack", grids)
    return summary


def blackjack_grids(Q: np.ndarray) -> dict[str, Any]:
    """Figure 5.2: for usable and no usable ace, π*(s) (1 hit, 0 stick) and V*(s) = max_a Q(s, a)
    on rows player sum 12..21, columns dealer showing 1 (ace)..10."""
    from rltui.envs.blackjack import index

    out: dict[str, Any] = {"player": list(range(12, 22)), "dealer": list(range(1, 11)), "actions": ["stick", "hit"]}
    for key, usable in (("usable_ace", True), ("no_usable_ace", False)):
        rows = [[index(p, d, usable) for d in range(1, 11)] for p in range(12, 22)]
        out[key] = {"policy": [[int(np.argmax(Q[s])) for s in row] for row in rows],
                    "V": [[float(np.max(Q[s])) for s in row] for row in rows]}
    return out
