"""Tabular MDPs: the maze, gridworld maps and slip, the cliff, the chain — dynamics checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rltui.config import ConfigError, load_config_text
from rltui.envs.tabular import GRID_ACTIONS, MapError, chain_mdp, grid_mdp, validate_map
from rltui.schemas.tabular import ChainParams, CliffParams, GridworldParams, MazeParams
from rltui.envs import tabular

UP, DOWN, LEFT, RIGHT = range(4)


def state_of(env, r, c):
    return env.states.index(f"({r},{c})")


def test_maze_layout_matches_the_seed_text():
    env = tabular.make_maze(MazeParams())
    assert env.n_states == 14 and env.actions == list(GRID_ACTIONS) == ["up", "down", "left", "right"]
    assert "(1,1)" not in env.states and "(2,2)" not in env.states  # walls are not states
    assert env.layout["map"] == ["S...", ".#..", "..#.", "...G"]
    assert env.layout["kind"] == "grid" and env.layout["rows"] == 4 and env.layout["cols"] == 4
    assert [tuple(p) for p in env.layout["positions"]][:2] == [(0, 0), (0, 1)]
    start = state_of(env, 0, 0)
    assert env.start[start] == 1.0 and env.start.sum() == 1.0
    goal = state_of(env, 3, 3)
    assert env.terminal[goal] and env.terminal.sum() == 1
    assert env.gamma == 0.9


def test_maze_rewards_step_bump_and_goal():
    env = tabular.make_maze(MazeParams())
    s = state_of(env, 0, 0)
    assert env.outcomes(s, RIGHT) == [(state_of(env, 0, 1), 1.0, -0.01)]  # an ordinary step
    assert env.outcomes(s, UP) == [(s, 1.0, -1.0)]  # the border: stay put, -1
    assert env.outcomes(state_of(env, 0, 1), DOWN) == [(state_of(env, 0, 1), 1.0, -1.0)]  # the wall at (1,1)
    # reaching the goal pays exactly +1 (not +1 - 0.01)
    assert env.outcomes(state_of(env, 2, 3), DOWN) == [(state_of(env, 3, 3), 1.0, 1.0)]
    assert env.outcomes(state_of(env, 3, 2), RIGHT) == [(state_of(env, 3, 3), 1.0, 1.0)]
    # the goal is terminal: no transitions, no available action
    goal = state_of(env, 3, 3)
    assert not env.available[goal].any() and env.prob[goal].sum() == 0


def test_sampled_stepping_follows_the_exact_dynamics():
    env = tabular.make_maze(MazeParams())
    rng = np.random.default_rng(0)
    s = env.reset(rng)
    assert s == state_of(env, 0, 0)
    path = [RIGHT, RIGHT, RIGHT, DOWN, DOWN, DOWN]
    total, done = 0.0, False
    for a in path:
        s, r, done = env.step(s, a, rng)
        total += r
    assert done and s == state_of(env, 3, 3)
    assert total == pytest.approx(5 * -0.01 + 1.0)
    with pytest.raises(ValueError, match="not available"):
        env.step(s, UP, rng)


def test_dense_P_rows_are_distributions_and_terminal_rows_empty():
    for env in (tabular.make_maze(MazeParams()), tabular.make_cliff(CliffParams()),
                tabular.make_chain(ChainParams(slip=0.3)), tabular.make_maze(MazeParams(slip=0.2))):
        P, R = env.dense()
        sums = P.sum(axis=2)
        assert np.allclose(sums[env.available], 1.0)
        assert np.all(sums[~env.available] == 0)
        assert np.all(P[env.terminal] == 0)
        assert np.allclose((P * R).sum(axis=2), env.expected_reward)


def test_slip_goes_perpendicular_half_each_and_merges_repeated_next_states():
    rows = ["S..", "...", "..G"]
    env = grid_mdp(rows, gamma=0.9, slip=0.2, step_reward=-0.1, bump_reward=-1.0)
    centre = state_of(env, 1, 1)
    outs = {env.states[s2]: (p, r) for s2, p, r in env.outcomes(centre, UP)}
    assert outs == {"(0,1)": (0.8, -0.1), "(1,0)": (pytest.approx(0.1), -0.1), "(1,2)": (pytest.approx(0.1), -0.1)}
    # top-left corner, action up: up bumps (0.8) and slip-left bumps (0.1) both stay put -> merged
    corner = state_of(env, 0, 0)
    outs = {env.states[s2]: (p, r) for s2, p, r in env.outcomes(corner, UP)}
    assert outs["(0,0)"][0] == pytest.approx(0.9) and outs["(0,0)"][1] == pytest.approx(-1.0)
    assert outs["(0,1)"] == (pytest.approx(0.1), -0.1)


def test_merged_outcomes_keep_the_expected_reward():
    # at the cliff start, `down` bumps (0.8: stay, -1), slipping left bumps (0.1: stay, -1) and
    # slipping right falls into the cliff (0.1: back to the start, -100): one merged outcome
    env = tabular.make_cliff(CliffParams(slip=0.2))
    start = state_of(env, 3, 0)
    assert len(env.outcomes(start, DOWN)) == 1
    s2, p, r = env.outcomes(start, DOWN)[0]
    assert s2 == start and p == pytest.approx(1.0)
    assert r == pytest.approx(0.8 * -1.0 + 0.1 * -1.0 + 0.1 * -100.0)
    assert env.expected_reward[start, DOWN] == pytest.approx(-10.9)


def test_slip_frequencies_when_sampled():
    env = grid_mdp(["S..", "...", "..G"], gamma=0.9, slip=0.3)
    rng = np.random.default_rng(1)
    centre = state_of(env, 1, 1)
    hits = [env.step(centre, RIGHT, rng)[0] for _ in range(20_000)]
    freq = {env.states[s]: hits.count(s) / len(hits) for s in set(hits)}
    assert freq["(1,2)"] == pytest.approx(0.7, abs=0.02)
    assert freq["(0,1)"] == pytest.approx(0.15, abs=0.02)
    assert freq["(2,1)"] == pytest.approx(0.15, abs=0.02)


def test_cliff_walk():
    env = tabular.make_cliff(CliffParams())
    assert env.layout["rows"] == 4 and env.layout["cols"] == 12
    assert env.n_states == 48 - 10  # the ten cliff cells are not states
    start, goal = state_of(env, 3, 0), state_of(env, 3, 11)
    assert env.terminal[goal] and env.start[start] == 1.0
    assert env.outcomes(start, RIGHT) == [(start, 1.0, -100.0)]  # into the cliff: back to start
    assert env.outcomes(state_of(env, 2, 5), DOWN) == [(start, 1.0, -100.0)]
    assert env.outcomes(state_of(env, 2, 5), UP) == [(state_of(env, 1, 5), 1.0, -1.0)]
    assert env.outcomes(state_of(env, 2, 11), DOWN) == [(goal, 1.0, -1.0)]  # -1 per step, the last too
    assert env.gamma == 1.0


def test_pits_are_terminal_and_pay_pit_reward():
    env = grid_mdp(["SH", ".G"], gamma=0.9, pit_reward=-5.0)
    pit = state_of(env, 0, 1)
    assert env.terminal[pit]
    assert env.outcomes(state_of(env, 0, 0), RIGHT) == [(pit, 1.0, -5.0)]


def test_chain_dynamics():
    env = chain_mdp(5, gamma=0.9, slip=0.25, step_reward=-0.5, goal_reward=2.0)
    assert env.states == ["0", "1", "2", "3", "4"] and env.actions == ["left", "right"]
    assert env.layout == {"kind": "chain", "n": 5, "states": env.states, "actions": ["left", "right"]}
    assert env.terminal.tolist() == [False, False, False, False, True]
    assert sorted(env.outcomes(0, 0)) == [(0, 0.75, -0.5), (1, 0.25, -0.5)]  # left at 0 stays put
    assert sorted(env.outcomes(3, 1)) == [(2, 0.25, -0.5), (4, 0.75, 2.0)]


# --- map validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rows, message",
    [
        ([], "the map is empty"),
        (["S..", ".G"], "row 2 has 2 cells but row 1 has 3"),
        (["S.x", "..G"], "row 1, column 3: unknown character 'x'; allowed: S start, G goal"),
        (["...", "..G"], "exactly one S (start), found 0"),
        (["S..", "S.G"], "exactly one S (start), found 2 (at row 1 column 1, row 2 column 1)"),
        (["S..", "..."], "at least one G (goal), found none"),
    ],
)
def test_bad_maps_are_refused_with_a_precise_message(rows, message):
    with pytest.raises(MapError) as err:
        validate_map(rows)
    assert message in str(err.value)


def test_bad_inline_map_in_a_config_names_the_file_and_key():
    text = '[env]\nid = "gridworld"\nmap = ["S.#", "..Z"]\n[algo]\nid = "value_iteration"\n'
    with pytest.raises(ConfigError) as err:
        load_config_text(text, source="world.toml")
    msg = str(err.value)
    assert msg.startswith("world.toml: env.map: row 2, column 3: unknown character 'Z'")


def test_bad_map_file_names_the_map_file(tmp_path):
    (tmp_path / "lake.txt").write_text("S..\n.H\n..G\n")
    text = '[env]\nid = "gridworld"\npath = "lake.txt"\n[algo]\nid = "value_iteration"\n'
    with pytest.raises(ConfigError) as err:
        load_config_text(text, source=str(tmp_path / "run.toml"), base_dir=tmp_path)
    msg = str(err.value)
    assert "env.path: map file " in msg and "lake.txt: row 2 has 2 cells but row 1 has 3" in msg


def test_missing_map_file_and_map_or_path(tmp_path):
    with pytest.raises(ConfigError, match="map file .*nothere.txt: no such file"):
        load_config_text('[env]\nid = "gridworld"\npath = "/nothere.txt"\n[algo]\nid = "value_iteration"\n')
    with pytest.raises(ConfigError, match="give exactly one of `map` .* or `path` .*, not neither"):
        load_config_text('[env]\nid = "gridworld"\n[algo]\nid = "value_iteration"\n')
    (tmp_path / "m.txt").write_text("SG\n")
    with pytest.raises(ConfigError, match="not both"):
        load_config_text('[env]\nid = "gridworld"\nmap = ["SG"]\npath = "m.txt"\n[algo]\nid = "value_iteration"\n',
                         base_dir=tmp_path)


def test_gridworld_map_from_file_with_trailing_newline(tmp_path):
    (tmp_path / "m.txt").write_text("S.#\n..G\n\n")
    env = tabular.make_gridworld(GridworldParams(path=str(tmp_path / "m.txt")))
    assert env.layout["map"] == ["S.#", "..G"] and env.n_states == 5


@pytest.mark.parametrize("block", [1, 3, 7, 16384])
@pytest.mark.parametrize("slip", [0.0, 0.3, 1.0])
def test_the_grid_stencil_sweep_equals_the_generic_sweep(slip, block, monkeypatch):
    """Grids sweep block by block through shifted slices of V, patched where a move does not land
    a fixed offset away; the generic (s, a, k) gather of the same arrays must give the same Q and
    max_a Q, with blocks of every size (a block boundary inside a row, a terminal last state), and
    terminal columns 0 whatever V holds there."""
    import dataclasses

    monkeypatch.setattr(tabular, "GRID_BLOCK", block)
    for rows in (["S.#.H", "CC..G", "..#.."], ["S..#", ".H..", "#..G"], ["SG"]):
        env = grid_mdp(rows, gamma=0.9, slip=slip, cliff_reward=-5.0, bump_reward=-0.3, pit_reward=-2.0)
        generic = dataclasses.replace(env, stencil=None)
        V = np.random.default_rng(1).normal(size=env.n_states)  # terminal states too: their Q is 0 anyway
        for masked in (True, False):
            assert env.q_actions_first(V, masked) == pytest.approx(generic.q_actions_first(V, masked), abs=1e-14)
        best = env.backup_max(V, np.full(env.n_states, np.nan))
        assert best == pytest.approx(generic.backup_max(V, np.empty(env.n_states)), abs=1e-14)
        assert np.all(best[env.terminal] == 0.0) and np.all(env.q_from_v(V)[env.terminal] == 0.0)
