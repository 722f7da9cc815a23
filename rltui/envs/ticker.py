"""The `ticker` env of the diagnostics family: one action ("tick"), reward +1 per step.

The state is how many steps the episode has run; the episode ends after `episode_length` steps, so
an episode's discounted return is the geometric sum Σ_{t<L} γ^t.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ticker:
    episode_length: int
    gamma: float
    state: int = 0

    actions = ("tick",)

    def reset(self) -> int:
        self.state = 0
        return self.state

    def step(self, action: int = 0) -> tuple[int, float, bool]:
        """(next_state, reward, done)."""
        self.state += 1
        return self.state, 1.0, self.state >= self.episode_length


def make_ticker(params) -> Ticker:  # noqa: ANN001
    return Ticker(episode_length=params.episode_length, gamma=params.gamma)
