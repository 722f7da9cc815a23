"""QMDP (Littman, Cassandra & Kaelbling 1995) on a tabular POMDP: solve the hidden MDP exactly,
then act on the exact belief as if all uncertainty vanished after one step,

    Q_MDP(s, a) = Q*(s, a) of the hidden MDP (value iteration to θ)
    A_t = argmax_a Σ_s b_t(s) Q_MDP(s, a),    b_{t+1} = belief_update(b_t, A_t, O_{t+1})

Episodes are played on the hidden MDP with the belief kept exactly (rltui.envs.pomdp); each step
records b(s) (`belief`), Σ_s b(s) Q(s,·) (`Q`) and the hidden state, so replay can draw the belief.
Beside it, q_learning on the same env learns on observations as if they were states.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from rltui.algos.dynamic_programming import bellman_optimality, tabular_artifact
from rltui.envs.pomdp import ObservationView
from rltui.recorder import Recorder, StepRecord


def qmdp(env: ObservationView, p: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    pomdp = env.pomdp
    mdp = pomdp.mdp
    V, sweeps, delta = np.zeros(mdp.n_states), 0, math.inf
    while sweeps < p.max_sweeps and delta >= p.theta:
        V_new = bellman_optimality(mdp, V)
        delta = float(np.max(np.abs(V_new - V)))
        V, sweeps = V_new, sweeps + 1
    Q = mdp.q_from_v(V)
    allowed = env.available[0]  # actions available whatever the hidden state
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(p.episodes):
        keep = recorder.wants_trajectory(episode, "eval")
        b = mdp.start.copy()
        s = mdp.reset(rng)
        steps: list[StepRecord] = []
        ret, t, done = 0.0, 0, False
        while not done and t < p.max_steps:
            q_b = np.where(allowed, b @ Q, -np.inf)  # Σ_s b(s) Q_MDP(s, a)
            a = int(np.argmax(q_b))
            s2, r, done = mdp.step(s, a, rng)
            if keep:
                steps.append(StepRecord(t, s, a, r, done, {
                    "belief": b.tolist(), "Q": [float(q) if allowed[i] else None for i, q in enumerate(q_b)],
                    "V": float(q_b[a])}))
            if not done:
                b = pomdp.belief_update(b, a, pomdp.observe(a, s2, rng))
            ret += r
            s, t = s2, t + 1
        returns.append(ret)
        recorder.episode(episode, ret, t, phase="eval", steps=steps if keep else None, step=episode + 1)
        recorder.progress((episode + 1) / p.episodes)
        if recorder.should_stop():
            break
    actions = np.where(mdp.terminal, -1, np.where(mdp.available, Q, -np.inf).argmax(axis=1))
    recorder.artifact("tabular", tabular_artifact(mdp, V, Q, actions))  # Q_MDP over the hidden states
    recorder.artifact("layout", {"kind": "tabular", "states": list(mdp.states), "actions": list(mdp.actions),
                                 "observations": list(pomdp.observations)})
    return {"episodes": len(returns), "mean_return": float(np.mean(returns)), "sweeps": sweeps,
            "V_start": float(mdp.start @ V)}
