"""Best-of-N sampling: the simplest optimiser of a reward model, and the baseline of over-optimisation.

    for each held-out prompt x:   y_1 … y_N ~ π_SFT(·|x),   keep  y* = argmax_i r(x, y_i)

No weights change. The best-of-N policy π_N moves away from π_SFT by a known amount (Stiennon et al.
2020, Gao et al. 2022; exact when the N scores are distinct, an upper bound when they can tie):

    KL(π_N ‖ π_SFT) = log N − (N − 1) / N

It is logged as `eval/kl`, so best-of-N shares Compare's KL (and √KL) axis with PPO. The proxy is the
reward model's score of the kept response (`eval/reward_mean`), the gold is the scripted oracle's
(`eval/oracle_score`): where the proxy keeps rising and the gold falls, the reward model is being
optimised beyond its trustworthy region.

The same N samples also give every smaller best-of-n (n = 1, 2, 4, … < N) from their first n: those
points are logged at step n, so one run draws the whole best-of-n curve; its headline is n = N.
"""

from __future__ import annotations

import math

import torch

from rltui.algos.lm_common import (
    EpisodeLog, cpu_threads, load_policy, make_scorer, response_logprobs, rollout, reward_model_agreement,
)


def best_of_n_kl(n: int) -> float:
    """KL(π_N ‖ π) of best-of-n sampling from π, in nats: log n − (n − 1)/n."""
    return math.log(n) - (n - 1) / n


def curve_points(n: int) -> list[int]:
    """The n' ≤ N whose best-of-n' is logged: powers of two, and N itself."""
    points = [1 << k for k in range(n.bit_length()) if (1 << k) < n]
    return points + [n]


def train(env, params, recorder, *, seed: int, device: str) -> dict:
    cpu_threads(device)
    stage = load_policy(recorder, params.init_run, env, device)
    policy, tok = stage.policy.eval(), stage.tokenizer
    scorer, reward_id = make_scorer(recorder, env, tok, params.reward_run, device)
    N, T = params.n, params.temperature
    prompts = env.eval_prompts(params.eval_prompts)
    g = torch.Generator(device=device).manual_seed(seed + 10_007)
    log = EpisodeLog(recorder, tok)
    recorder.artifact("layout", env.layout())

    # proxy[i, j], gold[i, j]: reward model and oracle scores of the j-th sample for prompt i
    proxy_rows, gold_rows = [], []
    per_chunk = max(1, params.batch_size // N)  # prompts whose N samples fit one sampling batch
    for start in range(0, len(prompts), per_chunk):
        chunk = prompts[start : start + per_chunk]
        ro = rollout(policy, tok, [p for p in chunk for _ in range(N)], env.max_response_len, T, g, device)
        proxy = scorer(ro).float().view(len(chunk), N)
        gold = torch.tensor(scorer.oracle(ro), dtype=torch.float32).view(len(chunk), N)
        proxy_rows.append(proxy.cpu())
        gold_rows.append(gold)

        keep = proxy.argmax(1) + torch.arange(len(chunk), device=proxy.device) * N  # y* per prompt
        best = ro.select(keep)
        with torch.no_grad():
            logprobs, _ = response_logprobs(policy, best.seq, best.seq_mask, best.query.size(1), T)
        log.add(best, proxy.flatten()[keep].tolist(), "eval", N, oracle=gold.flatten()[keep.cpu()].tolist(),
                logprob=logprobs)
        recorder.progress(min(1.0, (start + len(chunk)) / len(prompts)))
        if recorder.should_stop():
            return {}
    proxy, gold = torch.cat(proxy_rows), torch.cat(gold_rows)

    curve = {}
    for n in curve_points(N):
        best = proxy[:, :n].argmax(1, keepdim=True)  # best-of-n from each prompt's first n samples
        chosen_proxy, chosen_gold = proxy[:, :n].gather(1, best), gold[:, :n].gather(1, best)
        curve[n] = {
            "eval/reward_mean": float(chosen_proxy.mean()),
            "eval/reward_std": float(chosen_proxy.std()) if len(prompts) > 1 else 0.0,
            "eval/oracle_score": float(chosen_gold.mean()),
            "eval/kl": best_of_n_kl(n),
        }
        recorder.log(n, **curve[n])
    recorder.log(N, **reward_model_agreement(policy, env, tok, scorer, prompts, T, g, device))

    peak_n = max(curve, key=lambda n: curve[n]["eval/oracle_score"])
    return {
        "n": N, "kl": round(best_of_n_kl(N), 4), "init_run_id": stage.run_id, "reward_run_id": reward_id,
        "sft_reward_mean": round(curve[1]["eval/reward_mean"], 4), "sft_oracle_score": round(curve[1]["eval/oracle_score"], 4),
        "final_reward_mean": round(curve[N]["eval/reward_mean"], 4), "final_oracle_score": round(curve[N]["eval/oracle_score"], 4),
        "peak_oracle_score": round(curve[peak_n]["eval/oracle_score"], 4), "peak_oracle_n": peak_n,
    }
