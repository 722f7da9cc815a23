"""PPO for a language-model policy (RLHF), token by token.

    state s_t = prompt + response[:t], action a_t = the next token, episode = one response, γ = 1 by default
    per-token reward   r_t = −β (log π(a_t|s_t) − log π_ref(a_t|s_t))  [+ score(x, y) on the last token]
    critic             V(s_t): a separate transformer with a scalar head (started from the reward model)
    GAE over tokens    δ_t = r_t + γ V(s_{t+1}) − V(s_t),  A_t = δ_t + γλ A_{t+1}  (V = 0 after the last token)
    policy loss        E_t[max(−A_t ρ_t, −A_t clip(ρ_t, 1−ε, 1+ε))],  ρ_t = π(a_t|s_t) / π_old(a_t|s_t)
    value loss         ½ E_t[max((V − G)², (V_old + clip(V − V_old, ±ε_v) − G)²)],  G_t = A_t + V(s_t)

Every expectation is a mean over response tokens only: prompt and padding positions are masked out.
The score is the reward model's r(x, y) (preference task) or exact match (verifiable task). Metrics
use TRL's names (objective/kl, objective/scores, policy/approxkl_avg, ...); the x-axis is responses.
"""

from __future__ import annotations

import torch

from rltui.algos.lm_common import (
    Clock, EpisodeLog, StageCheckpoint, cpu_threads, evaluate, load_policy, make_scorer, masked_mean, masked_whiten,
    response_logprobs, response_values, rollout, save_model, seeded, token_gae,
)
from rltui.lm.model import ScalarModel


