"""Replay buffer (DQN) and rollout buffer (PPO): preallocated numpy arrays, filled in place.

Samples come out as torch tensors on the training device; on CPU `torch.from_numpy` shares memory,
so nothing is copied twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class TransitionBatch:
    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor  # 1 only when s' is terminal: truncated transitions still bootstrap


class ReplayBuffer:
    """A ring of (s, a, r, s', terminated) transitions. s' of a truncated step is the true last
    observation (not the reset one), and `terminated` is 0 there, so the target bootstraps from it.

    Observations are held in their own dtype and shape (`obs_shape` an int for a vector, or (H, W, C)
    for a frame; MinAtar's are bool): a 10×10×4 bool frame costs 400 bytes, not 1,600 as float32.
    They become float32 only in a sampled batch, on the training device."""

    def __init__(self, capacity: int, obs_shape: int | tuple[int, ...], action_shape: tuple[int, ...] = (),
                 action_dtype: Any = np.int64, obs_dtype: Any = np.float32) -> None:
        self.capacity = capacity
        shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        self.obs = np.zeros((capacity, *shape), obs_dtype)
        self.next_obs = np.zeros((capacity, *shape), obs_dtype)
        self.actions = np.zeros((capacity, *action_shape), action_dtype)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.pos = 0
        self.full = False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    @property
    def nbytes(self) -> int:
        """Bytes the buffer holds, all arrays together."""
        return sum(a.nbytes for a in (self.obs, self.next_obs, self.actions, self.rewards, self.terminated))

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Add one vector step (n transitions at once)."""
        n = len(obs)
        # a slice when the ring does not wrap (the common case): no index array to build
        idx = slice(self.pos, self.pos + n) if self.pos + n <= self.capacity else (self.pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.next_obs[idx] = next_obs
        self.terminated[idx] = terminated
        if self.pos + n >= self.capacity:
            self.full = True
        self.pos = (self.pos + n) % self.capacity

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device) -> TransitionBatch:
        idx = rng.integers(0, len(self), batch_size)
        t = lambda a: torch.from_numpy(a[idx]).to(device, non_blocking=True)  # noqa: E731
        # frames travel in their own dtype (4x fewer bytes for bool/uint8) and become float on the device
        f = lambda a: t(a).to(torch.float32)  # noqa: E731
        return TransitionBatch(f(self.obs), t(self.actions), t(self.rewards), f(self.next_obs), t(self.terminated))

    def state_dict(self) -> dict[str, Any]:
        n = len(self)
        return {
            "obs": torch.from_numpy(self.obs[:n].copy()), "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
            "actions": torch.from_numpy(self.actions[:n].copy()), "rewards": torch.from_numpy(self.rewards[:n].copy()),
            "terminated": torch.from_numpy(self.terminated[:n].copy()),
            "pos": torch.tensor(self.pos), "full": torch.tensor(self.full),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = len(state["rewards"])
        for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
            getattr(self, name)[:n] = state[name].numpy()
        self.pos, self.full = int(state["pos"]), bool(state["full"])


class RolloutBuffer:
    """n_steps × num_envs of on-policy experience, with V(s) and log π(a|s) at collection time.

    `next_values[t]` holds V of the state reached after step t. It is filled from the next row's value
    except where an episode ended: there it is V(final observation) for a truncation (bootstrap) and
    irrelevant for a termination (masked by `terminated`).
    """

    def __init__(self, n_steps: int, num_envs: int, obs_shape: int | tuple[int, ...], action_shape: tuple[int, ...],
                 action_dtype: torch.dtype, device: torch.device) -> None:
        z = lambda *shape, dtype=torch.float32: torch.zeros(shape, dtype=dtype, device=device)  # noqa: E731
        self.obs = z(n_steps, num_envs, *((obs_shape,) if isinstance(obs_shape, int) else obs_shape))
        self.actions = z(n_steps, num_envs, *action_shape, dtype=action_dtype)
        self.logprobs = z(n_steps, num_envs)
        self.rewards = z(n_steps, num_envs)
        self.values = z(n_steps, num_envs)
        self.next_values = z(n_steps, num_envs)
        self.terminated = z(n_steps, num_envs)
        self.episode_ends = z(n_steps, num_envs)
        self.n_steps, self.num_envs = n_steps, num_envs

    def flat(self, *names: str) -> list[torch.Tensor]:
        return [getattr(self, n).reshape(self.n_steps * self.num_envs, *getattr(self, n).shape[2:]) for n in names]
