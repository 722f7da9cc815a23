"""Control envs for the deep algorithms: Gymnasium tasks by id, and tabular MDPs seen through a one-hot
observation, both behind one small vectorized interface.

`VectorEnv.step(actions)` steps every copy once and resets finished copies in the same call
("same-step" autoreset): the returned observation of a finished copy is its reset observation, and
`final_obs` holds the true last observation, so a time-limit truncation can bootstrap V(final_obs).
Copies are stepped in a plain Python loop over the unwrapped Gymnasium envs with our own time limit:
for tiny envs on a few cores that is faster than gymnasium.vector (no subprocesses, no wrapper
stack, no info dict merging).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

# Gymnasium ids the lab registers (rltui/schemas/control.py) and how to draw their states.
CARTPOLE_LABELS = ["x", "x_dot", "theta", "theta_dot"]
VECTOR_LABELS = {
    "CartPole-v1": CARTPOLE_LABELS,
    "Acrobot-v1": ["cos θ1", "sin θ1", "cos θ2", "sin θ2", "θ1_dot", "θ2_dot"],
    "MountainCar-v0": ["position", "velocity"],
    "MountainCarContinuous-v0": ["position", "velocity"],
    "Pendulum-v1": ["cos θ", "sin θ", "θ_dot"],
    "LunarLander-v3": ["x", "y", "vx", "vy", "angle", "angular_v", "left_leg", "right_leg"],
}
DEFAULT_TIME_LIMIT = 500

ACTION_NAMES = {
    "CartPole-v1": ["left", "right"],
    "Acrobot-v1": ["-1", "0", "+1"],
    "MountainCar-v0": ["left", "none", "right"],
    "FrozenLake-v1": ["left", "down", "right", "up"],
    "CliffWalking-v1": ["up", "right", "down", "left"],
    "Taxi-v4": ["south", "north", "east", "west", "pickup", "dropoff"],
    "LunarLander-v3": ["none", "left", "main", "right"],
}


class VectorEnv:
    """`num_envs` copies of one task. Observations are float32 vectors (one-hot for discrete states),
    or arrays of `obs_shape` in the env's own `obs_dtype` (MinAtar's (10, 10, C) bool frames)."""

    def __init__(
        self,
        step_fns: list[Callable[[Any], tuple[Any, float, bool]]],
        reset_fns: list[Callable[[], Any]],
        max_episode_steps: int | None,
        n_states: int | None,
        obs_dim: int,
        n_actions: int | None,
        action_low: np.ndarray | None = None,
        action_high: np.ndarray | None = None,
        available: np.ndarray | None = None,
        obs_shape: tuple[int, ...] | None = None,
        obs_dtype: Any = np.float32,
    ) -> None:
        self._step, self._reset = step_fns, reset_fns
        # [n_states, n_actions]: which actions each discrete state allows (None: all, everywhere)
        self.available = available
        self.num_envs = len(step_fns)
        self.max_episode_steps = max_episode_steps
        self.n_states = n_states  # discrete observations: one-hot encode
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.action_low, self.action_high = action_low, action_high
        self.action_dim = None if n_actions is not None else int(np.prod(action_low.shape))  # type: ignore[union-attr]
        self.raw = [None] * self.num_envs  # current state per copy as the env gives it (for replay)
        self.ep_return = np.zeros(self.num_envs)
        self.ep_length = np.zeros(self.num_envs, np.int64)
        self.obs_shape = tuple(obs_shape) if obs_shape else (obs_dim,)
        self.obs_dtype = np.dtype(obs_dtype)
        self._obs = np.zeros((self.num_envs, *self.obs_shape), self.obs_dtype)

    def _encode(self, i: int, raw: Any, out: np.ndarray) -> None:
        if self.n_states is not None:
            out[i] = 0.0
            out[i, int(raw)] = 1.0
        else:
            out[i] = raw

    def reset(self) -> np.ndarray:
        for i, reset in enumerate(self._reset):
            self.raw[i] = reset()
            self._encode(i, self.raw[i], self._obs)
        self.ep_return[:] = 0.0
        self.ep_length[:] = 0
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[int, float, int]]]:
        """Returns (obs, rewards, terminated, truncated, final_obs, finished episodes (i, G, length))."""
        n = self.num_envs
        rewards = np.zeros(n, np.float64)  # as the env gave them (buffers store float32; returns sum these)
        terminated = np.zeros(n, np.float32)
        truncated = np.zeros(n, np.float32)
        obs = self._obs
        final_obs = None
        finished: list[tuple[int, float, int]] = []
        limit = self.max_episode_steps
        for i in range(n):
            raw, r, term = self._step[i](actions[i])
            rewards[i] = r
            self.ep_return[i] += r
            self.ep_length[i] += 1
            trunc = not term and limit is not None and self.ep_length[i] >= limit
            if term or trunc:
                if final_obs is None:
                    final_obs = obs.copy()
                self._encode(i, raw, final_obs)
                terminated[i], truncated[i] = float(term), float(trunc)
                finished.append((i, float(self.ep_return[i]), int(self.ep_length[i])))
                self.ep_return[i] = 0.0
                self.ep_length[i] = 0
                raw = self._reset[i]()
            self.raw[i] = raw
            self._encode(i, raw, obs)
        out = obs.copy()
        if final_obs is None:
            final_obs = out
        else:
            # rows of copies that did not finish: the final observation is simply the next one
            mask = (terminated + truncated) == 0
            final_obs[mask] = out[mask]
        return out, rewards, terminated, truncated, final_obs, finished

    def allowed(self) -> np.ndarray:
        """[num_envs, n_actions] bool: the actions each copy's current state allows."""
        assert self.available is not None and self.n_actions is not None
        table = self.available[np.asarray(self.raw, np.int64)]
        return table | ~table.any(-1, keepdims=True)

    def state_json(self, i: int) -> Any:
        """The state of copy i as replay stores it: an int index or a list of floats."""
        raw = self.raw[i]
        if self.n_states is not None:
            return int(raw)
        return [float(v) for v in np.asarray(raw).ravel()]

    def close(self) -> None:
        pass


