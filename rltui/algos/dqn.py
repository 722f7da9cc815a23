"""DQN (Mnih et al. 2015) with double Q-learning (van Hasselt et al. 2016).

Q-learning with a network: act ε-greedily, store transitions in a replay buffer, and regress
Q_θ(s, a) on a target computed with a slowly-moving copy Q_target:

    y = r + γ (1 − terminated) Q_target(s', argmax_a' Q_θ(s', a'))      (double DQN)
    y = r + γ (1 − terminated) max_a' Q_target(s', a')                  (vanilla)
    loss = Huber(Q_θ(s, a) − y)

A time-limit truncation is not terminal: its transition keeps terminated = 0 and s' = the true final
observation, so the target bootstraps from it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rltui.algos.buffers import FrameSharingReplayBuffer, ReplayBuffer, replay_buffer
from rltui.algos.common import SPS, Counters, EvalSchedule, clip_grad_norm, finish_summary, restore_or_start, obs_tensor, save_checkpoint, setup
from rltui.algos.networks import QNetwork, adam
from rltui.recorder import Recorder


def linear_schedule(start: float, end: float, duration: float, t: float) -> float:
    return end if duration <= 0 else start + min(t / duration, 1.0) * (end - start)


def train(env: Any, params: Any, recorder: Recorder, *, seed: int, device: str) -> dict[str, Any]:
    env, dev = setup(env, params, device)
    gamma = env.gamma
    venv = env.vector(seed)
    if venv.n_actions is None:
        raise ValueError("DQN needs a discrete action space; use PPO or REINFORCE for continuous actions")
    n_envs, n_actions = venv.num_envs, venv.n_actions
    rng = np.random.default_rng(seed)

    # Unavailable actions (a custom MDP's) score −inf: never greedy, never a target's max.
    # The torso follows the observation: an MLP for vectors, a conv torso for (H, W, C) frames.
    q_net = QNetwork(venv.obs_shape, n_actions, params.net_arch, params.activation, venv.available).to(dev)
    q_target = copy.deepcopy(q_net)
    q_target.requires_grad_(False)
    parameters = list(q_net.parameters())
    optimizer = adam(parameters, params.learning_rate)
    # frames kept as bool/uint8; a stacked frame (ALE's) once, not in k stacks twice over (frame sharing)
    replay = replay_buffer(params.buffer_size, venv, params.replay_frame_sharing)
    counters = Counters()
    restored = restore_or_start(recorder, counters, rng, env, q_net=q_net, q_target=q_target, optimizer=optimizer)
    if restored is not None and "replay" in restored:
        replay.load_state_dict(restored["replay"])

    def act(obs: torch.Tensor, with_extras: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        q = q_net(obs)
        action = q.argmax(-1)
        return action, ({"Q": q, "V": q.max(-1).values} if with_extras else {})

    evals = EvalSchedule(env, params, seed, act, recorder, counters, dev, policy={"q_net": q_net}, restored=restored)
    total = params.total_timesteps
    decay_steps = params.exploration_fraction * total
    next_train = max(params.learning_starts, counters.global_step)
    next_target = counters.global_step + params.target_update_interval
    obs = venv.reset()
    sps = SPS(counters.global_step)
    losses: list[torch.Tensor] = []
    q_means: list[torch.Tensor] = []

    while counters.global_step < total:
        if recorder.should_stop():
            break
        # --- act ε-greedily in every copy at once ------------------------------------------------
        epsilon = linear_schedule(params.exploration_initial_eps, params.exploration_final_eps, decay_steps, counters.global_step)
        explore = rng.random(n_envs) < epsilon
        if venv.available is None:
            actions = rng.integers(0, n_actions, n_envs)
        else:  # uniform over the actions each copy's state allows
            actions = np.where(venv.allowed(), rng.random((n_envs, n_actions)), -1.0).argmax(-1)
        if not explore.all():  # the network only runs when some copy exploits
            with torch.inference_mode():
                greedy = q_net(obs_tensor(obs, dev)).argmax(-1).cpu().numpy()
            actions = np.where(explore, actions, greedy)
        next_obs, rewards, terminated, _truncated, final_obs, finished = venv.step(actions)
        # s' is the true final observation where an episode ended; only termination masks the target
        replay.add(obs, actions, rewards, final_obs, terminated)
        obs = next_obs
        counters.global_step += n_envs
        if finished:
            counters.report_episodes(recorder, finished)

        # --- learn ------------------------------------------------------------------------------
        if counters.global_step >= next_train and len(replay) >= params.batch_size:
            next_train = counters.global_step + params.train_freq
            # a linearly decaying step size (RL Zoo's "lin_" schedule): the last weights stop moving, so
            # the final policy is not a snapshot of the oscillation a constant step size keeps up
            lr = params.learning_rate * ((1.0 - counters.global_step / total) if params.anneal_lr else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr
            for _ in range(params.gradient_steps):
                b = replay.sample(params.batch_size, rng, dev)
                with torch.no_grad():
                    # y = r + γ (1 − terminated) Q_target(s', argmax_a' Q_θ(s', a')), a' over the actions s'
                    # allows (both networks score the others −inf)
                    if params.double_q:
                        a_next = q_net(b.next_obs).argmax(-1, keepdim=True)
                        q_next = q_target(b.next_obs).gather(-1, a_next).squeeze(-1)
                    else:
                        q_next = q_target(b.next_obs).max(-1).values
                    y = b.rewards + gamma * (1.0 - b.terminated) * q_next
                q_sa = q_net(b.obs).gather(-1, b.actions.unsqueeze(-1)).squeeze(-1)
                loss = F.smooth_l1_loss(q_sa, y) if params.huber else F.mse_loss(q_sa, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clip_grad_norm(parameters, params.max_grad_norm)
                optimizer.step()
                counters.updates += 1
                losses.append(loss.detach())
                q_means.append(q_sa.detach().mean())

        if counters.global_step >= next_target:
            next_target = counters.global_step + params.target_update_interval
            _update_target(q_net, q_target, params.tau)

        if counters.log_due(params.log_every):
            stats = {"epsilon": epsilon, "learning_rate": optimizer.param_groups[0]["lr"], "sps": sps(counters.global_step)}
            if losses:
                stats["loss"] = float(torch.stack(losses).mean())
                stats["q_values"] = float(torch.stack(q_means).mean())
                losses.clear()
                q_means.clear()
            recorder.log(counters.global_step, **stats)
            recorder.progress(counters.global_step / total)
        evals.maybe()
        if counters.checkpoint_due(params.checkpoint_every):
            _checkpoint(recorder, counters, rng, q_net, q_target, optimizer, replay, evals)

    evals.final()
    _checkpoint(recorder, counters, rng, q_net, q_target, optimizer, replay, evals)
    return finish_summary(counters, evals, {"updates": counters.updates})


@torch.no_grad()
def _update_target(q_net: QNetwork, q_target: QNetwork, tau: float) -> None:
    """Hard copy (τ = 1) or Polyak averaging θ_target ← τ θ + (1 − τ) θ_target."""
    if tau >= 1.0:
        q_target.load_state_dict(q_net.state_dict())
        return
    target_params, online_params = list(q_target.parameters()), list(q_net.parameters())
    torch._foreach_lerp_(target_params, online_params, tau)


def _checkpoint(recorder: Recorder, counters: Counters, rng: np.random.Generator, q_net: QNetwork, q_target: QNetwork,
                optimizer: torch.optim.Optimizer, replay: ReplayBuffer | FrameSharingReplayBuffer, evals: EvalSchedule) -> None:
    state = {"q_net": q_net.state_dict(), "q_target": q_target.state_dict(), "optimizer": optimizer.state_dict()}
    # The replay buffer makes the resumed run continue exactly; skip it when it is huge (> ~256 MB).
    if replay.nbytes < 256 * 2**20:
        state["replay"] = replay.state_dict()
    save_checkpoint(recorder, counters, rng, best=evals.best, **state)
