"""Multi-armed bandits on Sutton & Barto's k-armed testbed (chapter 2): a bandit problem has no
state evolution, only the exploration-exploitation trade-off.

`runs` independent testbeds are played side by side, vectorized over runs (numpy arrays [runs, k]);
the per-step metrics are averages over runs, the curves of Figures 2.2-2.5:

    reward          R_t averaged over runs
    optimal_action  the fraction of runs whose A_t is their testbed's best arm
    regret          max_a q*(a) - q*(A_t), the expected reward lost at step t, averaged over runs

One action-selection rule per algorithm; the value estimates share `update_estimates`:

    epsilon_greedy  A_t = argmax_a Q(a) (ties at random), a random arm with probability ε
    ucb             A_t = argmax_a Q(a) + c sqrt(ln t / N(a))         (an untried arm first)
    thompson        A_t = argmax_a θ(a), θ(a) ~ the posterior of q*(a): Normal for gaussian arms
                    (prior N(0, 1), known unit variance), Beta(1 + wins, 1 + losses) for bernoulli
    gradient_bandit π(a) = softmax(H)(a), A_t ~ π;  H(a) ← H(a) + α (R_t - R̄_t)(1{a = A_t} - π(a)),
                    R̄_t the mean of the rewards so far, this one included (0 without baseline)

    Q(A_t) ← Q(A_t) + α_t (R_t - Q(A_t)),  α_t = 1/N(A_t) (sample average) or a constant α
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from rltui.envs.bandit import Testbed
from rltui.recorder import Recorder

LOG_POINTS = 2000  # at most this many logged points per metric (longer runs average windows)


def epsilon_greedy(env: Testbed, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    def select(t: int, Q: np.ndarray, N: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        a = argmax_random_ties(Q, rng)
        explore = rng.random(len(Q)) < params.epsilon
        return np.where(explore, rng.integers(0, Q.shape[1], len(Q)), a)

    return play(env, params, recorder, seed, select, q_alpha=params.alpha)


def ucb(env: Testbed, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    def select(t: int, Q: np.ndarray, N: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        tried = N > 0
        bonus = np.full_like(Q, np.inf)  # an untried arm comes first
        bonus[tried] = params.c * np.sqrt(math.log(t) / N[tried])
        return argmax_random_ties(Q + bonus, rng)

    return play(env, params, recorder, seed, select, q_alpha=params.alpha)


def thompson(env: Testbed, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    totals: dict[str, np.ndarray] = {}

    def select(t: int, Q: np.ndarray, N: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        reward_sum = totals.setdefault("sum", np.zeros_like(Q))
        if env.arms == "bernoulli":  # Beta(1 + wins, 1 + losses)
            theta = rng.beta(1.0 + reward_sum, 1.0 + N - reward_sum)
        else:  # prior N(0, 1), unit noise: posterior N(Σ R / (1 + N), 1 / (1 + N))
            theta = rng.normal(reward_sum / (1.0 + N), 1.0 / np.sqrt(1.0 + N))
        return argmax_random_ties(theta, rng)

    def observe(a: np.ndarray, r: np.ndarray) -> None:
        totals["sum"][np.arange(len(a)), a] += r

    return play(env, params, recorder, seed, select, observe)


def gradient_bandit(env: Testbed, params: Any, recorder: Recorder, *, seed: int, device: str = "cpu") -> dict[str, Any]:
    H = np.zeros((params.runs, env.k))
    state = {"mean_reward": np.zeros(params.runs), "t": 0, "pi": None}

    def select(t: int, Q: np.ndarray, N: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        z = np.exp(H - H.max(axis=1, keepdims=True))
        pi = z / z.sum(axis=1, keepdims=True)
        state["pi"] = pi
        u = rng.random((len(H), 1))
        return np.minimum((pi.cumsum(axis=1) < u).sum(axis=1), env.k - 1)

    def observe(a: np.ndarray, r: np.ndarray) -> None:
        state["t"] += 1
        if params.baseline:  # R̄_t: the mean of R_1..R_t
            state["mean_reward"] += (r - state["mean_reward"]) / state["t"]
        one_hot = np.zeros_like(H)
        one_hot[np.arange(len(a)), a] = 1.0
        # H(a) ← H(a) + α (R_t - R̄_t)(1{a = A_t} - π(a))
        H[:] += params.alpha * (r - state["mean_reward"])[:, None] * (one_hot - state["pi"])

    return play(env, params, recorder, seed, select, observe)


# --- shared --------------------------------------------------------------------------------------
def argmax_random_ties(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per row, an index of the maximum, ties broken uniformly at random."""
    top = values.max(axis=1, keepdims=True)
    noise = rng.random(values.shape)
    return np.where(values == top, noise, -1.0).argmax(axis=1)


def update_estimates(Q: np.ndarray, N: np.ndarray, a: np.ndarray, r: np.ndarray, alpha: float | None) -> None:
    """Q(A_t) ← Q(A_t) + α_t (R_t - Q(A_t)), α_t = 1/N(A_t) (sample average) or the constant α."""
    rows = np.arange(len(a))
    N[rows, a] += 1
    step = 1.0 / N[rows, a] if alpha is None else alpha
    Q[rows, a] += step * (r - Q[rows, a])


def play(env: Testbed, p: Any, recorder: Recorder, seed: int,
         select: Callable[[int, np.ndarray, np.ndarray, np.random.Generator], np.ndarray],
         observe: Callable[[np.ndarray, np.ndarray], None] | None = None, q_alpha: float | None = None) -> dict[str, Any]:
    """`p.runs` testbeds for `p.steps` steps: select A_t per run, draw R_t, update, log averages."""
    q_star = env.draw(p.runs, seed)  # [runs, k], the testbeds: what the agents never see
    best = q_star.max(axis=1)
    optimal = q_star.argmax(axis=1)
    rng = np.random.default_rng([seed, 2])  # the agents' and the rewards' randomness
    rows = np.arange(p.runs)
    Q = np.full((p.runs, env.k), float(getattr(p, "q_init", 0.0)))
    N = np.zeros((p.runs, env.k))
    returns = np.zeros(p.runs)
    total_regret = 0.0
    window = max(1, math.ceil(p.steps / LOG_POINTS))
    acc = np.zeros(3)
    for t in range(1, p.steps + 1):
        a = select(t, Q, N, rng)
        r = env.reward(q_star, a, rng)
        update_estimates(Q, N, a, r, q_alpha)
        if observe is not None:
            observe(a, r)
        returns += r
        regret = float(np.mean(best - q_star[rows, a]))
        total_regret += regret
        acc += (float(r.mean()), float(np.mean(a == optimal)), regret)
        if t % window == 0 or t == p.steps:
            n = window if t % window == 0 else t % window
            reward, optimal_action, regret_mean = acc / n
            recorder.log(t, reward=reward, optimal_action=optimal_action, regret=regret_mean)
            acc[:] = 0.0
            recorder.progress(t / p.steps)
            if recorder.should_stop():
                break
    for i in range(p.runs):
        recorder.episode(i, float(returns[i]), t, phase="train", step=t)
    recorder.artifact("testbed", {"q_star": q_star.tolist(), "arms": env.arms})
    return {"steps": t, "runs": p.runs, "mean_reward": float(returns.mean() / t),
            "total_regret": total_regret, "optimal_action_final": float(np.mean(Q.argmax(axis=1) == optimal))}