class ControlEnv:
    """A Gymnasium task by id with its [env] parameters; builds seeded vector envs on demand."""

    kind = "control"

    def __init__(self, env_id: str, params: Any) -> None:
        import gymnasium as gym

        self.env_id = env_id
        self.params = params
        self.gamma = float(params.gamma)
        self.num_envs = int(params.num_envs)
        self._kwargs = {k: getattr(params, k) for k in ("map_name", "is_slippery", "continuous") if hasattr(params, k)}
        try:
            probe = gym.make(env_id, disable_env_checker=True, **self._kwargs)
        except gym.error.DependencyNotInstalled as exc:
            raise RuntimeError(f"{env_id} needs an extra dependency: {exc}") from None
        # An env without a time limit of its own (CliffWalking) gets one: an untrained policy may never end.
        own_limit = probe.spec.max_episode_steps if probe.spec else None
        self.max_episode_steps = params.max_episode_steps or own_limit or DEFAULT_TIME_LIMIT
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        self._desc = getattr(probe.unwrapped, "desc", None) if env_id.startswith("FrozenLake") else None
        probe.close()
        self.discrete_obs = isinstance(self.observation_space, gym.spaces.Discrete)
        self.discrete_actions = isinstance(self.action_space, gym.spaces.Discrete)

    def _make_one(self, seed: int) -> tuple[Callable, Callable]:
        import gymnasium as gym

        env = gym.make(self.env_id, disable_env_checker=True, **self._kwargs).unwrapped
        env.action_space.seed(seed)
        first = [True]

        def reset() -> Any:
            obs, _ = env.reset(seed=seed if first[0] else None)
            first[0] = False
            return obs

        if self.discrete_actions:
            def step(action: Any) -> tuple[Any, float, bool]:
                obs, r, term, _, _ = env.step(int(action))
                return obs, float(r), bool(term)
        else:
            def step(action: Any) -> tuple[Any, float, bool]:
                obs, r, term, _, _ = env.step(np.asarray(action, np.float32))
                return obs, float(r), bool(term)
        return step, reset

    def vector(self, seed: int, num_envs: int | None = None) -> VectorEnv:
        n = num_envs or self.num_envs
        pairs = [self._make_one(seed + i) for i in range(n)]
        space = self.action_space
        return VectorEnv(
            [p[0] for p in pairs],
            [p[1] for p in pairs],
            self.max_episode_steps,
            int(self.observation_space.n) if self.discrete_obs else None,
            int(self.observation_space.n) if self.discrete_obs else int(np.prod(self.observation_space.shape)),
            int(space.n) if self.discrete_actions else None,
            None if self.discrete_actions else np.asarray(space.low, np.float32),
            None if self.discrete_actions else np.asarray(space.high, np.float32),
        )

    def layout(self) -> dict[str, Any]:
        if self.env_id.startswith("CartPole"):
            return {"kind": "cartpole", "labels": CARTPOLE_LABELS}
        if self._desc is not None:  # FrozenLake: draw its map
            return _grid_layout([bytes(row).decode() for row in self._desc], self.env_id)
        if self.env_id.startswith("CliffWalking"):
            return _grid_layout(["." * 12] * 3 + ["S" + "C" * 10 + "G"], self.env_id)
        if self.discrete_obs:
            n = int(self.observation_space.n)
            return {"kind": "tabular", "states": [str(s) for s in range(n)], "actions": self.action_names()}
        labels = VECTOR_LABELS.get(self.env_id) or [f"o{i}" for i in range(int(np.prod(self.observation_space.shape)))]
        return {"kind": "vector", "labels": labels, "actions": self.action_names()}

    def action_names(self) -> list[str]:
        names = ACTION_NAMES.get(self.env_id)
        if names and self.discrete_actions:
            return names
        if self.discrete_actions:
            return [str(a) for a in range(int(self.action_space.n))]
        return [f"a{i}" for i in range(int(np.prod(self.action_space.shape)))]


