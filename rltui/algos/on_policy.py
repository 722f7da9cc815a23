"""What the on-policy actor-critics (PPO, A2C) share: the agent, its rollout into the RolloutBuffer
with GAE(λ) over it, evaluation, checkpoints and the summary. Each algorithm is then only its update.

    for each iteration:
        advantages, returns = run.collect()     # n_steps × num_envs with π_old, GAE(λ) (returns.py)
        ... the algorithm's gradient step(s) on run.buf ...
        run.maybe_checkpoint()
    return run.finish()

Time-limit truncation is not termination: the advantage of a truncated step bootstraps from
V(final observation) (see rltui/algos/returns.py:gae).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from rltui.algos.buffers import RolloutBuffer
from rltui.algos.common import SPS, Counters, EvalSchedule, finish_summary, obs_tensor, policy_act, restore_or_start, save_checkpoint, setup
from rltui.algos.networks import ActorCritic
from rltui.algos.returns import gae
from rltui.recorder import Recorder


class OnPolicyRun:
    def __init__(self, env: Any, params: Any, recorder: Recorder, seed: int, device: str,
                 make_optimizer: Callable[[list[torch.nn.Parameter]], torch.optim.Optimizer], shared: bool = False) -> None:
        env, dev = setup(env, params, device)
        self.params, self.recorder, self.dev = params, recorder, dev
        self.gamma, self.lam = env.gamma, params.gae_lambda
        self.venv = venv = env.vector(seed)
        self.discrete = discrete = venv.n_actions is not None
        self.rng = np.random.default_rng(seed)

        self.agent = ActorCritic(venv.obs_shape, venv.n_actions, venv.action_dim, params.net_arch, params.activation,
                                 params.log_std_init, available=venv.available, shared=shared).to(dev)
        self.parameters = list(self.agent.parameters())
        self.optimizer = make_optimizer(self.parameters)
        self.counters = Counters()
        restored = restore_or_start(self.recorder, self.counters, self.rng, env, agent=self.agent, optimizer=self.optimizer)
        act = policy_act(self.agent, venv.action_dim, discrete, with_value=True)
        self.evals = EvalSchedule(env, params, seed, act, recorder, self.counters, dev, policy={"agent": self.agent},
                                  restored=restored)
        action_shape = () if discrete else (venv.action_dim,)
        self.buf = RolloutBuffer(params.n_steps, venv.num_envs, venv.obs_shape, action_shape,
                                 torch.int64 if discrete else torch.float32, dev)
        self.obs = obs_tensor(venv.reset(), dev)
        self.sps = SPS(self.counters.global_step)

    def collect(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One rollout of n_steps per copy with the current policy π_old; returns (A, G^λ = A + V)."""
        agent, buf, venv, counters, dev = self.agent, self.buf, self.venv, self.counters, self.dev
        n_envs = venv.num_envs
        low, high = venv.action_low, venv.action_high
        trunc_rows: list[int] = []  # rows where some copy was truncated (time limit)
        obs = self.obs
        with torch.inference_mode():
            for t in range(buf.n_steps):
                action, logp, value = agent.act_value(obs)
                buf.obs[t] = obs
                buf.actions[t] = action
                buf.logprobs[t] = logp
                buf.values[t] = value
                a = action.cpu().numpy()
                if not self.discrete:
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
                    counters.report_episodes(self.recorder, finished)
                self.evals.maybe()
            last_value = agent.value(obs)
            self.obs = obs

            # next_values[t] = V(s_{t+1}): the next row's value, except where the episode was truncated.
            next_values = torch.cat([buf.values[1:], last_value.unsqueeze(0)])
            for t in trunc_rows:
                truncated_here = (buf.episode_ends[t] > 0) & (buf.terminated[t] == 0)
                next_values[t] = torch.where(truncated_here, buf.next_values[t], next_values[t])
            return gae(buf.rewards, buf.values, next_values, buf.terminated, buf.episode_ends, self.gamma, self.lam)

    def log(self, lr: float, **stats: float) -> None:
        if not self.discrete:
            stats["std"] = float(self.agent.log_std.detach().exp().mean())
        self.recorder.log(self.counters.global_step, learning_rate=lr, sps=self.sps(self.counters.global_step), **stats)
        self.recorder.progress(self.counters.global_step / self.params.total_timesteps)

    def checkpoint(self) -> None:
        save_checkpoint(self.recorder, self.counters, self.rng, best=self.evals.best,
                        agent=self.agent.state_dict(), optimizer=self.optimizer.state_dict())

    def maybe_checkpoint(self) -> None:
        if self.counters.checkpoint_due(self.params.checkpoint_every):
            self.checkpoint()

    def finish(self) -> dict[str, Any]:
        self.evals.final()
        self.checkpoint()
        return finish_summary(self.counters, self.evals, {"updates": self.counters.updates})


def explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[G − V] / Var[G] (SB3's explained_variance): 1 is a perfect critic, ≤ 0 no better than a constant."""
    with torch.no_grad():
        var_y = returns.var()
        return 0.0 if var_y == 0 else float(1 - (returns - values).var() / var_y)
