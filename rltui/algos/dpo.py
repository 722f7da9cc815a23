"""DPO: direct preference optimisation (Rafailov et al. 2023), offline on the oracle's pairs.

No reward model and no sampling while training: the policy's log-ratio to π_ref is the implicit reward
r̂(x, y) = β (log π(y|x) − log π_ref(y|x)), fitted to the pairs with the Bradley–Terry loss

    loss = −log σ(β [(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])

log π(y|x) sums over the response's tokens only. Evaluation samples held-out prompts like lm_ppo and
grpo (eval/reward_mean, eval/oracle_score, eval/accuracy) on the same x-axis: responses trained on
(2 per pair).
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from rltui.algos.lm_common import (
    Clock, EpisodeLog, StageCheckpoint, cpu_threads, epoch_minibatch, evaluate, load_policy, make_scorer, pair_batch, save_model,
    sequence_logprob,
)
from rltui.algos.lm_ppo import lift_summary


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, ref_chosen: torch.Tensor,
             ref_rejected: torch.Tensor, beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mean loss, implicit rewards of chosen, of rejected) from sequence log-probabilities (n,)."""
    chosen_rewards = beta * (policy_chosen - ref_chosen)
    rejected_rewards = beta * (policy_rejected - ref_rejected)
    loss = -F.logsigmoid(chosen_rewards - rejected_rewards).mean()
    return loss, chosen_rewards, rejected_rewards


def train(env, params, recorder, *, seed: int, device: str) -> dict:
    cpu_threads(device)
    stage = load_policy(recorder, params.init_run, env, device)
    policy, ref, tok = stage.policy, stage.ref, stage.tokenizer
    scorer, reward_id = make_scorer(recorder, env, tok, params.reward_run, device, required=False)
    optimizer = torch.optim.Adam(policy.parameters(), lr=params.learning_rate)

    pairs = env.preference_pairs(params.n_pairs, "train", seed)
    rng = random.Random(seed)
    log, clock = EpisodeLog(recorder, tok), Clock(recorder, params.time_limit_s)
    total = params.epochs * -(-len(pairs) // params.batch_size)
    episodes, step = 0, 0

    def run_eval() -> dict[str, float]:
        policy.eval()
        m = evaluate(policy, ref, env, tok, scorer, params.eval_prompts, params.temperature, device, seed, log, episodes)
        policy.train()
        recorder.log(episodes, **m)
        return m

    checkpoint = StageCheckpoint(recorder, params.checkpoint_every, total, policy=policy, optimizer=optimizer, rng=rng)
    resumed = checkpoint.restore()
    order: list[int] = []  # this epoch's shuffled pair indices
    if resumed is None:
        recorder.artifact("layout", env.layout())
        first_eval = last_eval = run_eval()
    else:
        step, episodes, order = resumed["step"], resumed["episodes"], resumed["order"]
        first_eval, last_eval = resumed["first_eval"], resumed["last_eval"]
        log.count.update(resumed["episode_count"])
    while step < total:
        batch, order = epoch_minibatch(pairs, step, params.batch_size, order, rng)
        n = len(batch)
        query, query_mask, response, response_mask = pair_batch(tok, batch, device)
        logps = sequence_logprob(policy, query, query_mask, response, response_mask)
        with torch.no_grad():
            ref_logps = sequence_logprob(ref, query, query_mask, response, response_mask)
        loss, chosen_r, rejected_r = dpo_loss(logps[:n], logps[n:], ref_logps[:n], ref_logps[n:], params.beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), params.max_grad_norm)
        optimizer.step()

        step += 1
        episodes += 2 * n
        chosen_r, rejected_r, logps = chosen_r.detach(), rejected_r.detach(), logps.detach()
        recorder.log(
            episodes,
            loss=loss.item(),
            **{
                "rewards/chosen": float(chosen_r.mean()),
                "rewards/rejected": float(rejected_r.mean()),
                "rewards/accuracies": float((chosen_r > rejected_r).float().mean()),
                "rewards/margins": float((chosen_r - rejected_r).mean()),
                "logps/chosen": float(logps[:n].mean()),
                "logps/rejected": float(logps[n:].mean()),
            },
        )
        if step % params.eval_every == 0:
            last_eval = run_eval()
        recorder.progress(step / total)
        if checkpoint.after_update(step, episodes, lambda: {
            "step": step, "episodes": episodes, "order": order, "first_eval": first_eval, "last_eval": last_eval,
            "episode_count": dict(log.count),
        }):
            return {}
        if clock.over():
            break
    if step % params.eval_every != 0:
        last_eval = run_eval()

    save_model(recorder, policy, "lm", tok)
    return lift_summary(first_eval, last_eval, step, episodes, clock.elapsed(), stage.run_id, reward_id, pairs=len(pairs))
