"""Monte Carlo control through the real runner and store: Blackjack-v1's rules against Gymnasium's
own env, Figure 5.2's clear cells, and exact first-visit returns on a deterministic chain."""

from __future__ import annotations

import numpy as np
import pytest

from rltui.envs.blackjack import Blackjack, decode, index
from rltui.store.queries import latest_artifact
from test_tabular_algos import run


def mean_return_stick_at_20(step_episode, episodes: int) -> float:
    return float(np.mean([step_episode() for _ in range(episodes)]))


def test_blackjack_plays_by_gymnasiums_rules():
    import gymnasium as gym

    ours, rng = Blackjack(), np.random.default_rng(0)

    def ours_episode() -> float:
        s = ours.reset(rng)
        while True:
            a = 0 if decode(s)[0] >= 20 else 1  # stick on 20 or 21, else hit
            s, r, done = ours.step(s, a, rng)
            if done:
                return r

    env = gym.make("Blackjack-v1")
    env.reset(seed=0)

    def gym_episode() -> float:
        (player, _, _), _ = env.reset()
        while True:
            (player, _, _), r, done, _, _ = env.step(0 if player >= 20 else 1)
            if done:
                return r

    n = 20_000  # each mean has a standard error ≈ 0.0065
    assert mean_return_stick_at_20(ours_episode, n) == pytest.approx(mean_return_stick_at_20(gym_episode, n), abs=0.035)
    # sticking on 21 never loses (the dealer can only tie it)
    assert all(ours.step(index(21, d, False), 0, rng)[1] >= 0 for d in range(1, 11) for _ in range(50))
    # hitting a usable-ace 12 never busts
    assert all(not ours.step(index(12, d, True), 1, rng)[2] for d in range(1, 11) for _ in range(50))


@pytest.mark.slow
def test_figure_5_2_exploring_starts_on_blackjack(store):
    out = run(store, {"id": "Blackjack-v1"}, {"id": "monte_carlo", "exploring_starts": True, "episodes": 60_000},
              record={"last": 0})
    with store.read() as session:
        grids = latest_artifact(session, out["id"], "blackjack")
    assert grids["player"] == list(range(12, 22)) and grids["dealer"] == list(range(1, 11))
    for key in ("usable_ace", "no_usable_ace"):
        policy = np.array(grids[key]["policy"])
        assert np.all(policy[-2:] == 0)  # stick on 20 and 21
        assert np.all(np.array(grids[key]["V"])[-1] > 0.6)  # 21 wins most of the time
    assert np.all(np.array(grids["usable_ace"]["policy"])[:4] == 1)  # hit a soft 12-15: it cannot bust


@pytest.mark.parametrize("visit", ["first", "every"])
def test_monte_carlo_on_a_deterministic_chain(store, visit):
    # γ = 0.9, reward 1 on reaching state 4 of 5: a return from (i, right) that then walks right is
    # γ^(3-i); Q(3, right) = 1 exactly whatever happened before
    out = run(store, {"id": "chain", "n": 5, "gamma": 0.9},
              {"id": "monte_carlo", "episodes": 300, "epsilon": 0.2, "visit": visit}, record={"last": 0})
    tab = out["tabular"]
    assert tab["Q"][3][1] == 1.0
    assert tab["policy"][:4] == ["right"] * 4
    assert tab["Q"][4] == [None, None]  # terminal
