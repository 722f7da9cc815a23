"""Atari 2600 games (the Arcade Learning Environment) for GPU machines: `pip install 'rltui[atari]'`.

ale-py bundles its ROMs and has a vectorized env of its own, `ale_py.vector_env.AtariVectorEnv`,
whose C++ threads step the copies and do DQN's preprocessing (Mnih et al. 2015) themselves: frame
skip 4 with max-pooling, 84×84 grayscale, 4 stacked frames, up to 30 no-ops at reset, FIRE at reset
where the game needs it — so no opencv and no Python wrapper stack. This module adapts it to the
lab's vector interface (rltui.envs.control.VectorEnv's): observations as (84, 84, 4) uint8 frames
(height, width, stacked frame; the network scales them by 1/255), same-step autoreset with the true
final observation, the episode's return in the game's own points unless `reward_clipping` is on.

Only runs on an ALE env import this module; it is not exercised by the CPU test suite (tests/test_cuda.py
covers it on a GPU machine that has ale-py).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

# Lab id -> ale-py's ROM id. Those of the DQN papers' games that are quick to show progress.
GAMES = {
    "ALE/Breakout-v5": "breakout",
    "ALE/Pong-v5": "pong",
    "ALE/SpaceInvaders-v5": "space_invaders",
    "ALE/Seaquest-v5": "seaquest",
    "ALE/BeamRider-v5": "beam_rider",
    "ALE/Qbert-v5": "qbert",
    "ALE/Enduro-v5": "enduro",
    "ALE/MsPacman-v5": "ms_pacman",
}
INSTALL_HINT = "pip install 'rltui[atari]'"
REPLAY_STRIDE = 2  # replay stores the newest frame at half resolution (42×42): a step's state stays small


def available() -> bool:
    return importlib.util.find_spec("ale_py") is not None


class AtariVector:
    """`num_envs` copies of one game in one AtariVectorEnv, behind the lab's vector interface."""

    def __init__(self, game: str, num_envs: int, seed: int, params: Any) -> None:
        from ale_py.vector_env import AtariVectorEnv

        frameskip = int(params.frameskip)
        self.env = AtariVectorEnv(
            game, num_envs, autoreset_mode="SameStep", frameskip=frameskip, stack_num=int(params.stack_num),
            img_height=84, img_width=84, grayscale=True, noop_max=int(params.noop_max),
            repeat_action_probability=float(params.repeat_action_probability), episodic_life=bool(params.episodic_life),
            reward_clipping=bool(params.reward_clipping), use_fire_reset=bool(params.use_fire_reset),
            max_num_frames_per_episode=int(params.max_episode_steps) * frameskip, num_threads=0,
        )
        self.seed = seed
        self.num_envs = num_envs
        self.n_actions = int(self.env.single_action_space.n)
        self.available = None
        self.n_states = None
        self.action_low = self.action_high = self.action_dim = None
        self.max_episode_steps = int(params.max_episode_steps)
        self.obs_shape = (84, 84, int(params.stack_num))
        self.obs_dtype = np.dtype(np.uint8)
        self.frame_stack_axis = -1  # the stacked frames' axis: DQN's replay stores each frame once (frame sharing)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.ep_return = np.zeros(num_envs)
        self.ep_length = np.zeros(num_envs, np.int64)
        self._obs = np.zeros((num_envs, *self.obs_shape), np.uint8)
        self._seeded = False

    @staticmethod
    def _hwc(stacked: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(stacked, 1, -1))  # (N, stack, H, W) -> (N, H, W, stack)

    def reset(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=None if self._seeded else self.seed)
        self._seeded = True
        self._obs = self._hwc(obs)
        self.ep_return[:] = 0.0
        self.ep_length[:] = 0
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[int, float, int]]]:
        obs, rewards, term, trunc, info = self.env.step(np.asarray(actions, np.int64))
        rewards = np.asarray(rewards, np.float64)
        self.ep_return += rewards
        self.ep_length += 1
        self._obs = self._hwc(obs)
        ended = np.flatnonzero(term | trunc)
        final_obs = self._obs
        finished: list[tuple[int, float, int]] = []
        if len(ended):
            final_obs = self._obs.copy()
            final_obs[ended] = self._hwc(info["final_obs"][ended])
            for i in ended:
                finished.append((int(i), float(self.ep_return[i]), int(self.ep_length[i])))
                self.ep_return[i] = 0.0
                self.ep_length[i] = 0
        return (self._obs.copy(), rewards, term.astype(np.float32), trunc.astype(np.float32), final_obs, finished)

    def state_json(self, i: int) -> Any:
        """The newest frame at half resolution, gray levels 0..255, as replay draws it."""
        newest = self._obs[i, ::REPLAY_STRIDE, ::REPLAY_STRIDE, -1]
        return {"gray": newest.astype(int).tolist()}

    def close(self) -> None:
        self.env.close()


class AtariEnv:
    """An Atari game by lab id, for the deep algorithms (kind "pixels": DQN, PPO, A2C)."""

    kind = "pixels"

    def __init__(self, env_id: str, params: Any) -> None:
        if not available():
            raise RuntimeError(f"{env_id} needs ale-py, which is not installed: {INSTALL_HINT}")
        self.env_id, self.params = env_id, params
        self.game = GAMES[env_id]
        self.gamma = float(params.gamma)
        self.num_envs = int(params.num_envs)
        self.max_episode_steps = int(params.max_episode_steps)
        self.discrete_actions = True
        self.actions = _action_names(self.game)

    def vector(self, seed: int, num_envs: int | None = None) -> AtariVector:
        return AtariVector(self.game, num_envs or self.num_envs, seed, self.params)

    def layout(self) -> dict[str, Any]:
        return {"kind": "frame", "rows": 84 // REPLAY_STRIDE, "cols": 84 // REPLAY_STRIDE, "channels": ["gray"],
                "actions": self.actions, "game": self.game}


def _action_names(game: str) -> list[str]:
    """The game's minimal action set (what AtariVectorEnv uses without full_action_space), by name."""
    from ale_py import ALEInterface, LoggerMode, roms

    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.loadROM(roms.get_rom_path(game))
    return [a.name.lower() for a in ale.getMinimalActionSet()]


def _factory(env_id: str) -> Any:
    def make(params: Any) -> AtariEnv:
        return AtariEnv(env_id, params)

    make.__name__ = "make_" + GAMES[env_id]
    return make


make_breakout = _factory("ALE/Breakout-v5")
make_pong = _factory("ALE/Pong-v5")
make_space_invaders = _factory("ALE/SpaceInvaders-v5")
make_seaquest = _factory("ALE/Seaquest-v5")
make_beam_rider = _factory("ALE/BeamRider-v5")
make_qbert = _factory("ALE/Qbert-v5")
make_enduro = _factory("ALE/Enduro-v5")
make_ms_pacman = _factory("ALE/MsPacman-v5")
