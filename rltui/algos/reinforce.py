"""REINFORCE (Williams 1992): Monte-Carlo policy gradient, with an optional learned baseline.

Play whole episodes with π_θ, then push up the log-probability of each action in proportion to what
followed it:

    G_t  = r_{t+1} + γ G_{t+1}                      (return-to-go, 0 past a terminal state)
    A_t  = G_t − V_φ(s_t)                            (with a baseline; A_t = G_t without)
    ∇J  ≈ E[ Σ_t ∇ log π_θ(a_t|s_t) A_t ]
    loss = −mean(log π_θ(a_t|s_t) A_t) + c_v mean((V_φ(s_t) − G_t)²) − c_e H[π_θ(·|s_t)]

An episode cut by the time limit did not end: with a baseline its return-to-go bootstraps from
V_φ(final observation); without one it is the plain truncated sum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from rltui.algos.common import SPS, Counters, EvalSchedule, clip_grad_norm, finish_summary, policy_act, restore_or_start, obs_tensor, save_checkpoint, setup
from rltui.algos.networks import ActorCritic, adam
from rltui.algos.returns import discounted_returns, normalize
from rltui.recorder import Recorder


def train(env: Any, params: Any, recorder: Recorder, *, seed: int, device: str) -> dict[str, Any]:
    env, dev = setup(env, params, device)
    gamma = env.gamma
    venv = env.vector(seed)
    n_envs = venv.num_envs
    discrete = venv.n_actions is not None
    rng = np.random.default_rng(seed)

    agent = ActorCritic(venv.obs_dim, venv.n_actions, venv.action_dim, params.net_arch, params.activation,
                        params.log_std_init, critic=params.baseline,
                        available=venv.available).to(dev)
    parameters = list(agent.parameters())
    optimizer = adam(parameters, params.learning_rate)
    counters = Counters()
    restored = restore_or_start(recorder, counters, rng, env, agent=agent, optimizer=optimizer)

    act = policy_act(agent, venv.action_dim, discrete, with_value=params.baseline)

    evals = EvalSchedule(env, params, seed, act, recorder, counters, dev, policy={"agent": agent}, restored=restored)
    low, high = venv.action_low, venv.action_high
    obs = venv.reset()
    # the episode each copy is in the middle of: observations, actions, rewards
    live: list[tuple[list, list, list]] = [([], [], []) for _ in range(n_envs)]
    sps = SPS(counters.global_step)
    total = params.total_timesteps
    while counters.global_step < total:
        if recorder.should_stop():
            break
        # --- play until episodes_per_update whole episodes are done ------------------------------
        done_eps: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool, np.ndarray]] = []
        with torch.inference_mode():
            while len(done_eps) < params.episodes_per_update and counters.global_step < total:
                action, _ = agent.act(obs_tensor(obs, dev))
                a = action.cpu().numpy()
                env_a = a if discrete else np.clip(a, low, high)
                next_obs, rewards, terminated, truncated, final_obs, finished = venv.step(env_a)
                counters.global_step += n_envs
                for i in range(n_envs):
                    live[i][0].append(obs[i])
                    live[i][1].append(a[i])
                    live[i][2].append(rewards[i])
                    if terminated[i] or truncated[i]:
                        o, acts, rs = live[i]
                        done_eps.append((np.stack(o), np.asarray(acts), np.asarray(rs, np.float32), bool(truncated[i]), final_obs[i]))
                        live[i] = ([], [], [])
                obs = next_obs
                if finished:
                    counters.report_episodes(recorder, finished)
                evals.maybe()
        if not done_eps:
            break
        # Steps of unfinished episodes came from this π_θ, not the next one: drop them. A copy's
        # next steps still give true returns-to-go from the states they visit, so nothing is biased.
        live = [([], [], []) for _ in range(n_envs)]

        # --- G_t per episode (bootstrapping a truncated one from the baseline) --------------------
        returns = []
        for _, _, rs, truncated_ep, last_obs in done_eps:
            last_value = 0.0
            if truncated_ep and params.baseline:
                with torch.no_grad():
                    last_value = float(agent.value(obs_tensor(last_obs[None], dev))[0])
            dones = np.zeros_like(rs)
            returns.append(discounted_returns(rs, dones, gamma, last_value))
        b_obs = obs_tensor(np.concatenate([e[0] for e in done_eps]).astype(np.float32), dev)
        b_actions = torch.from_numpy(np.concatenate([e[1] for e in done_eps])).to(dev)
        b_returns = torch.from_numpy(np.concatenate(returns).astype(np.float32)).to(dev)

        # --- one policy-gradient step ----------------------------------------------------------
        logp, entropy, values = agent.evaluate(b_obs, b_actions)
        if values is not None:
            advantages = b_returns - values.detach()
            value_loss = ((values - b_returns) ** 2).mean()
        else:
            advantages = b_returns
            value_loss = torch.zeros((), device=dev)
        if params.normalize_returns and len(advantages) > 1:
            advantages = normalize(advantages)
        policy_loss = -(logp * advantages).mean()
        entropy_loss = -entropy.mean()
        loss = policy_loss + params.vf_coef * value_loss + params.ent_coef * entropy_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip_grad_norm(parameters, params.max_grad_norm)
        optimizer.step()
        counters.updates += 1

        if counters.log_due(params.log_every):
            stats = dict(loss=loss.item(), policy_loss=policy_loss.item(), value_loss=value_loss.item(),
                         entropy_loss=entropy_loss.item(), entropy=-entropy_loss.item(),
                         learning_rate=params.learning_rate, sps=sps(counters.global_step))
            if not discrete:
                stats["std"] = float(agent.log_std.detach().exp().mean())
            recorder.log(counters.global_step, **stats)
            recorder.progress(counters.global_step / total)
        if counters.checkpoint_due(params.checkpoint_every):
            _checkpoint(recorder, counters, rng, agent, optimizer, evals)

    evals.final()
    _checkpoint(recorder, counters, rng, agent, optimizer, evals)
    return finish_summary(counters, evals, {"updates": counters.updates})


def _checkpoint(recorder: Recorder, counters: Counters, rng: np.random.Generator, agent: ActorCritic,
                optimizer: torch.optim.Optimizer, evals: EvalSchedule) -> None:
    save_checkpoint(recorder, counters, rng, best=evals.best, agent=agent.state_dict(), optimizer=optimizer.state_dict())
