"""Gymnasium's toy-text envs (FrozenLake-v1, Taxi-v4, CliffWalking-v1) as exact tabular MDPs.

One env, two faces, under the same `[env] id`:
- the deep algorithms see the Gymnasium env itself (a ControlEnv: one-hot states, Gymnasium's own
  stepping and time limit), exactly as before;
- the tabular algorithms, `rltui mdp` and the Values view see `tabular_mdp()`: the TabularMDP built
  from the env's own transition table `env.unwrapped.P[s][a] = [(p, s', r, terminated), ...]` and its
  `initial_state_distrib`.

Gymnasium ends an episode on a transition (`terminated`); the MDP ends it in a state: every s' that
some transition enters with terminated = True is terminal (no transitions, V = 0). In FrozenLake
(holes, goal) and CliffWalking (goal) every transition into those states terminates. In Taxi the four
states "passenger delivered" are entered with terminated = True by the drop-off and without it only
from states that are themselves unreachable (passenger already at the destination, taxi elsewhere),
so the reachable chain is the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rltui.envs.control import ACTION_NAMES, ControlEnv, _grid_layout
from rltui.envs.tabular import TabularMDP, as_tabular, from_outcomes  # noqa: F401 — as_tabular: its users import it from here too

TAXI_PLACES = "RGYB"  # Taxi's four stands; passenger location 4 = in the taxi


class ToyTextEnv(ControlEnv):
    """A ControlEnv whose transition table is known: `tabular_mdp()` is the exact MDP."""

    kind = "toytext"

    def __init__(self, env_id: str, params: Any) -> None:
        super().__init__(env_id, params)
        desc = getattr(params, "desc", None)
        if desc:  # any FrozenLake map: Gymnasium takes it as `desc` instead of `map_name`
            import gymnasium as gym

            self._kwargs.pop("map_name", None)
            self._kwargs["desc"] = list(desc)
            probe = gym.make(env_id, disable_env_checker=True, **self._kwargs)
            self.observation_space = probe.observation_space
            self._desc = probe.unwrapped.desc
            if not params.max_episode_steps:
                self.max_episode_steps = probe.spec.max_episode_steps if probe.spec else self.max_episode_steps
            probe.close()
        self._mdp: TabularMDP | None = None

    def tabular_mdp(self) -> TabularMDP:
        if self._mdp is None:
            self._mdp = mdp_from_gymnasium(self.env_id, self._kwargs, self.gamma, self.layout())
            self._mdp.max_episode_steps = self.max_episode_steps  # the one-hot view keeps the time limit
        return self._mdp

    def layout(self) -> dict[str, Any]:
        layout = super().layout()
        if self.env_id.startswith("Taxi"):
            names = taxi_state_names()
            layout = {"kind": "tabular", "states": names, "actions": ACTION_NAMES[self.env_id]}
        return layout


def mdp_from_gymnasium(env_id: str, kwargs: dict[str, Any], gamma: float, layout: dict[str, Any]) -> TabularMDP:
    """The exact MDP of a Gymnasium toy-text env from `unwrapped.P` (see the module docstring)."""
    import gymnasium as gym

    env = gym.make(env_id, disable_env_checker=True, **kwargs).unwrapped
    P, n_states = env.P, int(env.observation_space.n)
    n_actions = int(env.action_space.n)
    terminal = np.zeros(n_states, dtype=bool)
    for s in range(n_states):
        for a in range(n_actions):
            for _, s2, _, done in P[s][a]:
                if done:
                    terminal[int(s2)] = True
    outcomes = {
        (s, a): [(int(s2), float(p), float(r)) for p, s2, r, _ in P[s][a]]
        for s in range(n_states) if not terminal[s] for a in range(n_actions)
    }
    start = np.asarray(env.initial_state_distrib, dtype=float)
    env.close()
    states = layout.get("states") or [str(s) for s in range(n_states)]
    return from_outcomes(states, ACTION_NAMES[env_id], outcomes, terminal, start / start.sum(), gamma,
                         layout, name=env_id)


def taxi_state_names() -> list[str]:
    """Taxi's 500 states by its own encoding ((row·5 + col)·5 + passenger)·4 + destination, named
    "(row,col) passenger→destination" with passenger R, G, Y, B or T (in the taxi)."""
    names = []
    for s in range(500):
        s, dest = divmod(s, 4)
        s, passenger = divmod(s, 5)
        row, col = divmod(s, 5)
        names.append(f"({row},{col}) {(TAXI_PLACES + 'T')[passenger]}→{TAXI_PLACES[dest]}")
    return names


def _factory(env_id: str):  # noqa: ANN202
    def make(params: Any) -> ToyTextEnv:
        return ToyTextEnv(env_id, params)

    make.__name__ = f"make_{env_id}"
    return make


make_frozenlake = _factory("FrozenLake-v1")
make_taxi = _factory("Taxi-v4")
make_cliffwalking = _factory("CliffWalking-v1")
