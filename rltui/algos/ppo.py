"""PPO (Schulman et al. 2017): an actor-critic that improves π with a clipped surrogate objective.

Each iteration collects n_steps × num_envs transitions with the current policy π_old, computes
GAE(λ) advantages, then takes n_epochs passes of minibatch gradient steps on

    ratio_t(θ)  = π_θ(a_t|s_t) / π_old(a_t|s_t)
    L_clip(θ)   = E[ min(ratio_t A_t, clip(ratio_t, 1-ε, 1+ε) A_t) ]
    L_V(φ)      = E[ (V_φ(s_t) - G_t^λ)² ]          (optionally clipped around V_old)
    loss        = -L_clip + c_v L_V - c_e H[π_θ(·|s_t)]

Time-limit truncation is not termination: the advantage of a truncated step bootstraps from
V(final observation) (see rltui/algos/returns.py:gae).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rltui.algos.buffers import RolloutBuffer
from rltui.algos.common import SPS, Counters, clip_grad_norm, EvalSchedule, finish_summary, policy_act, restore_or_start, obs_tensor, save_checkpoint, setup
from rltui.algos.networks import ActorCritic, adam
from rltui.algos.returns import gae, normalize
from rltui.recorder import Recorder


def train(env: Any, params: Any, recorder: Recorder, *, seed: int, device: str) -> dict[str, Any]:
    env, dev = setup(env, params, device)
    gamma, lam = env.gamma, params.gae_lambda
    venv = env.vector(seed)
    n_envs, n_steps = venv.num_envs, params.n_steps
    batch = n_envs * n_steps
    minibatch = min(params.batch_size, batch)
    discrete = venv.n_actions is not None
    rng = np.random.default_rng(seed)

    agent = ActorCritic(venv.obs_dim, venv.n_actions, venv.action_dim, params.net_arch,
                        params.activation, params.log_std_init).to(dev)
    parameters = list(agent.parameters())
    optimizer = adam(parameters, params.learning_rate, eps=1e-5)
    counters = Counters()
    restore_or_start(recorder, counters, rng, env, agent=agent, optimizer=optimizer)

    act = policy_act(agent, venv.action_dim, discrete, with_value=True)

    evals = EvalSchedule(env, params, seed, act, recorder, counters, dev)
    action_shape = () if discrete else (venv.action_dim,)
    buf = RolloutBuffer(n_steps, n_envs, venv.obs_dim, action_shape, torch.int64 if discrete else torch.float32, dev)
    low = None if discrete else venv.action_low
    high = None if discrete else venv.action_high

    obs = obs_tensor(venv.reset(), dev)
    sps = SPS(counters.global_step)
    stats: dict[str, float] = {}
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

        # --- rollout with π_old ---------------------------------------------------------------
        trunc_rows: list[int] = []  # rows where some copy was truncated (time limit)
        with torch.inference_mode():
            for t in range(n_steps):
                action, logp, value = agent.act_value(obs)
                buf.obs[t] = obs
                buf.actions[t] = action
                buf.logprobs[t] = logp
                buf.values[t] = value
                a = action.cpu().numpy()
                if low is not None:
                    a = np.clip(a, low, high)  # the env gets a legal action; the buffer keeps the sample
                next_obs, rewards, terminated, truncated, final_obs, finished = venv.step(a)
                counters.global_step += n_envs
                buf.rewards[t] = torch.from_numpy(rewards)
                buf.terminated[t] = torch.from_numpy(terminated)
                buf.episode_ends[t] = torch.from_numpy(np.maximum(terminated, truncated))
                obs = obs_tensor(next_obs, dev)
                if truncated.any():
                    # V(s') of a truncated step is V(final observation), not V(reset observation)
                    idx = np.flatnonzero(truncated)
                    buf.next_values[t, idx] = agent.value(obs_tensor(final_obs[idx], dev))
                    trunc_rows.append(t)
                if finished:
                    counters.report_episodes(recorder, finished)
                evals.maybe()
            last_value = agent.value(obs)

            # next_values[t] = V(s_{t+1}): the next row's value, except where the episode was truncated.
            next_values = torch.cat([buf.values[1:], last_value.unsqueeze(0)])
            for t in trunc_rows:
                truncated_here = (buf.episode_ends[t] > 0) & (buf.terminated[t] == 0)
                next_values[t] = torch.where(truncated_here, buf.next_values[t], next_values[t])
            advantages, returns = gae(buf.rewards, buf.values, next_values, buf.terminated, buf.episode_ends, gamma, lam)

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
            with torch.no_grad():
                var_y = b_returns.var()
                explained = 0.0 if var_y == 0 else float(1 - (b_returns - b_values).var() / var_y)
            all_log_ratios = torch.cat(log_ratios)
            if entropy is None:
                with torch.no_grad():
                    entropy = agent.evaluate(b_obs[mb], b_actions[mb])[1]
            stats = dict(
                loss=loss.item(), policy_loss=policy_loss.item(), value_loss=value_loss.item(),
                entropy_loss=-entropy.mean().item(), entropy=entropy.mean().item(),
                approx_kl=approx_kl(all_log_ratios),
                clip_fraction=float(((all_log_ratios.exp() - 1.0).abs() > clip).float().mean()),
                explained_variance=explained, learning_rate=lr, clip_range=clip, sps=sps(counters.global_step),
            )
            if not discrete:
                stats["std"] = float(agent.log_std.detach().exp().mean())
            recorder.log(counters.global_step, **stats)
            recorder.progress(counters.global_step / total)
        if counters.checkpoint_due(params.checkpoint_every):
            _checkpoint(recorder, counters, rng, agent, optimizer)

    _checkpoint(recorder, counters, rng, agent, optimizer)
    return finish_summary(counters, evals, {"updates": counters.updates})


def approx_kl(log_ratio: torch.Tensor) -> float:
    """approx KL(π_old || π_θ) by the (r − 1) − log r estimator (low variance, ≥ 0), r = π_θ / π_old."""
    return float(((log_ratio.exp() - 1) - log_ratio).mean())


def _checkpoint(recorder: Recorder, counters: Counters, rng: np.random.Generator, agent: ActorCritic, optimizer: torch.optim.Optimizer) -> None:
    save_checkpoint(recorder, counters, rng, agent=agent.state_dict(), optimizer=optimizer.state_dict())
