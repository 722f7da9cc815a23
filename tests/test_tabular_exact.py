"""γ = 1 done right: exact policy values, proper greedy policies, the policy policy iteration
converged to, null Q rows at terminal states, the step size logged under `visits`. Every figure is
checked against a hand value or a numpy linear solve."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlalchemy import select

from conftest import SAMPLE_RUNS, rltui_json
from rltui.algos.dynamic_programming import policy_value, proper_greedy
from rltui.config import ConfigError, validate_config
from rltui.envs.mdp_file import mdp_from_data
from rltui.store.models import Metric
from test_tabular_algos import always, linear_solve, make_env, run

FROZEN_NO_SLIP = {"id": "gridworld", "path": str(SAMPLE_RUNS / "maps" / "frozen_lake.txt"), "slip": 0.0,
                  "step_reward": 0.0, "goal_reward": 1.0, "pit_reward": 0.0, "bump_reward": 0.0, "gamma": 1.0}


def policy_matrix(env, policy: list) -> np.ndarray:
    pi = np.zeros((env.n_states, env.n_actions))
    for s, a in enumerate(policy):
        if a is not None:
            pi[s, env.actions.index(a)] = 1.0
    return pi


def exact_value_gamma_one(env, pi: np.ndarray) -> np.ndarray:
    """V^π at γ = 1 for a proper policy by numpy's solve on the non-terminal states."""
    P, R = env.dense()
    live = np.flatnonzero(~env.terminal)
    P_pi = np.einsum("sa,sat->st", pi, P)[np.ix_(live, live)]
    r_pi = np.einsum("sa,sat,sat->s", pi, P, R)[live]
    V = np.zeros(env.n_states)
    V[live] = np.linalg.solve(np.eye(len(live)) - P_pi, r_pi)
    return V


def reaches_a_terminal(env, policy: list, s: int) -> bool:
    seen = set()
    while not env.terminal[s]:
        if s in seen:
            return False
        seen.add(s)
        (s2, _, _), = env.outcomes(s, env.actions.index(policy[s]))  # no slip: one outcome
        s = s2
    return True


@pytest.mark.parametrize("algo", ["value_iteration", "policy_iteration"])
def test_frozen_lake_without_slip_at_gamma_one_stores_a_policy_that_reaches_the_goal(store, algo):
    out = run(store, FROZEN_NO_SLIP, {"id": algo, "theta": 1e-10})
    env = make_env(FROZEN_NO_SLIP)
    tab = out["tabular"]
    goal = env.states.index("(3,3)")
    live = [s for s in range(env.n_states) if not env.terminal[s]]
    # every frozen cell of the 4x4 lake can reach the goal without falling in: V* = 1 there
    assert [tab["V"][s] for s in live] == pytest.approx([1.0] * len(live), abs=1e-12)
    assert out["summary"]["converged"] is True and out["summary"]["V_start"] == pytest.approx(1.0)
    for s in live:
        assert reaches_a_terminal(env, tab["policy"], s)
    # ... the goal, not a hole: the stored π's own exact value is V*
    assert exact_value_gamma_one(env, policy_matrix(env, tab["policy"])) == pytest.approx(tab["V"], abs=1e-12)
    assert out["summary"]["eval_return"] == 1.0 and out["summary"]["eval_length"] == 6
    assert tab["V"][goal] == 0.0


def loop_or_go(order: tuple[str, str]) -> dict:
    """A: `stay` (a zero-reward self-loop) or `go` (+1, to the terminal G). γ = 1: Q*(A, stay) =
    0 + V*(A) = 1 = Q*(A, go), a tie, but only `go` is worth V*(A) = 1; `stay` forever is worth 0."""
    return {"gamma": 1.0, "states": ["A", "G"], "actions": list(order), "start": "A", "terminal": ["G"],
            "transitions": [["A", "stay", "A", 1.0, 0.0], ["A", "go", "G", 1.0, 1.0]]}


@pytest.mark.parametrize("order", [("stay", "go"), ("go", "stay")])
@pytest.mark.parametrize("algo", ["value_iteration", "policy_iteration"])
def test_a_tie_with_a_zero_reward_loop_picks_the_action_that_ends(store, tmp_path, algo, order):
    path = tmp_path / "loop.json"
    path.write_text(json.dumps(loop_or_go(order)))
    out = run(store, {"id": "custom", "path": str(path)}, {"id": algo})
    assert out["tabular"]["policy"] == ["go", None]
    assert out["tabular"]["V"] == [1.0, 0.0] and out["summary"]["converged"] is True
    assert out["summary"]["eval_return"] == 1.0


