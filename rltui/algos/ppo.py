"""PPO (Schulman et al. 2017): an actor-critic that improves π with a clipped surrogate objective.

Each iteration collects n_steps × num_envs transitions with the current policy π_old, computes
GAE(λ) advantages, then takes n_epochs passes of minibatch gradient steps on

    ratio_t(θ)  = π_θ(a_t|s_t) / π_old(a_t|s_t)
    L_clip(θ)   = E[ min(ratio_t A_t, clip(ratio_t, 1-ε, 1+ε) A_t) ]
    L_V(φ)      = E[ (V_φ(s_t) - G_t^λ)² ]          (optionally clipped around V_old)
    loss        = -L_clip + c_v L_V - c_e H[π_θ(·|s_t)]

The rollout, GAE, evaluation and checkpoints are rltui/algos/on_policy.py's (shared with A2C); this
module is the update.
"""

from __future__ import annotations

from typing import Any

import torch

from rltui.algos.common import clip_grad_norm
from rltui.algos.networks import adam
from rltui.algos.on_policy import OnPolicyRun, explained_variance
from rltui.algos.returns import normalize
from rltui.recorder import Recorder


def train(env: Any, params: Any, recorder: Recorder, *, seed: int, device: str) -> dict[str, Any]:
    run = OnPolicyRun(env, params, recorder, seed, device, lambda p: adam(p, params.learning_rate, eps=1e-5))
    agent, optimizer, parameters, counters, buf, dev = run.agent, run.optimizer, run.parameters, run.counters, run.buf, run.dev
    batch = buf.n_steps * buf.num_envs
    minibatch = min(params.batch_size, batch)
    total = params.total_timesteps
    while counters.global_step < total:
        if recorder.should_stop():
            break
        # Linear annealing of the step size and the clip range (RL Zoo's "lin_" schedules).
        frac = 1.0 - counters.global_step / total
        lr = params.learning_rate * (frac if params.anneal_lr else 1.0)
        clip = params.clip_range * (frac if params.anneal_clip else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr

        advantages, returns = run.collect()  # rollout with π_old, GAE(λ)

        # --- n_epochs of minibatch updates -------------------------------------------------------
        b_obs, b_actions, b_logprobs, b_values = buf.flat("obs", "actions", "logprobs", "values")
        b_adv, b_returns = advantages.reshape(-1), returns.reshape(-1)
        one_minibatch = minibatch == batch
        if params.normalize_advantage and one_minibatch and batch > 1:
            b_adv = normalize(b_adv)  # the minibatch is the whole batch: standardise once, not every epoch
        log_ratios: list[torch.Tensor] = []  # detached, for approx_kl and clip_fraction
        for _epoch in range(params.n_epochs):
            # One minibatch: the gradient of a mean does not depend on the order, so no shuffle and no
            # gather (a slice is a view).
            minibatches = [slice(None)] if one_minibatch else torch.randperm(batch, device=dev).split(minibatch)
            for mb in minibatches:
                adv = b_adv[mb]
                if params.normalize_advantage and not one_minibatch and len(adv) > 1:
                    adv = normalize(adv)
                new_logp, entropy, new_value = agent.evaluate(b_obs[mb], b_actions[mb], with_entropy=params.ent_coef > 0)
                log_ratio = new_logp - b_logprobs[mb]
                ratio = log_ratio.exp()
                log_ratios.append(log_ratio.detach())
                policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()

                if params.clip_range_vf is not None:
                    v_old = b_values[mb]
                    v_clipped = v_old + (new_value - v_old).clamp(-params.clip_range_vf, params.clip_range_vf)
                    value_loss = torch.max((new_value - b_returns[mb]) ** 2, (v_clipped - b_returns[mb]) ** 2).mean()
                else:
                    value_loss = ((new_value - b_returns[mb]) ** 2).mean()
                loss = policy_loss + params.vf_coef * value_loss
                if entropy is not None:  # with ent_coef = 0 the entropy stays out of the graph
                    loss = loss - params.ent_coef * entropy.mean()

                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip_grad_norm(parameters, params.max_grad_norm)
                optimizer.step()
            counters.updates += 1
            if params.target_kl is not None and approx_kl(log_ratios[-1]) > 1.5 * params.target_kl:
                break  # the policy moved too far from π_old: stop this iteration's epochs

        if counters.log_due(params.log_every):
            all_log_ratios = torch.cat(log_ratios)
            if entropy is None:
                with torch.no_grad():
                    entropy = agent.evaluate(b_obs[mb], b_actions[mb])[1]
            run.log(
                lr, loss=loss.item(), policy_loss=policy_loss.item(), value_loss=value_loss.item(),
                entropy_loss=-entropy.mean().item(), entropy=entropy.mean().item(),
                approx_kl=approx_kl(all_log_ratios),
                clip_fraction=float(((all_log_ratios.exp() - 1.0).abs() > clip).float().mean()),
                explained_variance=explained_variance(b_values, b_returns), clip_range=clip,
            )
        run.maybe_checkpoint()
    return run.finish()


def approx_kl(log_ratio: torch.Tensor) -> float:
    """approx KL(π_old || π_θ) by the (r − 1) − log r estimator (low variance, ≥ 0), r = π_θ / π_old.
    Each term is ≥ 0 in exact arithmetic; float rounding near r = 1 can leave −1e-9, clamped to 0."""
    return float(((log_ratio.exp() - 1) - log_ratio).clamp(min=0.0).mean())
