"""Tabular POMDPs: an MDP file (rltui.envs.mdp_file) plus what the agent observes,

    observations = ["hear-left", "hear-right"]
    observation_probs = [            # [action, next_state, observation, O(o | s', a)]
      ["listen", "tiger-left", "hear-left", 0.85],
      ...
    ]

O(·|s', a) must sum to 1 for every action and every non-terminal state s'; an (a, s') not listed
observes the first observation. The agent never sees s: after acting a and observing o it can keep
the exact belief

    b'(s') = O(o | s', a) Σ_s P(s' | s, a) b(s) / Pr(o | b, a)

`ObservationView` is the same process seen through observations only, shaped like a TabularMDP for
the TD learners (its "states" are the observations, which are not Markov): what breaks when
observations are not states.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rltui.config import ConfigError
from rltui.envs.mdp_file import KEYS, PROB_TOLERANCE, _is_finite, mdp_from_data, read_mdp_data
from rltui.envs.tabular import TabularMDP

POMDP_KEYS = ("observations", "observation_probs")
START_OBSERVATION = "start"  # what the agent "sees" before its first action


@dataclass
class POMDP:
    mdp: TabularMDP
    observations: list[str]
    O: np.ndarray  # [A, S, n_obs]: O(o | s', a)

    def belief_update(self, b: np.ndarray, a: int, o: int) -> np.ndarray:
        """b'(s') ∝ O(o|s',a) Σ_s P(s'|s,a) b(s), normalised by Pr(o | b, a)."""
        predicted = np.zeros(self.mdp.n_states)  # Σ_s P(s'|s,a) b(s)
        np.add.at(predicted, self.mdp.next_state[:, a, :].ravel(), (b[:, None] * self.mdp.prob[:, a, :]).ravel())
        joint = self.O[a, :, o] * predicted
        total = joint.sum()
        if total <= 0:
            raise ValueError(f"observation {self.observations[o]!r} has probability 0 after {self.mdp.actions[a]!r}")
        return joint / total

    def observe(self, a: int, s2: int, rng: np.random.Generator) -> int:
        cum = np.cumsum(self.O[a, s2])
        return int(min(np.searchsorted(cum, rng.random() * cum[-1], side="right"), len(cum) - 1))


def load_pomdp(path: str | Path, gamma: float | None = None) -> POMDP:
    src = str(path)
    data = read_mdp_data(path)
    observations = data.get("observations")
    rows = data.get("observation_probs")
    mdp = mdp_from_data({k: v for k, v in data.items() if k not in POMDP_KEYS}, source=src, gamma=gamma)
    if not isinstance(observations, list) or not observations or not all(isinstance(o, str) and 0 < len(o) <= 200 for o in observations) \
            or len(set(observations)) != len(observations):
        raise ConfigError(src, "observations", "must be a non-empty list of distinct names (at most 200 characters)")
    if not isinstance(rows, list) or not rows:
        raise ConfigError(src, "observation_probs", "must be a non-empty list of [action, next_state, observation, probability]")
    a_index = {n: i for i, n in enumerate(mdp.actions)}
    s_index = {n: i for i, n in enumerate(mdp.states)}
    o_index = {n: i for i, n in enumerate(observations)}
    O = np.zeros((mdp.n_actions, mdp.n_states, len(observations)))
    listed = np.zeros((mdp.n_actions, mdp.n_states), dtype=bool)
    for i, row in enumerate(rows):
        key = f"observation_probs[{i}]"
        if not isinstance(row, list) or len(row) != 4:
            raise ConfigError(src, key, "must be [action, next_state, observation, probability]")
        a, s2, o, p = row
        for name, table, what in ((a, a_index, "action"), (s2, s_index, "state"), (o, o_index, "observation")):
            if not isinstance(name, str) or name not in table:
                raise ConfigError(src, key, f"unknown {what} {str(name)[:80]!r}; known: {', '.join(list(table)[:20])}")
        if not _is_finite(p) or not 0 <= p <= 1 + PROB_TOLERANCE:
            raise ConfigError(src, key, f"probability must be a finite number in [0, 1], got {str(p)[:40]}")
        O[a_index[a], s_index[s2], o_index[o]] += float(p)
        listed[a_index[a], s_index[s2]] = True
    for a in range(mdp.n_actions):
        for s2 in range(mdp.n_states):
            if not listed[a, s2]:
                O[a, s2, 0] = 1.0
            elif abs(O[a, s2].sum() - 1.0) > PROB_TOLERANCE:
                raise ConfigError(src, "observation_probs", f"O(·|{mdp.states[s2]!r}, {mdp.actions[a]!r}) sums to "
                                  f"{O[a, s2].sum():.6g}; it must sum to 1")
    return POMDP(mdp, list(observations), O)


class ObservationView:
    """The POMDP as the TD learners see it: states are the observations (plus `start` and `end`)."""

    def __init__(self, pomdp: POMDP) -> None:
        self.pomdp, mdp = pomdp, pomdp.mdp
        self.states = [START_OBSERVATION, *pomdp.observations, "end"]
        self.actions = list(mdp.actions)
        self.n_states, self.n_actions = len(self.states), mdp.n_actions
        self.gamma = mdp.gamma
        self.terminal = np.zeros(self.n_states, dtype=bool)
        self.terminal[-1] = True
        live = np.flatnonzero(~mdp.terminal)
        can = mdp.available[live].all(axis=0)  # an action the agent may take whatever the hidden state
        self.available = np.where(self.terminal[:, None], False, can[None, :])
        self.layout: dict[str, Any] = {"kind": "tabular", "states": self.states, "actions": self.actions}
        self.hidden = 0

    def reset(self, rng: np.random.Generator) -> int:
        self.hidden = self.pomdp.mdp.reset(rng)
        return 0

    def step(self, o: int, a: int, rng: np.random.Generator) -> tuple[int, float, bool]:
        s2, r, done = self.pomdp.mdp.step(self.hidden, a, rng)
        self.hidden = s2
        if done:
            return self.n_states - 1, r, True
        return 1 + self.pomdp.observe(a, s2, rng), r, False

    def start_value(self, V: np.ndarray) -> float:
        return float(V[0])


def make_pomdp(params: Any) -> ObservationView:
    return ObservationView(load_pomdp(params.path, gamma=params.gamma))


assert set(POMDP_KEYS).isdisjoint(KEYS)
