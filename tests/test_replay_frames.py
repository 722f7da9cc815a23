"""Frame-sharing replay (stacked frames stored once) against the plain buffer, on real stacked
observations: Gymnasium's FrameStackObservation over CartPole copies that terminate and truncate."""

from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import FrameStackObservation

from rltui.algos.buffers import FrameSharingReplayBuffer, ReplayBuffer

CPU = torch.device("cpu")
K = 4


def stacked_transitions(n_envs: int, steps: int, padding: str, stack_last: bool, seed: int = 0):
    """(obs, actions, rewards, next_obs, terminated, truncated) per vector step from `n_envs` real
    frame-stacked CartPole copies (12-step time limit; copy 0 falls before it), each reset as soon as its episode ends; s' of
    an ended episode is its true final stack, as the lab's vector envs give it."""
    envs = [FrameStackObservation(gym.make("CartPole-v1", max_episode_steps=12), K, padding_type=padding)
            for _ in range(n_envs)]
    layout = (lambda o: np.moveaxis(o, 0, -1).copy()) if stack_last else (lambda o: np.asarray(o).copy())
    obs = [layout(env.reset(seed=seed + i)[0]) for i, env in enumerate(envs)]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        actions = rng.integers(0, 2, n_envs)
        actions[0] = rng.random() < 0.1  # copy 0 mostly pushes one way: the pole falls (terminations)
        nxt, rewards, term, trunc = [], [], [], []
        for i, env in enumerate(envs):
            o2, r, te, tr, _ = env.step(int(actions[i]))
            nxt.append(layout(o2))
            rewards.append(r)
            term.append(te)
            trunc.append(tr and not te)
        out.append((np.stack(obs), actions, np.array(rewards, np.float32), np.stack(nxt),
                    np.array(term, np.float32), np.array(trunc)))
        obs = [layout(envs[i].reset()[0]) if term[i] or trunc[i] else nxt[i] for i in range(n_envs)]
    return out


def both(capacity: int, obs_shape, stack_axis: int):
    return (ReplayBuffer(capacity, obs_shape, obs_dtype=np.float32),
            FrameSharingReplayBuffer(capacity, obs_shape, stack_axis, obs_dtype=np.float32))