def train(env, params, recorder, *, seed: int, device: str) -> dict:
    cpu_threads(device)
    stage = load_policy(recorder, params.init_run, env, device)
    policy, ref, tok = stage.policy, stage.ref, stage.tokenizer
    scorer, reward_id = make_scorer(recorder, env, tok, params.reward_run, device)
    critic = ScalarModel(policy.cfg).to(device)
    if params.critic_init == "reward_model" and scorer.reward_model is not None:
        critic.load_state_dict(scorer.reward_model.state_dict())  # as TRL: the value model starts as the reward model
    else:
        critic.lm.load_state_dict(policy.state_dict())
    optimizer = torch.optim.Adam([*policy.parameters(), *critic.parameters()], lr=params.learning_rate, eps=1e-5)

    rng, gen = seeded(seed, device)
    shuffle = torch.Generator().manual_seed(seed)
    log, clock = EpisodeLog(recorder, tok), Clock(recorder, params.time_limit_s)
    B, mb, gamma, lam, T = params.batch_size, min(params.mini_batch_size, params.batch_size), env.gamma, params.lam, params.temperature
    kl_coef = params.kl_coef
    episodes = 0

    def run_eval() -> dict[str, float]:
        policy.eval()
        m = evaluate(policy, ref, env, tok, scorer, params.eval_prompts, T, device, seed, log, episodes)
        policy.train()
        recorder.log(episodes, **m)
        return m

    checkpoint = StageCheckpoint(recorder, params.checkpoint_every, params.iterations, policy=policy, critic=critic,
                                 optimizer=optimizer, rng=rng, gen=gen, shuffle=shuffle)
    resumed = checkpoint.restore()
    it = 0
    if resumed is None:
        recorder.artifact("layout", env.layout())
        first_eval = last_eval = run_eval()  # the SFT policy's level: the baseline of the lift
    else:
        it, episodes, kl_coef = resumed["iteration"], resumed["episodes"], resumed["kl_coef"]
        first_eval, last_eval = resumed["first_eval"], resumed["last_eval"]
        log.count.update(resumed["episode_count"])
    for it in range(it + 1, params.iterations + 1):
        # --- rollout: sample B responses with the KV cache, then score them ---
        ro = rollout(policy, tok, env.sample_prompts(rng, B, "train"), env.max_response_len, T, gen, device)
        seq, seq_mask, P, mask = ro.seq, ro.seq_mask, ro.query.size(1), ro.response_mask
        fmask = mask.float()
        with torch.no_grad():
            logprobs, entropy = response_logprobs(policy, seq, seq_mask, P, T)
            ref_logprobs, _ = response_logprobs(ref, seq, seq_mask, P, T)
            values = response_values(critic, seq, seq_mask, P) * fmask
            scores = scorer(ro)
            # r_t = −β KL_t on every token, plus the score on the last real token (EOS or the cap)
            kl = (logprobs - ref_logprobs) * fmask
            non_score_reward = -kl_coef * kl
            rewards = non_score_reward.clone()
            last = mask.sum(1) - 1
            rewards[torch.arange(B, device=rewards.device), last] += scores
            if params.whiten_rewards:
                rewards = masked_whiten(rewards, mask, shift_mean=False)
            advantages, returns = token_gae(rewards, values, fmask, gamma, lam)
            advantages = masked_whiten(advantages, mask)

        # --- update: ppo_epochs passes over the rollout in mini-batches ---
        stats: dict[str, list[float]] = {k: [] for k in ("approxkl", "clipfrac", "pg_loss", "vf_loss", "vf_clipfrac", "ratio", "entropy")}
        for _epoch in range(params.ppo_epochs):
            order = torch.randperm(B, generator=shuffle) if mb < B else torch.arange(B)
            for start in range(0, B, mb):
                idx = order[start : start + mb].to(seq.device)
                m = mask[idx]
                new_logprobs, new_entropy = response_logprobs(policy, seq[idx], seq_mask[idx], P, T)
                new_values = response_values(critic, seq[idx], seq_mask[idx], P)
                adv, ret, old_v = advantages[idx], returns[idx], values[idx]

                v_clipped = old_v + (new_values - old_v).clamp(-params.cliprange_value, params.cliprange_value)
                vf_losses = torch.max((new_values - ret) ** 2, (v_clipped - ret) ** 2)
                vf_loss = 0.5 * masked_mean(vf_losses, m)

                log_ratio = (new_logprobs - logprobs[idx]) * m
                ratio = log_ratio.exp()
                pg_losses = -adv * ratio
                pg_losses_clipped = -adv * ratio.clamp(1.0 - params.cliprange, 1.0 + params.cliprange)
                pg_loss = masked_mean(torch.max(pg_losses, pg_losses_clipped), m)

                loss = pg_loss + params.vf_coef * vf_loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([*policy.parameters(), *critic.parameters()], params.max_grad_norm)
                optimizer.step()

                with torch.no_grad():
                    stats["approxkl"].append(float(0.5 * masked_mean(log_ratio**2, m)))
                    stats["clipfrac"].append(float(masked_mean((pg_losses_clipped > pg_losses).float(), m)))
                    stats["vf_clipfrac"].append(float(masked_mean(((new_values - ret) ** 2 < (v_clipped - ret) ** 2).float(), m)))
                    stats["pg_loss"].append(float(pg_loss))
                    stats["vf_loss"].append(float(vf_loss))
                    stats["ratio"].append(float(masked_mean(ratio, m)))
                    stats["entropy"].append(float(masked_mean(new_entropy, m)))

        episodes += B
        mean_kl = float(kl.sum(1).mean())
        mean_non_score = float(non_score_reward.sum(1).mean())
        avg = {k: sum(v) / len(v) for k, v in stats.items()}
        oracle = scorer.oracle(ro)
        recorder.log(
            episodes,
            **{
                "objective/kl": mean_kl,
                "objective/entropy": float((entropy * fmask).sum(1).mean()),
                "objective/non_score_reward": mean_non_score,
                "objective/rlhf_reward": float(scores.mean()) + mean_non_score,
                "objective/scores": float(scores.mean()),
                "objective/oracle_score": sum(oracle) / len(oracle),
                "objective/kl_coef": kl_coef,
                "policy/approxkl_avg": avg["approxkl"],
                "policy/clipfrac_avg": avg["clipfrac"],
                "policy/entropy_avg": avg["entropy"],
                "loss/policy_avg": avg["pg_loss"],
                "loss/value_avg": avg["vf_loss"],
                "val/clipfrac_avg": avg["vf_clipfrac"],
                "val/ratio": avg["ratio"],
                "val/num_eos_tokens": float(ro.ended.sum()),
                "val/response_length": float(fmask.sum(1).mean()),
            },
        )
        log.add(ro, scores.tolist(), "train", episodes, oracle=oracle if scorer.reward_model is not None else None, logprob=logprobs, ref_logprob=ref_logprobs, kl=kl,
                value=values, advantage=advantages)

        if params.adaptive_kl:  # Ziegler et al.: β ← β (1 + clip(KL/target − 1, ±0.2) · B / horizon)
            error = max(-0.2, min(0.2, mean_kl / params.target_kl - 1.0))
            kl_coef *= 1.0 + error * B / params.kl_horizon
        if it % params.eval_every == 0:
            last_eval = run_eval()
        recorder.progress(it / params.iterations)
        if checkpoint.after_update(it, episodes, lambda: {
            "iteration": it, "episodes": episodes, "kl_coef": kl_coef, "first_eval": first_eval,
            "last_eval": last_eval, "episode_count": dict(log.count),
        }):
            return {}
        if clock.over():
            break
    if it % params.eval_every != 0:
        last_eval = run_eval()

    save_model(recorder, policy, "lm", tok)
    return lift_summary(first_eval, last_eval, it, episodes, clock.elapsed(), stage.run_id, reward_id,
                        kl_coef=round(kl_coef, 5))


def lift_summary(first: dict, last: dict, iterations: int, episodes: int, seconds: float, init_id: int,
                 reward_id: int | None, **extra) -> dict:
    """The headline of a policy-optimisation run: held-out score before (the SFT policy) and after."""
    std = first["eval/reward_std"]
    out = {
        "iterations": iterations, "episodes": episodes, "train_seconds": round(seconds, 1),
        "init_run_id": init_id, "reward_run_id": reward_id,
        "sft_reward_mean": round(first["eval/reward_mean"], 4), "sft_reward_std": round(std, 4),
        "final_reward_mean": round(last["eval/reward_mean"], 4),
        "lift_in_sft_std": round((last["eval/reward_mean"] - first["eval/reward_mean"]) / std, 3) if std > 0 else None,
        "sft_oracle_score": round(first["eval/oracle_score"], 4), "final_oracle_score": round(last["eval/oracle_score"], 4),
        "final_kl": round(last["eval/kl"], 4), **extra,
    }
    if "eval/accuracy" in first:
        out["sft_accuracy"] = round(first["eval/accuracy"], 4)
        out["final_accuracy"] = round(last["eval/accuracy"], 4)
    return out
