"""GRPO: group-relative policy optimisation (Shao et al. 2024). No critic: each prompt is answered
`group_size` times and a response's advantage is its score against its own group's:

    A_i = (r_i − mean(r_group)) / (std(r_group) + ε)       the same for every token of response i
    loss = E_t[max(−A ρ_t, −A clip(ρ_t, 1−ε, 1+ε))] + β E_t[KL_t],   ρ_t = π(a_t|s_t) / π_old(a_t|s_t)
    KL_t = π_ref/π − log(π_ref/π) − 1   (the k3 estimator of KL(π‖π_ref): unbiased, never negative)

Expectations are means over response tokens (prompt and padding masked out). Metrics share names
with lm_ppo so both draw on one Compare plot; the x-axis is responses.
"""

from __future__ import annotations

import torch

from rltui.algos.lm_common import (
    Clock, EpisodeLog, StageCheckpoint, cpu_threads, evaluate, load_policy, make_scorer, masked_mean, response_logprobs,
    rollout, save_model, seeded,
)
from rltui.algos.lm_ppo import lift_summary


def group_advantages(scores: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """(B,) scores of consecutive groups → (B,) advantages standardised within each group."""
    grouped = scores.view(-1, group_size)
    adv = (grouped - grouped.mean(1, keepdim=True)) / (grouped.std(1, keepdim=True) + eps)
    return adv.view(-1)


def train(env, params, recorder, *, seed: int, device: str) -> dict:
    cpu_threads(device)
    stage = load_policy(recorder, params.init_run, env, device)
    policy, ref, tok = stage.policy, stage.ref, stage.tokenizer
    scorer, reward_id = make_scorer(recorder, env, tok, params.reward_run, device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=params.learning_rate, eps=1e-5)

    rng, gen = seeded(seed, device)
    shuffle = torch.Generator().manual_seed(seed)
    log, clock = EpisodeLog(recorder, tok), Clock(recorder, params.time_limit_s)
    G, T = params.group_size, params.temperature
    B = params.prompts_per_iter * G
    mb = min(params.mini_batch_size, B)
    episodes = 0

    def run_eval() -> dict[str, float]:
        policy.eval()
        m = evaluate(policy, ref, env, tok, scorer, params.eval_prompts, T, device, seed, log, episodes)
        policy.train()
        recorder.log(episodes, **m)
        return m

    checkpoint = StageCheckpoint(recorder, params.checkpoint_every, params.iterations, policy=policy,
                                 optimizer=optimizer, rng=rng, gen=gen, shuffle=shuffle)
    resumed = checkpoint.restore()
    it = 0
    if resumed is None:
        recorder.artifact("layout", env.layout())
        first_eval = last_eval = run_eval()
    else:
        it, episodes = resumed["iteration"], resumed["episodes"]
        first_eval, last_eval = resumed["first_eval"], resumed["last_eval"]
        log.count.update(resumed["episode_count"])
    for it in range(it + 1, params.iterations + 1):
        # --- rollout: each prompt G times (consecutive rows form a group) ---
        prompts = [p for p in env.sample_prompts(rng, params.prompts_per_iter, "train") for _ in range(G)]
        ro = rollout(policy, tok, prompts, env.max_response_len, T, gen, device)
        seq, seq_mask, P, mask = ro.seq, ro.seq_mask, ro.query.size(1), ro.response_mask
        fmask = mask.float()
        with torch.no_grad():
            old_logprobs, entropy = response_logprobs(policy, seq, seq_mask, P, T)
            ref_logprobs, _ = response_logprobs(ref, seq, seq_mask, P, T)
            scores = scorer(ro)
            advantages = group_advantages(scores, G)[:, None] * fmask  # broadcast over the response's tokens

        stats: dict[str, list[float]] = {k: [] for k in ("approxkl", "clipfrac", "pg_loss", "kl_loss", "ratio")}
        for _epoch in range(params.epochs):
            order = torch.randperm(B, generator=shuffle) if mb < B else torch.arange(B)
            for start in range(0, B, mb):
                idx = order[start : start + mb].to(seq.device)
                m, adv = mask[idx], advantages[idx]
                new_logprobs, _ = response_logprobs(policy, seq[idx], seq_mask[idx], P, T)
                log_ratio = (new_logprobs - old_logprobs[idx]) * m
                ratio = log_ratio.exp()
                pg_losses = -adv * ratio
                pg_losses_clipped = -adv * ratio.clamp(1.0 - params.cliprange, 1.0 + params.cliprange)
                ref_log_ratio = (ref_logprobs[idx] - new_logprobs) * m
                kl = ref_log_ratio.exp() - ref_log_ratio - 1.0
                pg_loss = masked_mean(torch.max(pg_losses, pg_losses_clipped), m)
                kl_loss = masked_mean(kl, m)
                loss = pg_loss + params.beta * kl_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(policy.parameters(), params.max_grad_norm)
                optimizer.step()
                with torch.no_grad():
                    stats["approxkl"].append(float(0.5 * masked_mean(log_ratio**2, m)))
                    stats["clipfrac"].append(float(masked_mean((pg_losses_clipped > pg_losses).float(), m)))
                    stats["pg_loss"].append(float(pg_loss))
                    stats["kl_loss"].append(float(kl_loss))
                    stats["ratio"].append(float(masked_mean(ratio, m)))

        episodes += B
        kl_seq = ((old_logprobs - ref_logprobs) * fmask).sum(1)
        avg = {k: sum(v) / len(v) for k, v in stats.items()}
        oracle = scorer.oracle(ro)
        zero_std = (scores.view(-1, G).std(1) == 0).float().mean()
        recorder.log(
            episodes,
            **{
                "objective/scores": float(scores.mean()),
                "objective/oracle_score": sum(oracle) / len(oracle),
                "objective/kl": float(kl_seq.mean()),
                "objective/entropy": float((entropy * fmask).sum(1).mean()),
                "objective/frac_reward_zero_std": float(zero_std),
                "policy/approxkl_avg": avg["approxkl"],
                "policy/clipfrac_avg": avg["clipfrac"],
                "loss/policy_avg": avg["pg_loss"],
                "loss/kl_avg": avg["kl_loss"],
                "val/ratio": avg["ratio"],
                "val/num_eos_tokens": float(ro.ended.sum()),
                "val/response_length": float(fmask.sum(1).mean()),
            },
        )
        log.add(ro, scores.tolist(), "train", episodes, oracle=oracle if scorer.reward_model is not None else None,
                logprob=old_logprobs, ref_logprob=ref_logprobs,
                kl=(old_logprobs - ref_logprobs) * fmask, advantage=advantages)
        if it % params.eval_every == 0:
            last_eval = run_eval()
        recorder.progress(it / params.iterations)
        if checkpoint.after_update(it, episodes, lambda: {
            "iteration": it, "episodes": episodes, "first_eval": first_eval, "last_eval": last_eval,
            "episode_count": dict(log.count),
        }):
            return {}
        if clock.over():
            break
    if it % params.eval_every != 0:
        last_eval = run_eval()

    save_model(recorder, policy, "lm", tok)
    return lift_summary(first_eval, last_eval, it, episodes, clock.elapsed(), stage.run_id, reward_id)
