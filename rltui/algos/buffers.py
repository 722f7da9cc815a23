"""Replay buffers (DQN: plain, or frame-sharing for stacked frames) and rollout buffer (PPO): preallocated numpy arrays, filled in place.

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


class _TransitionRing:
    """What both replays keep per transition besides its observations: the action, the reward and
    `terminated`, in a ring of `capacity` slots (`pos` the next slot, `full` once it wrapped)."""

    def __init__(self, capacity: int, action_shape: tuple[int, ...], action_dtype: Any) -> None:
        self.capacity = capacity
        self.actions = np.zeros((capacity, *action_shape), action_dtype)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.pos = 0
        self.full = False

    def __len__(self) -> int:
        return self.capacity if self.full else self.pos

    def _slots(self, n: int) -> slice | np.ndarray:
        """The next n slots: a slice when the ring does not wrap (the common case), else their indices."""
        return slice(self.pos, self.pos + n) if self.pos + n <= self.capacity else (self.pos + np.arange(n)) % self.capacity

    def _store(self, idx: slice | np.ndarray, n: int, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray) -> None:
        """Write the n transitions' action, reward and terminated into `idx` and move the ring on."""
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        if self.pos + n >= self.capacity:
            self.full = True
        self.pos = (self.pos + n) % self.capacity


