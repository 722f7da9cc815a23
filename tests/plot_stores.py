"""Stores for the plot tests (no tests here): language-model runs whose proxy reward, gold score and
KL follow closed forms, seeds that stop early, metrics with spikes, constants and NaNs. Written
through the real StoreRecorder into a real SQLite file."""

from __future__ import annotations

import math

from rltui.tui.demo import SimClockRecorder, add_run

# Gao et al. (2022)'s best-of-n form with d = √KL: gold R(d) = d (α − β d), proxy α d.
# The gold peaks at d* = α / (2β), where R = α² / (4β).
ALPHA, BETA = 1.0, 0.25
GOLD_PEAK_D = ALPHA / (2 * BETA)  # 2.0
GOLD_PEAK = ALPHA ** 2 / (4 * BETA)  # 1.0


def add_lm_runs(store) -> dict[str, int]:  # noqa: ANN001
    """lm_ppo, grpo and dpo runs logging eval/reward_mean, eval/oracle_score and eval/kl every 5 steps:
    √KL grows linearly to `reach`, the proxy is α√KL, the gold √KL(α − β√KL)."""
    ids = {}
    for algo, reach, scale in (("lm_ppo", 4.0, 1.0), ("grpo", 3.0, 0.9), ("dpo", 1.5, 1.1)):
        run_id = add_run(store, f"lm-{algo}", {"id": "text_sentiment", "gamma": 1.0}, {"id": algo, "beta": 0.05})
        rec = SimClockRecorder(store, run_id, flush_every=1e9)
        for step in range(0, 201, 5):
            d = reach * step / 200
            rec.sim_time = step * 0.1
            rec.log(step, **{"eval/kl": d * d, "eval/reward_mean": scale * ALPHA * d,
                             "eval/oracle_score": d * (ALPHA - BETA * d), "loss": 1.0 / (1 + step)})
        rec.close()
        ids[algo] = run_id
    return ids


def add_seed_group(store, lengths=(50, 50, 50, 50, 12)) -> list[int]:  # noqa: ANN001, B006
    """Q-learning runs differing only in seed; seed i's return at episode e is e + i (exactly), and the
    last seed stops after lengths[-1] episodes (cancelled)."""
    ids = []
    for seed, n in enumerate(lengths):
        run_id = add_run(store, f"cliff-q-s{seed}", {"id": "cliff", "gamma": 1.0}, {"id": "q_learning", "alpha": 0.5},
                         seed=seed, status="completed" if n == max(lengths) else "cancelled")
        rec = SimClockRecorder(store, run_id, flush_every=1e9)
        for e in range(n):
            rec.episode(e, float(e + seed), 10, step=(e + 1) * 10)
        rec.close()
        ids.append(run_id)
    return ids


def add_honest_metrics_run(store) -> int:  # noqa: ANN001
    """2000 steps: a constant α = 0.1 (logged as 0.1 and as the float next to it), a loss with one
    spike of 50 at step 1234, a return-like metric whose best value is one step, and one NaN."""
    run_id = add_run(store, "spiky", {"id": "pendulum"}, {"id": "sac"})
    rec = SimClockRecorder(store, run_id, flush_every=1e9)
    for step in range(2000):
        rec.sim_time = step * 0.01
        loss = 50.0 if step == 1234 else 1.0 + 0.001 * (step % 7)
        best = -0.08 if step == 1500 else -200.0 + step * 0.04
        rec.log(step, alpha=0.1 if step % 2 else 0.09999999999999999, loss=loss, best_like=best,
                td_error=float("nan") if step == 1700 else 0.5)
    rec.close()
    return run_id