def _grid_layout(rows: list[str], env_id: str) -> dict[str, Any]:
    # FrozenLake: S start, F frozen (free), H hole, G goal.
    grid = [row.replace("F", ".") for row in rows]
    n_rows, n_cols = len(grid), len(grid[0])
    positions = [[s // n_cols, s % n_cols] for s in range(n_rows * n_cols)]
    actions = ACTION_NAMES[env_id]
    return {
        "kind": "grid", "rows": n_rows, "cols": n_cols, "map": grid, "positions": positions,
        "states": [f"({r},{c})" for r, c in positions], "actions": actions,
    }


class OneHotTabularEnv:
    """A tabular MDP (rltui.envs.tabular.TabularMDP: reset(rng), step(s, a, rng) -> (s', r, terminated))
    seen by a network: observation = one-hot of the state index, same vector interface as ControlEnv."""

    kind = "tabular"

    def __init__(self, mdp: Any, num_envs: int = 1) -> None:
        for attr in ("reset", "step", "n_states", "n_actions"):
            if not hasattr(mdp, attr):
                raise TypeError(
                    f"{type(mdp).__name__} is not a tabular MDP: it lacks `{attr}` "
                    "(expected rltui.envs.tabular.TabularMDP with reset(rng), step(s, a, rng), n_states, n_actions)"
                )
        self.mdp = mdp
        self.gamma = float(getattr(mdp, "gamma", 0.99))
        self.num_envs = num_envs
        self.n_states, self.n_actions = int(mdp.n_states), int(mdp.n_actions)
        limit = getattr(mdp, "max_episode_steps", None) or getattr(mdp, "max_steps", None)
        # A tabular MDP may have no time limit; an untrained network could walk forever.
        self.max_episode_steps = int(limit) if limit else max(100, 4 * self.n_states)
        self.discrete_actions = True
        # A custom MDP may leave some actions out of some states: the networks mask them (None: none is).
        available = getattr(mdp, "available", None)
        self.available = None if available is None else np.asarray(available, bool)

    def vector(self, seed: int, num_envs: int | None = None) -> VectorEnv:
        n = num_envs or self.num_envs
        steps, resets = [], []
        for i in range(n):
            rng = np.random.default_rng(seed + i)
            state = [0]

            def reset(rng: np.random.Generator = rng, state: list = state) -> int:
                state[0] = int(self.mdp.reset(rng))
                return state[0]

            def step(a: Any, rng: np.random.Generator = rng, state: list = state) -> tuple[int, float, bool]:
                s2, r, term = self.mdp.step(state[0], int(a), rng)
                state[0] = int(s2)
                return state[0], float(r), bool(term)

            steps.append(step)
            resets.append(reset)
        return VectorEnv(steps, resets, self.max_episode_steps, self.n_states, self.n_states, self.n_actions,
                         available=self.available)

    def layout(self) -> dict[str, Any]:
        layout = getattr(self.mdp, "layout", None)
        if callable(layout):
            layout = layout()
        if isinstance(layout, dict):
            return layout
        return {"kind": "tabular", "states": [str(s) for s in range(self.n_states)],
                "actions": [str(a) for a in range(self.n_actions)]}


def as_control(env: Any) -> ControlEnv | OneHotTabularEnv:
    """What the deep algorithms train on: a ControlEnv as is (or any env of kind "pixels" with a vector
    env of its own, rltui.envs.ale's), a tabular MDP through the one-hot view."""
    if isinstance(env, (ControlEnv, OneHotTabularEnv)) or getattr(env, "kind", None) == "pixels":
        return env
    return OneHotTabularEnv(env)


# --- factories named in rltui/schemas/control.py: factory(params) -> env ----------------------------
def _factory(env_id: str) -> Callable[[Any], ControlEnv]:
    def make(params: Any) -> ControlEnv:
        return ControlEnv(env_id, params)

    make.__name__ = f"make_{env_id}"
    return make


make_cartpole = _factory("CartPole-v1")
make_acrobot = _factory("Acrobot-v1")
make_mountaincar = _factory("MountainCar-v0")
make_pendulum = _factory("Pendulum-v1")
make_mountaincar_continuous = _factory("MountainCarContinuous-v0")
make_lunarlander = _factory("LunarLander-v3")
make_frozenlake = _factory("FrozenLake-v1")
make_cliffwalking = _factory("CliffWalking-v1")
make_taxi = _factory("Taxi-v4")
