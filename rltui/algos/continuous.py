"""What SAC and TD3 share: off-policy actor-critic training on a continuous action space.

The loop (the same shape as DQN's, over the same ReplayBuffer):

    act: uniform random actions for the first learning_starts steps, then the algorithm's exploration
         (SAC: a sample of π; TD3: μ(s) + Gaussian noise); store (s, a, r, s', terminated)
    evaluate, when a round is due at this step
    learn: at the end of every rollout of train_freq env steps once more than learning_starts are
           stored, gradient_steps updates on minibatches drawn (with replacement) from the replay buffer

That is Stable-Baselines3's order (its EvalCallback runs inside the rollout, training after it), so an
evaluation at step N has seen exactly the updates SB3's has, and bench_continuous compares like with like.

Actions live in [−1, 1]^d inside the algorithm (what the actors output, what replay stores, what the
critics see) and are mapped affinely onto the env's [low, high] only when the env is stepped.

A time-limit truncation is not terminal: its transition keeps terminated = 0 and s' = the true final
observation, so the twin-Q target bootstraps from it (Pendulum never terminates: every episode ends by
truncation at 200 steps).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from rltui.algos.buffers import ReplayBuffer, TransitionBatch
from rltui.algos.common import SPS, clip_grad_norm, Counters, EvalSchedule, finish_summary, obs_tensor, restore_or_start, save_checkpoint, setup
from rltui.algos.networks import TwinQ
from rltui.recorder import Recorder


class ContinuousAgent(Protocol):
    def modules(self) -> dict[str, Any]: ...            # everything a checkpoint must hold (nets, optimizers)
    def policy(self) -> dict[str, torch.nn.Module]: ...  # what the "best" artifact holds
    def explore(self, obs: torch.Tensor) -> torch.Tensor: ...
    def act(self, obs: torch.Tensor, with_extras: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...  # deterministic
    def update(self, batch: TransitionBatch, update_index: int) -> dict[str, torch.Tensor]: ...
    def upgrade_checkpoint(self, restored: dict[str, Any]) -> None: ...  # map an older layout in place


def step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.nn.Parameter],
         max_grad_norm: float | None, also: tuple[torch.nn.Parameter, ...] = ()) -> None:
    """One gradient step on `loss` for `params` (and `also`, unclipped), all held by `optimizer`.

    Gradients flow into these parameters only (backward(inputs=...)); a critic that `loss` goes through
    enters it with its weights held fixed (TwinQ's fixed=True), so their gradients are never computed."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=[*params, *also])
    apply_gradients(optimizer, params, max_grad_norm)


def apply_gradients(optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], max_grad_norm: float | None) -> None:
    """The optimizer's step on the gradients the parameters hold, clipped to max_grad_norm first if set."""
    if max_grad_norm is not None:
        clip_grad_norm(params, max_grad_norm)
    optimizer.step()


