"""A2C (Mnih et al. 2016, synchronous): the advantage actor-critic, PPO's simplest sibling.

Each iteration collects n_steps × num_envs transitions with the current policy (rltui/algos/on_policy.py,
shared with PPO), computes n-step returns (GAE with λ = 1 by default: G_t = r_t + γ r_{t+1} + … +
γ^k V(s_{t+k}), bootstrapped where the rollout or a truncation cuts the episode, 0 past a terminal
state), then takes ONE gradient step on the whole batch:

    A_t   = G_t − V(s_t)                                   (V(s_t) as collected: no gradient)
    loss  = −mean(log π_θ(a_t|s_t) A_t) + c_v mean((V_φ(s_t) − G_t)²) − c_e mean(H[π_θ(·|s_t)])

with RMSprop (α = 0.99, ε = 1e-5, as SB3 and the paper) or Adam, and the gradient norm clipped.
"""

from __future__ import annotations

from typing import Any

import torch

from rltui.algos.common import clip_grad_norm
from rltui.algos.networks import adam
from rltui.algos.on_policy import OnPolicyRun, explained_variance
from rltui.algos.returns import normalize
from rltui.recorder import Recorder


def make_optimizer(params: Any, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if params.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=params.learning_rate, alpha=params.rms_prop_alpha,
                                   eps=params.rms_prop_eps, foreach=True)
    return adam(parameters, params.learning_rate, eps=params.adam_eps)


def train(env: Any, params: Any, recorder: Recorder, *, seed: int, device: str) -> dict[str, Any]:
    run = OnPolicyRun(env, params, recorder, seed, device, lambda p: make_optimizer(params, p), shared=params.shared_critic)
    agent, optimizer, parameters, counters, buf = run.agent, run.optimizer, run.parameters, run.counters, run.buf
    total = params.total_timesteps
    while counters.global_step < total:
        if recorder.should_stop():
            break
        lr = params.learning_rate * ((1.0 - counters.global_step / total) if params.anneal_lr else 1.0)
        for group in optimizer.param_groups:
            group["lr"] = lr

        _, returns = run.collect()  # G_t: n-step (λ = 1) or GAE(λ) returns

        # --- one gradient step on the whole rollout ------------------------------------------------
        b_obs, b_actions, b_values = buf.flat("obs", "actions", "values")
        b_returns = returns.reshape(-1)
        logp, entropy, values = agent.evaluate(b_obs, b_actions)
        advantages = b_returns - b_values  # A_t = G_t − V(s_t), V as collected (no gradient through it)
        if params.normalize_advantage and len(advantages) > 1:
            advantages = normalize(advantages)
        policy_loss = -(logp * advantages).mean()
        value_loss = ((values - b_returns) ** 2).mean()
        entropy_loss = -entropy.mean()
        loss = policy_loss + params.vf_coef * value_loss + params.ent_coef * entropy_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(parameters, params.max_grad_norm)
        optimizer.step()
        counters.updates += 1

        if counters.log_due(params.log_every):
            run.log(lr, loss=loss.item(), policy_loss=policy_loss.item(), value_loss=value_loss.item(),
                    entropy_loss=entropy_loss.item(), entropy=-entropy_loss.item(),
                    explained_variance=explained_variance(b_values, b_returns))
        run.maybe_checkpoint()
    return run.finish()