def test_policy_value_is_exact_with_zero_reward_loops():
    env = mdp_from_data(loop_or_go(("stay", "go")))
    stay, go = always(env, 0), always(env, 1)
    assert policy_value(env, stay).tolist() == [0.0, 0.0]  # the loop collects 0 forever
    assert policy_value(env, go).tolist() == [1.0, 0.0]
    half = (stay + go) / 2  # ends with probability 1: V(A) = 1 (each attempt pays +1 once)
    assert policy_value(env, half) == pytest.approx([1.0, 0.0], abs=1e-15)
    lossy = {**loop_or_go(("stay", "go")), "transitions": [["A", "stay", "A", 1.0, -1.0], ["A", "go", "G", 1.0, 1.0]]}
    assert policy_value(mdp_from_data(lossy), always(mdp_from_data(lossy), 0)) is None  # -∞: no value


def test_proper_greedy_on_a_stochastic_cycle():
    # A -go-> B or A (1/2 each), B -go-> G (+1); both also have `stay` (0, self-loop). γ = 1: every
    # Q ties at 1; the proper choice is go, go even though A's `go` can come back to A.
    data = {"gamma": 1.0, "states": ["A", "B", "G"], "actions": ["stay", "go"], "start": "A", "terminal": ["G"],
            "transitions": [["A", "stay", "A", 1.0, 0.0], ["A", "go", "B", 0.5, 0.0], ["A", "go", "A", 0.5, 0.0],
                            ["B", "stay", "B", 1.0, 0.0], ["B", "go", "G", 1.0, 1.0]]}
    env = mdp_from_data(data)
    Q = env.q_from_v(np.array([1.0, 1.0, 0.0]))
    assert proper_greedy(env, Q, 1e-9).tolist() == [1, 1, -1]


@pytest.mark.parametrize("gamma", [0.9, 1.0])
def test_policy_iteration_stores_the_policy_it_converged_to_and_its_exact_value(store, gamma):
    env_cfg = {"id": "gridworld", "map": ["S..#.", ".H...", "...#G", "..H.."], "slip": 0.2, "gamma": gamma,
               "step_reward": -0.04, "bump_reward": -0.04}
    out = run(store, env_cfg, {"id": "policy_iteration", "theta": 1e-12})
    env = make_env(env_cfg)
    pi = policy_matrix(env, out["tabular"]["policy"])
    exact = exact_value_gamma_one(env, pi) if gamma == 1.0 else linear_solve(env, pi)
    assert out["summary"]["converged"] is True
    assert out["tabular"]["V"] == pytest.approx(exact, abs=1e-10)
    vi = run(store, env_cfg, {"id": "value_iteration", "theta": 1e-13, "max_sweeps": 100_000})
    assert exact == pytest.approx(vi["tabular"]["V"], abs=1e-8)  # ... and it is V*


def test_random_mdps_policy_iteration_matches_the_linear_solve_of_its_policy(store, tmp_path):
    rng = np.random.default_rng(7)
    for trial in range(3):
        S, A = 6, 3
        states, actions = [f"s{i}" for i in range(S)], [f"a{j}" for j in range(A)]
        rows = []
        for s in range(S - 1):
            for a in range(A):
                p = rng.dirichlet(np.ones(S))
                rows += [[states[s], actions[a], states[t], float(p[t]), float(rng.normal())] for t in range(S)]
        data = {"gamma": 0.9, "states": states, "actions": actions, "start": "s0", "terminal": [states[-1]],
                "transitions": rows}
        path = tmp_path / f"r{trial}.json"
        path.write_text(json.dumps(data))
        out = run(store, {"id": "custom", "path": str(path)}, {"id": "policy_iteration", "theta": 1e-12})
        env = make_env({"id": "custom", "path": str(path)})
        pi = policy_matrix(env, out["tabular"]["policy"])
        assert out["tabular"]["V"] == pytest.approx(linear_solve(env, pi), abs=1e-11)


def test_terminal_rows_of_Q_are_null_in_show_json(tmp_path):
    db = tmp_path / "s.db"
    ran = rltui_json("run", str(SAMPLE_RUNS / "maze_value_iteration.toml"), db=db)
    shown = rltui_json("show", str(ran["id"]), db=db)
    tab = shown["tabular"]
    goal = tab["states"].index("(3,3)")
    assert tab["Q"][goal] == [None] * 4 and tab["policy"][goal] is None and tab["V"][goal] == 0.0
    assert all(q is not None for s, row in enumerate(tab["Q"]) if s != goal for q in row)


