"""Sampled temporal-difference control on a tabular MDP: Q-learning, SARSA, Expected SARSA.

The three share one episode loop (`run_td`); only the Bellman target differs:

    Q-learning      y = r + γ (1 - terminal(s')) max_a' Q(s', a')            (off-policy: greedy)
    SARSA           y = r + γ (1 - terminal(s')) Q(s', a'),  a' ~ π(·|s')    (the action taken next)
    Expected SARSA  y = r + γ (1 - terminal(s')) Σ_a' π(a'|s') Q(s', a')      (π = behaviour policy)

    δ = y - Q(s, a);   Q(s, a) ← Q(s, a) + α δ

The behaviour policy π is ε-greedy in Q (ties broken at random), Boltzmann π(a|s) ∝ exp(Q(s,a)/τ)
when `temperature` is set, or greedy in the UCB score Q(s,a) + c sqrt(ln N(s) / N(s,a)) when `ucb_c`
is set (N the visit counts; an untried action first). The next action a' is drawn once, before the update, and it is the action
taken next for all three. Unavailable actions are never chosen nor maxed over; a terminal s' masks
the bootstrap. One numpy Generator seeded from `seed` drives the environment and the agent, so the
same config and seed give identical results; evaluation episodes use their own generator so that
evaluating more often does not change training.
"""

from __future__ import annotations

import bisect
import itertools
import math
from typing import Any, Literal

import numpy as np

from rltui.algos.dynamic_programming import tabular_artifact
from rltui.envs.tabular import TabularMDP, as_tabular
from rltui.recorder import Recorder, StepRecord

Target = Literal["q_learning", "sarsa", "expected_sarsa"]


