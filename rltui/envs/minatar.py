"""MinAtar (Young & Tian 2019): five Atari games on a 10×10 grid, observed as (10, 10, C) boolean
frames, one channel per kind of object (paddle, ball, trail, brick, …). The seeds' "DQN from the raw
pixel frames of the game", made to fit a CPU: no ROMs, tens of thousands of steps per second.

The `minatar` wheel (1.0.15) registers its Gymnasium ids only when its `register_envs()` is called,
and Gymnasium 1.x no longer loads entry points by itself, so `register()` here does it explicitly.
Its metadata pulls in matplotlib, pandas, scipy and seaborn (~429 MB) for its display code alone; the
games need only numpy, so it is installed with `pip install --no-deps minatar==1.0.15`. Without
matplotlib/seaborn its modules log a warning at import; they are imported here with that silenced.

Only runs on a MinAtar env import this module (rltui/schemas/control.py names it by string).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

import numpy as np

from rltui.envs.control import ControlEnv, VectorEnv

# MinAtar's games: Gymnasium id -> the module under minatar.environments.
GAMES = {
    "MinAtar/Asterix-v1": "asterix",
    "MinAtar/Breakout-v1": "breakout",
    "MinAtar/Freeway-v1": "freeway",
    "MinAtar/Seaquest-v1": "seaquest",
    "MinAtar/SpaceInvaders-v1": "space_invaders",
}
INSTALL_HINT = "pip install --no-deps minatar==1.0.15"
# MinAtar's full action set, by index; each game's minimal set (the -v1 ids) is a subset of it.
ACTION_NAMES = ["noop", "left", "up", "right", "down", "fire"]


def available() -> bool:
    """Whether the minatar package is installed (asked without importing it)."""
    return importlib.util.find_spec("minatar") is not None


def missing_message(env_id: str) -> str:
    return f"{env_id} needs the minatar package, which is not installed: {INSTALL_HINT}"


def register() -> None:
    """Register MinAtar's -v0 (all 6 actions) and -v1 (minimal action set) ids with Gymnasium, once."""
    import gymnasium as gym

    if "MinAtar/Breakout-v1" in gym.registry:
        return
    if not available():
        raise RuntimeError(missing_message("MinAtar"))
    # Its display modules try matplotlib/seaborn at import and log a warning when they are absent.
    logging.disable(logging.WARNING)
    try:
        import minatar.gym as minatar_gym
    finally:
        logging.disable(logging.NOTSET)
    minatar_gym.register_envs()


def frame_codes(frame: np.ndarray) -> list[list[int]]:
    """A (H, W, C) boolean frame as H rows of W ints, bit c set where channel c is on (what replay stores)."""
    bits = np.left_shift(1, np.arange(frame.shape[-1], dtype=np.int64))
    return (frame.astype(np.int64) * bits).sum(-1).tolist()


class FrameVectorEnv(VectorEnv):
    """A VectorEnv of image observations: replay stores each state as {"frame": channel bit codes}."""

    def state_json(self, i: int) -> Any:
        return {"frame": frame_codes(np.asarray(self.raw[i]))}


class MinAtarEnv(ControlEnv):
    """A MinAtar game by Gymnasium id: (10, 10, C) bool observations, the game's minimal action set."""

    kind = "pixels"

    def __init__(self, env_id: str, params: Any) -> None:
        if not available():
            raise RuntimeError(missing_message(env_id))
        register()
        super().__init__(env_id, params)
        self._kwargs.update(sticky_action_prob=float(params.sticky_action_prob),
                            difficulty_ramping=bool(params.difficulty_ramping))
        import gymnasium as gym

        probe = gym.make(env_id, disable_env_checker=True, **self._kwargs).unwrapped
        game = probe.game.env
        self.channels = [name for name, _ in sorted(game.channels.items(), key=lambda kv: kv[1])]
        self.actions = [ACTION_NAMES[a] for a in probe.action_set]
        probe.close()

    def vector(self, seed: int, num_envs: int | None = None) -> FrameVectorEnv:
        n = num_envs or self.num_envs
        pairs = [self._make_one(seed + i) for i in range(n)]
        shape = tuple(int(d) for d in self.observation_space.shape)
        return FrameVectorEnv([p[0] for p in pairs], [p[1] for p in pairs], self.max_episode_steps, None,
                              int(np.prod(shape)), int(self.action_space.n), obs_shape=shape, obs_dtype=np.bool_)

    def layout(self) -> dict[str, Any]:
        rows, cols, _ = self.observation_space.shape
        return {"kind": "frame", "rows": int(rows), "cols": int(cols), "channels": self.channels,
                "actions": self.actions, "game": GAMES.get(self.env_id, self.env_id)}

    def action_names(self) -> list[str]:
        return list(self.actions)


def make_asterix(params: Any) -> MinAtarEnv:
    return MinAtarEnv("MinAtar/Asterix-v1", params)


def make_breakout(params: Any) -> MinAtarEnv:
    return MinAtarEnv("MinAtar/Breakout-v1", params)


def make_freeway(params: Any) -> MinAtarEnv:
    return MinAtarEnv("MinAtar/Freeway-v1", params)


def make_seaquest(params: Any) -> MinAtarEnv:
    return MinAtarEnv("MinAtar/Seaquest-v1", params)


def make_space_invaders(params: Any) -> MinAtarEnv:
    return MinAtarEnv("MinAtar/SpaceInvaders-v1", params)
