"""The k-armed testbed (Sutton & Barto, section 2.3): a bandit, an MDP with one state.

Each run draws its own testbed from the seed: gaussian arms have true values q*(a) ~ N(mean, 1) and
pay R ~ N(q*(a), 1); bernoulli arms have q*(a) ~ U(0, 1) and pay 1 with probability q*(a), else 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Testbed:
    k: int
    arms: str  # "gaussian" | "bernoulli"
    mean: float = 0.0
    gamma: float = 1.0  # no state evolution: nothing to discount; kept for the env interface

    def draw(self, runs: int, seed: int) -> np.ndarray:
        """q*[run, a] for `runs` independent testbeds."""
        rng = np.random.default_rng([seed, 1])
        if self.arms == "bernoulli":
            return rng.random((runs, self.k))
        return rng.normal(self.mean, 1.0, (runs, self.k))

    def reward(self, q_star: np.ndarray, a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """R_t per run for the arms `a` chosen."""
        q = q_star[np.arange(len(a)), a]
        if self.arms == "bernoulli":
            return (rng.random(len(a)) < q).astype(float)
        return rng.normal(q, 1.0)


def make_bandit(params: Any) -> Testbed:
    return Testbed(k=params.k, arms=params.arms, mean=params.mean)