def q_learning(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    # y = r + γ (1 - terminal(s')) max_a' Q(s', a')
    return run_td(env, params, recorder, seed=seed, target="q_learning")


def sarsa(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    # y = r + γ (1 - terminal(s')) Q(s', a'), a' the action actually taken next
    return run_td(env, params, recorder, seed=seed, target="sarsa")


def expected_sarsa(env: TabularMDP, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    # y = r + γ (1 - terminal(s')) Σ_a' π(a'|s') Q(s', a')
    return run_td(env, params, recorder, seed=seed, target="expected_sarsa")


# --- exploration ---------------------------------------------------------------------------------
# Q lives in plain Python lists during training (one list of floats per state): with 4 actions a
# numpy call costs more than the arithmetic, and this loop runs once per environment step.
class Behaviour:
    """π(·|s) from Q: ε-greedy (ties at random), Boltzmann with temperature τ, or UCB: greedy in
    Q(s,a) + c sqrt(ln N(s) / N(s,a)) with N the visit counts (an untried action first)."""

    def __init__(self, env: TabularMDP, temperature: float | None, ucb_c: float | None = None,
                 counts: list[list[int]] | None = None) -> None:
        self.n_actions = env.n_actions
        self.temperature = temperature
        self.ucb_c, self.counts = ucb_c, counts
        self.actions = [np.flatnonzero(env.available[s]).tolist() for s in range(env.n_states)]
        self.epsilon = 0.0

    def ucb_best(self, q: list[float], s: int) -> list[int]:
        """The actions maximizing Q(s,a) + c sqrt(ln N(s) / N(s,a)); untried ones come first."""
        acts, n = self.actions[s], self.counts[s]
        untried = [a for a in acts if n[a] == 0]
        if untried:
            return untried
        log_n = math.log(sum(n[a] for a in acts))
        score = {a: q[a] + self.ucb_c * math.sqrt(log_n / n[a]) for a in acts}
        top = max(score.values())
        return [a for a in acts if score[a] == top]

    def probs(self, q: list[float], s: int) -> list[float]:
        """π(a|s) over all actions (0 for unavailable ones), given q = Q(s,·)."""
        acts = self.actions[s]
        pi = [0.0] * self.n_actions
        if self.ucb_c is not None:
            best = self.ucb_best(q, s)
            for a in best:
                pi[a] = 1.0 / len(best)
            return pi
        if self.temperature is not None:
            top = max(q[a] for a in acts)
            z = [math.exp((q[a] - top) / self.temperature) for a in acts]
            total = sum(z)
            for a, w in zip(acts, z):
                pi[a] = w / total
            return pi
        top = max(q[a] for a in acts)
        best = [a for a in acts if q[a] == top]
        for a in acts:
            pi[a] = self.epsilon / len(acts)
        for a in best:
            pi[a] += (1.0 - self.epsilon) / len(best)
        return pi

    def sample(self, q: list[float], s: int, rng: np.random.Generator) -> int:
        acts = self.actions[s]
        if self.ucb_c is not None:
            best = self.ucb_best(q, s)
            return best[0] if len(best) == 1 else best[int(rng.random() * len(best))]
        if self.temperature is not None:
            cum = list(itertools.accumulate(self.probs(q, s)))
            return min(bisect.bisect_right(cum, rng.random() * cum[-1]), self.n_actions - 1)
        if rng.random() < self.epsilon:
            return acts[int(rng.random() * len(acts))]
        return greedy_action(q, acts, rng)


def greedy_action(q: list[float], acts: list[int], rng: np.random.Generator) -> int:
    """argmax over the available actions, ties broken at random."""
    top = max(q[a] for a in acts)
    best = [a for a in acts if q[a] == top]
    return best[0] if len(best) == 1 else best[int(rng.random() * len(best))]


def linear(start: float, end: float, fraction_done: float) -> float:
    return start + (end - start) * min(1.0, fraction_done)


def stored_steps_limit(recorder: Recorder) -> int:
    """Steps of one episode the store keeps ([record] max_steps): no more are built in memory."""
    policy = getattr(recorder, "policy", None)
    return getattr(policy, "max_steps", None) or 10_000


def keeps_trajectory(recorder: Recorder, episode: int, episodes: int) -> bool:
    """recorder.wants_trajectory, minus the episodes the `last = K` rule would prune anyway (we know
    the total), so per-step extras are built only for trajectories that stay in the store."""
    if not recorder.wants_trajectory(episode, "train"):
        return False
    policy = getattr(recorder, "policy", None)
    if policy is None or not hasattr(policy, "last"):
        return True
    by_every = policy.every > 0 and episode % policy.every == 0
    return by_every or episode >= episodes - policy.last


# --- the shared loop -----------------------------------------------------------------------------
def run_td(env: TabularMDP, p: Any, recorder: Recorder, *, seed: int, target: Target) -> dict[str, Any]:
    env = as_tabular(env)
    rng = np.random.default_rng(seed)
    eval_rng = np.random.default_rng([seed, 1])
    gamma = env.gamma
    N = [[0] * env.n_actions for _ in range(env.n_states)]  # visits: the "visits" α schedule, UCB's counts
    behaviour = Behaviour(env, p.temperature, p.ucb_c, N)
    acts_of = behaviour.actions
    # Q(s,a) = q_init for available actions; terminal rows stay 0 (V(terminal) = 0), never updated.
    Q = [[float(p.q_init) if a in acts_of[s] else 0.0 for a in range(env.n_actions)] for s in range(env.n_states)]
    returns: list[float] = []
    stored_steps = stored_steps_limit(recorder)
    global_step = 0
    evals: list[float] = []

    for episode in range(p.episodes):
        done_frac = episode / max(1, p.episodes - 1)
        if p.epsilon_end is not None:
            behaviour.epsilon = linear(p.epsilon, p.epsilon_end, done_frac / p.epsilon_fraction)
        else:
            behaviour.epsilon = p.epsilon
        alpha = linear(p.alpha, p.alpha_end, done_frac) if p.alpha_schedule == "linear" else p.alpha
        keep = keeps_trajectory(recorder, episode, p.episodes)
        steps: list[StepRecord] = []
        abs_td, alpha_sum = 0.0, 0.0
        ret, t = 0.0, 0

        s = env.reset(rng)
        a = behaviour.sample(Q[s], s, rng)
        while t < p.max_steps:
            s2, r, terminated = env.step(s, a, rng)
            a2 = -1 if terminated else behaviour.sample(Q[s2], s2, rng)
            if terminated:
                y = r
            elif target == "q_learning":
                y = r + gamma * max(Q[s2][b] for b in acts_of[s2])
            elif target == "sarsa":
                y = r + gamma * Q[s2][a2]
            else:
                y = r + gamma * sum(pb * qb for pb, qb in zip(behaviour.probs(Q[s2], s2), Q[s2]) if pb)
            td_error = y - Q[s][a]
            if keep and t < stored_steps:
                steps.append(StepRecord(t, s, a, r, terminated, {
                    "Q": [Q[s][b] if b in acts_of[s] else None for b in range(env.n_actions)],
                    "pi": behaviour.probs(Q[s], s), "V": max(Q[s][b] for b in acts_of[s]),
                    "td_error": td_error,
                }))
            N[s][a] += 1
            step_size = p.alpha / N[s][a] ** p.alpha_power if p.alpha_schedule == "visits" else alpha
            Q[s][a] += step_size * td_error

            alpha_sum += step_size
            abs_td += abs(td_error)
            ret += r
            t += 1
            s, a = s2, a2
            if terminated:
                break
        global_step += t
        returns.append(ret)
        recorder.episode(episode, ret, t, phase="train", steps=steps if keep else None, step=global_step)
        explore = ({"temperature": p.temperature} if p.temperature is not None else
                   {"ucb_c": p.ucb_c} if p.ucb_c is not None else {"epsilon": behaviour.epsilon})
        # alpha: the mean step size this episode's updates used (under "visits" it differs per (s, a))
        alpha_used = alpha_sum / t if t else (p.alpha if p.alpha_schedule == "visits" else alpha)
        recorder.log(global_step, td_error=abs_td / max(t, 1), alpha=alpha_used, **explore)
        recorder.progress((episode + 1) / p.episodes)
        if p.eval_every and (episode + 1) % p.eval_every == 0 and episode + 1 < p.episodes:
            evals.append(greedy_eval(env, Q, behaviour, recorder, eval_rng, p, len(evals), global_step))
        if recorder.should_stop():
            break

    greedy_return = greedy_eval(env, Q, behaviour, recorder, eval_rng, p, len(evals), global_step)
    Qa = np.array(Q)
    V = np.where(env.terminal, 0.0, np.where(env.available, Qa, -np.inf).max(axis=1))
    actions = np.array([-1 if env.terminal[s] else greedy_action(Q[s], acts_of[s], eval_rng) for s in range(env.n_states)])
    recorder.artifact("tabular", tabular_artifact(env, V, Qa, actions))
    recorder.artifact("layout", env.layout)
    tail = returns[-max(1, len(returns) // 10):]
    return {
        "episodes": len(returns),
        "steps": global_step,
        "final_return": returns[-1],
        "best_return": max(returns),
        "mean_return_last_10pct": float(np.mean(tail)),
        "greedy_return": greedy_return,
        "V_start": env.start_value(V),
    }


def greedy_eval(env: TabularMDP, Q: list[list[float]], behaviour: Behaviour, recorder: Recorder,
                rng: np.random.Generator, p: Any, first_index: int, global_step: int) -> float:
    """Mean undiscounted return of `eval_episodes` greedy episodes (phase "eval"), each recorded
    with Q(s,·), π(·|s) (greedy, one-hot), V(s) per step."""
    total = 0.0
    stored_steps = stored_steps_limit(recorder)
    for i in range(p.eval_episodes):
        index = first_index * p.eval_episodes + i
        keep = recorder.wants_trajectory(index, "eval")
        steps: list[StepRecord] = []
        s, ret, t, done = env.reset(rng), 0.0, 0, False
        while not done and t < p.max_steps:
            acts = behaviour.actions[s]
            a = greedy_action(Q[s], acts, rng)
            s2, r, done = env.step(s, a, rng)
            if keep and t < stored_steps:
                pi = [0.0] * env.n_actions
                pi[a] = 1.0
                steps.append(StepRecord(t, s, a, r, done, {
                    "Q": [Q[s][b] if b in acts else None for b in range(env.n_actions)],
                    "pi": pi, "V": max(Q[s][b] for b in acts)}))
            ret += r
            s, t = s2, t + 1
        recorder.episode(index, ret, t, phase="eval", steps=steps if keep else None, step=global_step)
        total += ret
    return total / p.eval_episodes