def assert_same_transitions(plain: ReplayBuffer, shared: FrameSharingReplayBuffer, idx: np.ndarray) -> None:
    a, b = plain.gather(idx, CPU), shared.gather(idx, CPU)
    for name in ("obs", "next_obs", "actions", "rewards", "terminated"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("padding", ["reset", "zero"])
@pytest.mark.parametrize("stack_last", [True, False], ids=["HWC-like", "stack-first"])
def test_rebuilt_stacks_equal_the_plain_buffers_across_episode_ends_and_wraparound(padding, stack_last):
    steps = stacked_transitions(n_envs=3, steps=150, padding=padding, stack_last=stack_last)
    shape, axis = steps[0][0].shape[1:], (-1 if stack_last else 0)
    plain, shared = both(96, shape, axis)
    ended_in_window = {"terminated": 0, "truncated": 0}
    for t, (obs, actions, rewards, next_obs, term, trunc) in enumerate(steps):
        plain.add(obs, actions, rewards, next_obs, term)
        shared.add(obs, actions, rewards, next_obs, term)
        if t >= len(steps) - 32:  # the transitions the ring still holds
            ended_in_window["terminated"] += int(term.sum())
            ended_in_window["truncated"] += int(trunc.sum())
    assert plain.full and shared.full and 150 * 3 > 4 * 96  # wrapped around more than four times
    assert ended_in_window["terminated"] > 3 and ended_in_window["truncated"] > 3
    intact = shared.intact()
    # episodes of ~10 steps cost one frame each beyond their transitions (two with zero padding): the ring's
    # margin loses at most a few of the oldest transitions
    assert len(intact) >= 0.8 * len(shared)
    assert_same_transitions(plain, shared, intact)
    # sampling draws only intact transitions, with the plain buffer's values at the same positions
    batch = shared.sample(256, np.random.default_rng(1), CPU)
    assert batch.obs.shape == (256, *shape) and batch.obs.dtype == torch.float32


def test_memory_per_transition_is_about_one_frame():
    capacity, shape = 100_000, (84, 84, 4)  # ALE's stacks (np.zeros does not touch the pages)
    frame = 84 * 84
    plain = ReplayBuffer(capacity, shape, obs_dtype=np.uint8)
    shared = FrameSharingReplayBuffer(capacity, shape, -1, obs_dtype=np.uint8)
    assert plain.nbytes / capacity == 2 * 4 * frame + 16  # 56,464 bytes: 5.6 GB for 100k
    per_transition = shared.nbytes / capacity
    # one frame plus the ring's 1/32 margin, 5 frame numbers (int64) and action, reward, terminated
    assert per_transition == pytest.approx(frame * 33 / 32 + 8 * 5 + 16, abs=1)
    assert per_transition < 1.05 * frame + 56 and plain.nbytes / shared.nbytes > 7.5


def test_checkpoint_round_trip_continues_exactly():
    steps = stacked_transitions(n_envs=2, steps=120, padding="reset", stack_last=True, seed=5)
    shape = steps[0][0].shape[1:]
    plain, shared = both(64, shape, -1)
    for obs, a, r, nxt, term, _ in steps[:70]:
        plain.add(obs, a, r, nxt, term)
        shared.add(obs, a, r, nxt, term)
    buf = io.BytesIO()
    torch.save(shared.state_dict(), buf)  # as DQN's checkpoint holds it, loaded back with weights_only
    restored = FrameSharingReplayBuffer(64, shape, -1, obs_dtype=np.float32)
    restored.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert len(restored) == len(shared) and restored.frames_written == shared.frames_written
    for obs, a, r, nxt, term, _ in steps[70:]:  # the resumed buffer continues the episodes in flight
        plain.add(obs, a, r, nxt, term)
        shared.add(obs, a, r, nxt, term)
        restored.add(obs, a, r, nxt, term)
    np.testing.assert_array_equal(restored.frame_ids, shared.frame_ids)  # no stack restarted at the resume
    assert_same_transitions(plain, restored, restored.intact())
    assert np.array_equal(shared.intact(), restored.intact())


def test_observations_that_are_not_stacked_frames_are_refused():
    shared = FrameSharingReplayBuffer(8, (3, 4), -1)
    obs = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    with pytest.raises(ValueError, match="stacked frames"):
        shared.add(obs, np.zeros(2), np.zeros(2), obs * 2, np.zeros(2))


# --- DQN on stacked frames: frame sharing through training, checkpoint and resume -----------------
class StackedCorridorVector:
    """Copies of a 5-cell corridor seen as 3×5 frames, the last 2 stacked (axis -1, a reset repeats its
    first frame, as ale-py does): +1 on reaching cell 4 (terminal), truncated after 8 steps."""

    n_actions, available, frame_stack_axis = 2, None, -1
    obs_shape, obs_dtype = (3, 5, 2), np.dtype(np.uint8)

    def __init__(self, num_envs: int) -> None:
        self.num_envs = num_envs
        self.pos = np.zeros(num_envs, np.int64)
        self.t = np.zeros(num_envs, np.int64)
        self.stacks = np.zeros((num_envs, *self.obs_shape), np.uint8)

    @staticmethod
    def frame(pos: int) -> np.ndarray:
        f = np.zeros((3, 5), np.uint8)
        f[1, pos] = 1
        return f

    def _restart(self, i: int) -> None:
        self.pos[i] = self.t[i] = 0
        self.stacks[i] = self.frame(0)[..., None]

    def reset(self) -> np.ndarray:
        for i in range(self.num_envs):
            self._restart(i)
        return self.stacks.copy()

    def step(self, actions):
        self.pos = np.clip(self.pos + np.where(np.asarray(actions) == 1, 1, -1), 0, 4)
        self.t += 1
        terminated, truncated = self.pos == 4, (self.t >= 8) & (self.pos != 4)
        for i in range(self.num_envs):
            self.stacks[i] = np.concatenate([self.stacks[i][..., 1:], self.frame(int(self.pos[i]))[..., None]], -1)
        final_obs, finished = self.stacks.copy(), []
        for i in np.flatnonzero(terminated | truncated):
            finished.append((int(i), float(terminated[i]), int(self.t[i])))
            self._restart(int(i))
        return (self.stacks.copy(), terminated.astype(np.float64), terminated.astype(np.float32),
                truncated.astype(np.float32), final_obs, finished)

    def state_json(self, i: int) -> int:
        return int(self.pos[i])


class StackedCorridor:
    kind, gamma = "pixels", 0.9
    layout_ = {"kind": "chain", "n": 5, "states": [f"s{i}" for i in range(5)], "actions": ["left", "right"]}

    def vector(self, seed: int, num_envs: int | None = None) -> StackedCorridorVector:
        return StackedCorridorVector(num_envs or 2)

    def layout(self) -> dict:
        return self.layout_


def test_dqn_learns_from_shared_frames_and_resumes_with_its_replay(store):
    from rltui.algos import dqn
    from rltui.config import load_config_text
    from rltui.recorder import StoreRecorder
    from rltui.runner.execute import create_run
    from rltui.schemas.control import DQNParams

    run_id = create_run(store, load_config_text('[env]\nid = "CartPole-v1"\n[algo]\nid = "dqn"\n'))  # a run row
    params = DQNParams(total_timesteps=1200, learning_starts=100, train_freq=2, target_update_interval=50,
                       exploration_fraction=0.5, learning_rate=3e-3, batch_size=32, net_arch=[32], buffer_size=500,
                       eval_every=400, eval_episodes=1, log_every=400, checkpoint_every=0)
    recorder = StoreRecorder(store, run_id)
    torch.manual_seed(0)  # the Q-network's initial weights
    summary = dqn.train(StackedCorridor(), params, recorder, seed=0, device="cpu")
    _, data = recorder.last_checkpoint()
    replay = torch.load(io.BytesIO(data), weights_only=True)["replay"]
    assert "frame_ids" in replay and "next_obs" not in replay  # the checkpoint holds the frame-sharing buffer
    assert len(replay["frames"]) < 1.1 * len(replay["rewards"])  # about one frame per transition
    assert summary["final_eval_return"] == 1.0  # the greedy policy walks right to the goal
    resumed = dqn.train(StackedCorridor(), params.model_copy(update={"total_timesteps": 1600}), recorder, seed=0, device="cpu")
    _, data = recorder.last_checkpoint()
    recorder.close()
    assert resumed["global_step"] >= 1600
    after = torch.load(io.BytesIO(data), weights_only=True)["replay"]
    # the resumed run added to the restored buffer (a fresh one would hold only the 400 new transitions)
    assert int(after["frames_written"]) > int(replay["frames_written"]) + 400 and len(after["rewards"]) == 500