def critic_step(critic: TwinQ, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter], b: TransitionBatch,
                y: torch.Tensor, max_grad_norm: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One step on the twin critics' loss toward the target y, with its gradient written out
    (rltui/algos/backprop.py):

        L_Q = ½ Σ_j mean((Q_j(s, a) − y)²)        ∂L_Q/∂Q_j(s, a) = (Q_j(s, a) − y) / batch

    Returns (Q_j(s, a) before the step, shape (2, batch); L_Q)."""
    q, tapes = critic.taped(b.obs, b.actions)
    critic.backward(tapes, (q - y) / y.shape[0])
    apply_gradients(optimizer, params, max_grad_norm)
    return q, 0.5 * ((q - y) ** 2).mean(-1).sum()


@torch.no_grad()
def polyak(target: torch.nn.Module, online: torch.nn.Module, tau: float) -> None:
    """θ_target ← τ θ + (1 − τ) θ_target."""
    torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)


def continuous_env(env: Any, params: Any, device: str, algo: str) -> tuple[Any, torch.device, Any]:
    env, dev = setup(env, params, device)
    probe = env.vector(0, num_envs=1)
    if probe.n_actions is not None:
        raise ValueError(f"{algo} needs a continuous action space (Pendulum-v1, MountainCarContinuous-v0, "
                         "LunarLander-v3 with continuous = true); use DQN, PPO or A2C for discrete actions")
    return env, dev, probe


def train_off_policy(env: Any, params: Any, recorder: Recorder, seed: int, dev: torch.device,
                     agent: ContinuousAgent) -> dict[str, Any]:
    venv = env.vector(seed)
    n_envs, action_dim = venv.num_envs, venv.action_dim
    low, high = venv.action_low, venv.action_high
    scale, offset = (high - low) / 2.0, (high + low) / 2.0

    def to_env(a: np.ndarray) -> np.ndarray:  # [−1, 1] → [low, high]
        return offset + scale * a

    rng = np.random.default_rng(seed)
    replay = ReplayBuffer(params.buffer_size, venv.obs_dim, (action_dim,), np.float32)
    counters = Counters()
    restored = restore_or_start(recorder, counters, rng, env)  # the modules load here, once an older layout is mapped
    if restored is not None:
        agent.upgrade_checkpoint(restored)
        missing = [name for name in agent.modules() if name not in restored]
        if missing:
            raise ValueError(f"this run's last checkpoint has no {', '.join(missing)}: it was written by another "
                             "version of the algorithm and cannot resume; start a new run from its config")
        for name, module in agent.modules().items():
            module.load_state_dict(restored[name])
        if "replay" in restored:
            replay.load_state_dict(restored["replay"])
    scale_t = torch.as_tensor(scale, device=dev)
    offset_t = torch.as_tensor(offset, device=dev)

    def act(obs: torch.Tensor, with_extras: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        action, extras = agent.act(obs, with_extras)
        return offset_t + scale_t * action, extras

    evals = EvalSchedule(env, params, seed, act, recorder, counters, dev, policy=agent.policy(), restored=restored)
    total = params.total_timesteps
    # SB3's schedule: a training phase closes each rollout of train_freq steps once more than learning_starts
    # steps are stored (the Zoo's TD3 on Pendulum: at 10,200, 10,400, …; SAC: at 101, 102, …)
    first_train = (params.learning_starts // params.train_freq + 1) * params.train_freq
    next_train = max(first_train, counters.global_step)
    obs = venv.reset()
    sps = SPS(counters.global_step)
    logged: dict[str, list[torch.Tensor]] = {}

    def checkpoint() -> None:
        state = {name: m.state_dict() for name, m in agent.modules().items()}
        if replay.obs.nbytes * 2 < 256 * 2**20:  # the replay buffer resumes the run exactly; skip a huge one
            state["replay"] = replay.state_dict()
        save_checkpoint(recorder, counters, rng, best=evals.best, **state)

    while counters.global_step < total:
        if recorder.should_stop():
            break
        # --- act -----------------------------------------------------------------------------------
        if counters.global_step < params.learning_starts:
            actions = rng.uniform(-1.0, 1.0, (n_envs, action_dim)).astype(np.float32)
        else:
            with torch.inference_mode():
                actions = agent.explore(obs_tensor(obs, dev)).cpu().numpy()
        next_obs, rewards, terminated, _truncated, final_obs, finished = venv.step(to_env(actions))
        # s' is the true final observation where an episode ended; only termination masks the target
        replay.add(obs, actions, rewards, final_obs, terminated)
        obs = next_obs
        counters.global_step += n_envs
        if finished:
            counters.report_episodes(recorder, finished)

        evals.maybe()  # before this step's training phase, as SB3 evaluates

        # --- learn (not after the last step's evaluation: the run ends with the weights it evaluated) ---
        # A minibatch is drawn with replacement from what is stored, even fewer than batch_size
        # transitions (SAC's first phases: learning_starts 100 < batch 256), as SB3's buffer does.
        if next_train <= counters.global_step < total:
            next_train = counters.global_step + params.train_freq
            for _ in range(params.gradient_steps):
                stats = agent.update(replay.sample(params.batch_size, rng, dev), counters.updates)
                counters.updates += 1
                for key, value in stats.items():
                    logged.setdefault(key, []).append(value)

        if counters.log_due(params.log_every):
            row = {key: float(torch.stack(values).mean()) for key, values in logged.items()}
            logged.clear()
            recorder.log(counters.global_step, learning_rate=params.learning_rate, sps=sps(counters.global_step), **row)
            recorder.progress(counters.global_step / total)
        if counters.checkpoint_due(params.checkpoint_every):
            checkpoint()

    evals.final()
    checkpoint()
    return finish_summary(counters, evals, {"updates": counters.updates})