def test_visits_schedule_logs_the_step_size_used(store, tmp_path):
    # one state, one action straight to the terminal: episode k updates Q(A, go) for the k-th time,
    # with α / k^ω
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"gamma": 1.0, "states": ["A", "G"], "actions": ["go"], "start": "A",
                                "terminal": ["G"], "transitions": [["A", "go", "G", 1.0, 1.0]]}))
    out = run(store, {"id": "custom", "path": str(path)},
              {"id": "q_learning", "episodes": 5, "alpha": 0.5, "alpha_schedule": "visits", "alpha_power": 0.8},
              record={"last": 0})
    with store.read() as session:
        alphas = list(session.scalars(select(Metric.value).where(Metric.run_id == out["id"], Metric.key == "alpha")
                                      .order_by(Metric.step)))
    assert alphas == pytest.approx([0.5 / k**0.8 for k in range(1, 6)], abs=1e-15)


def test_td_with_a_ucb_bonus_tries_every_action(store, tmp_path):
    # one state, `low` pays 1 and `high` pays 2, both end the episode. Greedy with Q = 0 sticks to
    # whichever it pulls first (its Q becomes > 0); UCB pulls the untried one next, so after two
    # episodes with α = 1 both Q are exact, and then it keeps the better one.
    path = tmp_path / "two.json"
    path.write_text(json.dumps({"gamma": 1.0, "states": ["A", "G"], "actions": ["low", "high"], "start": "A",
                                "terminal": ["G"], "transitions": [["A", "low", "G", 1.0, 1.0], ["A", "high", "G", 1.0, 2.0]]}))
    env = {"id": "custom", "path": str(path)}
    algo = {"id": "q_learning", "episodes": 2, "alpha": 1.0, "epsilon": 0.0}
    ucb2 = run(store, env, {**algo, "ucb_c": 0.5}, record={"last": 0})
    assert ucb2["tabular"]["Q"][0] == [1.0, 2.0]
    greedy = [run(store, env, algo, seed=seed, record={"last": 0})["tabular"]["Q"][0] for seed in range(4)]
    assert all(0.0 in q for q in greedy)  # one action never tried
    ucb = run(store, env, {**algo, "ucb_c": 0.5, "episodes": 50}, record={"last": 0})
    assert ucb["tabular"]["policy"][0] == "high" and ucb["summary"]["greedy_return"] == 2.0
    with pytest.raises(ConfigError, match="algo.ucb_c"):
        validate_config({"env": env, "algo": {"id": "sarsa", "ucb_c": 1.0, "temperature": 0.5}})


# --- finite horizon: backward induction ----------------------------------------------------------
def test_finite_horizon_value_iteration_on_the_maze_by_hand(store):
    gamma, H = 0.9, 3
    out = run(store, {"id": "maze", "gamma": gamma}, {"id": "value_iteration", "horizon": H})
    tab = out["tabular"]
    V = dict(zip(tab["states"], tab["V"]))
    # the start is 6 moves from the goal: in 3 steps the best is 3 ordinary moves
    assert out["summary"]["V_start"] == pytest.approx(-0.01 * (1 + gamma + gamma**2), abs=1e-12)
    # (1,3) is 2 moves away: -0.01 then +1, as without a horizon
    assert V["(1,3)"] == pytest.approx(-0.01 + gamma, abs=1e-12)
    assert out["summary"]["horizon"] == H and out["summary"]["eval_length"] == H
    with store.read() as session:
        from rltui.store.queries import artifact_series, latest_artifact

        policy_h = latest_artifact(session, out["id"], "policy_h")
        series = artifact_series(session, out["id"], "V")
    # non-stationary: with one step left at (2,3) the move into the goal, as at every h
    assert len(policy_h["policy"]) == H
    assert all(p[policy_h["states"].index("(2,3)")] == "down" for p in policy_h["policy"])
    assert [k for k, _ in series] == [0, 1, 2, 3]


def test_finite_horizon_on_the_chain_at_gamma_one(store):
    # reward 1 only on reaching the end, 4 moves from the start: worth 0 with 3 steps, 1 with 4
    for H, v in [(3, 0.0), (4, 1.0), (10, 1.0)]:
        for algo in ("value_iteration", "policy_iteration"):
            out = run(store, {"id": "chain", "n": 5, "gamma": 1.0}, {"id": algo, "horizon": H})
            assert out["summary"]["V_start"] == v
    pe = run(store, {"id": "chain", "n": 3, "gamma": 1.0},
             {"id": "policy_evaluation", "policy": {"0": {"left": 0.5, "right": 0.5}, "1": "right"}, "horizon": 2})
    # from 0: right (1/2) then right: 1; left (1/2, stay at 0) then one step left: reaches 1, not 2
    assert pe["summary"]["V_start"] == pytest.approx(0.5)