class ReplayBuffer(_TransitionRing):
    """A ring of (s, a, r, s', terminated) transitions. s' of a truncated step is the true last
    observation (not the reset one), and `terminated` is 0 there, so the target bootstraps from it.

    Observations are held in their own dtype and shape (`obs_shape` an int for a vector, or (H, W, C)
    for a frame; MinAtar's are bool): a 10×10×4 bool frame costs 400 bytes, not 1,600 as float32.
    They become float32 only in a sampled batch, on the training device."""

    def __init__(self, capacity: int, obs_shape: int | tuple[int, ...], action_shape: tuple[int, ...] = (),
                 action_dtype: Any = np.int64, obs_dtype: Any = np.float32) -> None:
        super().__init__(capacity, action_shape, action_dtype)
        shape = (obs_shape,) if isinstance(obs_shape, int) else tuple(obs_shape)
        self.obs = np.zeros((capacity, *shape), obs_dtype)
        self.next_obs = np.zeros((capacity, *shape), obs_dtype)

    @property
    def nbytes(self) -> int:
        """Bytes the buffer holds, all arrays together."""
        return sum(a.nbytes for a in (self.obs, self.next_obs, self.actions, self.rewards, self.terminated))

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Add one vector step (n transitions at once)."""
        n = len(obs)
        idx = self._slots(n)
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self._store(idx, n, actions, rewards, terminated)

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device) -> TransitionBatch:
        return self.gather(rng.integers(0, len(self), batch_size), device)

    def gather(self, idx: np.ndarray, device: torch.device) -> TransitionBatch:
        """The transitions at ring positions `idx`, as a batch on `device`."""
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



class FrameSharingReplayBuffer(_TransitionRing):
    """Replay for stacked-frame observations (Atari's 4 × 84×84 uint8) that stores each frame once.

    s_t = (f_{t−k+1}, …, f_t) and s' = (f_{t−k+2}, …, f_{t+1}) share k − 1 frames, and s' is the next
    step's s. So the buffer keeps a ring of single frames and, per transition, the k + 1 frame numbers
    that rebuild both at sample time: s = frames[ids[:k]], s' = frames[ids[1:]] (the stack axis put back
    where the env has it). A transition continues its env copy's stack only when its s equals, frame
    for frame, the s' added for that copy the step before; otherwise (an episode's first step, after a
    termination or a truncation) s is a fresh stack whose distinct frames are written anew. A stack
    therefore never mixes two episodes, whatever the env pads a reset stack with: ale-py and
    Gymnasium's FrameStackObservation repeat the reset frame (one frame written), zero padding costs
    two. Rebuilt s and s' equal what ReplayBuffer stores, byte for byte; `terminated` is stored as given
    (a truncation's s' is its true final stack, and it bootstraps).

    The frame ring holds capacity + capacity/32 frames: one per transition plus the episodes' first
    frames. A transition whose oldest frame the ring has since overwritten (only where episodes average
    fewer than ~32 steps) is never sampled. Memory per transition: about one frame, plus 8 × (k + 1)
    bytes of frame numbers and 16 of action, reward and terminated."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], stack_axis: int = -1, obs_dtype: Any = np.uint8,
                 action_shape: tuple[int, ...] = (), action_dtype: Any = np.int64) -> None:
        super().__init__(capacity, action_shape, action_dtype)
        shape = tuple(obs_shape)
        self.obs_shape, self.stack_axis = shape, stack_axis % len(shape)
        self.k = shape[self.stack_axis]
        frame_shape = shape[:self.stack_axis] + shape[self.stack_axis + 1:]
        self.n_frames = capacity + max(capacity // 32, 2 * (self.k + 1))
        self.frames = np.zeros((self.n_frames, *frame_shape), obs_dtype)
        self.frame_ids = np.zeros((capacity, self.k + 1), np.int64)  # frame numbers (ever written), slot = number % n_frames
        self.frames_written = 0
        self.last_ids: np.ndarray | None = None  # per env copy: the frame numbers of the s' it added last

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.frames, self.frame_ids, self.actions, self.rewards, self.terminated))

    def _stacks(self, obs: np.ndarray) -> np.ndarray:
        return np.moveaxis(np.asarray(obs), self.stack_axis + 1, 1)  # (n, k, *frame): a view

    def _write(self, frame: np.ndarray) -> int:
        number = self.frames_written
        self.frames[number % self.n_frames] = frame
        self.frames_written += 1
        return number

    def _intact(self, ids: np.ndarray) -> np.ndarray:
        """Whether a transition's frames are all still in the ring (its ids ascend: the first is the oldest)."""
        return ids[..., 0] >= self.frames_written - self.n_frames

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray, terminated: np.ndarray) -> None:
        """Add one vector step (n transitions at once, env copy i at row i every step)."""
        s, s_next = self._stacks(obs), self._stacks(next_obs)
        n, k = len(s), self.k
        if not np.array_equal(s_next[:, :-1], s[:, 1:]):
            raise ValueError("frame sharing needs stacked frames: each s' must be s shifted by one frame along the "
                             f"stack axis {self.stack_axis} of observations shaped {self.obs_shape}")
        last = self.last_ids if self.last_ids is not None and len(self.last_ids) == n else None
        ids = np.empty((n, k + 1), np.int64)
        for i in range(n):
            if last is not None and self._intact(last[i]) and np.array_equal(s[i], self.frames[last[i] % self.n_frames]):
                ids[i, :k] = last[i]  # the same episode: s is the s' stored a step ago
            else:  # a fresh stack (an episode's start): its distinct frames, each once
                for j in range(k):
                    same = j > 0 and np.array_equal(s[i, j], s[i, j - 1])
                    ids[i, j] = ids[i, j - 1] if same else self._write(s[i, j])
            ids[i, k] = self._write(s_next[i, -1])
        self.last_ids = ids[:, 1:].copy()
        idx = self._slots(n)
        self.frame_ids[idx] = ids
        self._store(idx, n, actions, rewards, terminated)

    def intact(self) -> np.ndarray:
        """Ring positions of the transitions that can be sampled (all of them, unless episodes are very short)."""
        return np.flatnonzero(self._intact(self.frame_ids[:len(self)]))

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device) -> TransitionBatch:
        idx = rng.integers(0, len(self), batch_size)
        for _ in range(8):  # redraw the few whose frames were overwritten
            stale = ~self._intact(self.frame_ids[idx])
            if not stale.any():
                return self.gather(idx, device)
            idx[stale] = rng.integers(0, len(self), int(stale.sum()))
        intact = self.intact()
        return self.gather(intact[rng.integers(0, len(intact), batch_size)], device)

    def gather(self, idx: np.ndarray, device: torch.device) -> TransitionBatch:
        """The transitions at ring positions `idx`: s and s' rebuilt from k + 1 frames each, on `device`."""
        stacked = torch.from_numpy(self.frames[self.frame_ids[idx] % self.n_frames]).to(device, non_blocking=True)
        axis = self.stack_axis + 1  # (B, k + 1, *frame) -> s, s' with the stack axis where the env has it
        obs = stacked[:, :-1].movedim(1, axis).to(torch.float32)
        next_obs = stacked[:, 1:].movedim(1, axis).to(torch.float32)
        t = lambda a: torch.from_numpy(a[idx]).to(device, non_blocking=True)  # noqa: E731
        return TransitionBatch(obs, t(self.actions), t(self.rewards), next_obs, t(self.terminated))

    def state_dict(self) -> dict[str, Any]:
        n, written = len(self), min(self.frames_written, self.n_frames)
        return {
            "frames": torch.from_numpy(self.frames[:written].copy()), "frame_ids": torch.from_numpy(self.frame_ids[:n].copy()),
            "actions": torch.from_numpy(self.actions[:n].copy()), "rewards": torch.from_numpy(self.rewards[:n].copy()),
            "terminated": torch.from_numpy(self.terminated[:n].copy()),
            "pos": torch.tensor(self.pos), "full": torch.tensor(self.full), "frames_written": torch.tensor(self.frames_written),
            "last_ids": None if self.last_ids is None else torch.from_numpy(self.last_ids.copy()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.frames[:len(state["frames"])] = state["frames"].numpy()
        n = len(state["rewards"])
        for name in ("frame_ids", "actions", "rewards", "terminated"):
            getattr(self, name)[:n] = state[name].numpy()
        self.pos, self.full, self.frames_written = int(state["pos"]), bool(state["full"]), int(state["frames_written"])
        self.last_ids = None if state["last_ids"] is None else state["last_ids"].numpy().copy()


def replay_buffer(capacity: int, venv: Any, frame_sharing: bool) -> ReplayBuffer | FrameSharingReplayBuffer:
    """DQN's replay: frames shared between stacks where the env stacks them (`venv.frame_stack_axis`,
    ALE's) and `frame_sharing` is on; otherwise each s and s' whole, in the observation's own dtype."""
    axis = getattr(venv, "frame_stack_axis", None)
    if frame_sharing and axis is not None:
        return FrameSharingReplayBuffer(capacity, venv.obs_shape, axis, obs_dtype=venv.obs_dtype)
    return ReplayBuffer(capacity, venv.obs_shape, obs_dtype=venv.obs_dtype)

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
