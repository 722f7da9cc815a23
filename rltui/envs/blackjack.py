"""Gymnasium's Blackjack-v1 (Sutton & Barto, example 5.1) as a sampled episodic env on its own
observation (player sum, dealer's showing card, usable ace), with its rules and defaults
(`natural = False`, `sab = False`): an infinite deck (1-9 and four 10s), hit or stick, the dealer
draws to 17, +1 / 0 / -1. The observation is Markov with an infinite deck, so the dealer's hidden card
can be drawn when the player sticks, and a hand's future depends only on its sum and usable ace.

Interface of the tabular samplers: `reset(rng) -> s`, `step(s, a, rng) -> (s', r, terminated)`,
`states`, `actions`, `available`, `terminal`, plus `exploring_starts()`: the 200 decision states of
Figure 5.2 (player sum 12-21). State index: (sum · 11 + dealer) · 2 + usable, as Gymnasium's spaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DECK = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10)
ACTIONS = ("stick", "hit")  # Gymnasium's 0 and 1


def index(player: int, dealer: int, usable: bool) -> int:
    return (player * 11 + dealer) * 2 + int(usable)


def decode(s: int) -> tuple[int, int, bool]:
    rest, usable = divmod(s, 2)
    player, dealer = divmod(rest, 11)
    return player, dealer, bool(usable)


def hand_value(raw: int, has_ace: bool) -> tuple[int, bool]:
    """(sum, usable ace) of a hand whose cards add to `raw` with aces as 1."""
    usable = has_ace and raw + 10 <= 21
    return (raw + 10 if usable else raw), usable


@dataclass
class Blackjack:
    gamma: float = 1.0
    name: str = "Blackjack-v1"
    states: list[str] = field(default_factory=lambda: [
        f"{p},{d},{'ace' if u else 'no ace'}" for p in range(32) for d in range(11) for u in (False, True)])
    actions: list[str] = field(default_factory=lambda: list(ACTIONS))

    def __post_init__(self) -> None:
        self.n_states, self.n_actions = len(self.states), 2
        self.available = np.ones((self.n_states, 2), dtype=bool)
        self.terminal = np.zeros(self.n_states, dtype=bool)
        self.layout: dict[str, Any] = {"kind": "blackjack", "states": self.states, "actions": self.actions}

    @staticmethod
    def draw(rng: np.random.Generator) -> int:
        return DECK[int(rng.random() * len(DECK))]

    def reset(self, rng: np.random.Generator) -> int:
        dealer = self.draw(rng)
        a, b = self.draw(rng), self.draw(rng)
        total, usable = hand_value(a + b, 1 in (a, b))
        return index(total, dealer, usable)

    def step(self, s: int, a: int, rng: np.random.Generator) -> tuple[int, float, bool]:
        player, dealer, usable = decode(s)
        if a == 1:  # hit
            raw = (player - 10 if usable else player) + (card := self.draw(rng))
            total, usable = hand_value(raw, usable or card == 1)
            if total > 21:
                return index(min(total, 31), dealer, usable), -1.0, True
            return index(total, dealer, usable), 0.0, False
        # stick: the dealer's hidden card, then draws while below 17
        card = self.draw(rng)
        raw, has_ace = dealer + card, dealer == 1 or card == 1
        total, _ = hand_value(raw, has_ace)
        while total < 17:
            card = self.draw(rng)
            raw, has_ace = raw + card, has_ace or card == 1
            total, _ = hand_value(raw, has_ace)
        dealer_score = 0 if total > 21 else total
        return s, float((player > dealer_score) - (player < dealer_score)), True

    def exploring_starts(self) -> list[int]:
        return [index(p, d, u) for p in range(12, 22) for d in range(1, 11) for u in (False, True)]


def make_blackjack(params: Any) -> Blackjack:
    return Blackjack(gamma=params.gamma)
