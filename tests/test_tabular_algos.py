"""Tabular algorithms against answers known by hand or in closed form, through the real store."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
from sqlalchemy import select

from rltui import registry
from rltui.config import validate_config
from rltui.runner.execute import create_run, execute_run
from rltui.store.models import Episode, Run, Step
from rltui.store.queries import artifact_series, latest_artifact

MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def run(store, env: dict, algo: dict, seed: int = 0, record: dict | None = None) -> dict:
    """Validate, store and execute a run as the CLI does; return what the store holds."""
    data = {"seed": seed, "env": env, "algo": algo}
    if record:
        data["record"] = record
    config = validate_config(data, source="<test>")
    run_id = create_run(store, config)
    status = execute_run(store, run_id)
    with store.read() as session:
        r = session.get(Run, run_id)
        assert status == "completed", (r.error, r.traceback)
        out = {
            "id": run_id,
            "summary": dict(r.summary),
            "tabular": latest_artifact(session, run_id, "tabular"),
            "layout": latest_artifact(session, run_id, "layout"),
            "V_series": artifact_series(session, run_id, "V"),
            "episodes": list(session.execute(select(Episode.index, Episode.phase, Episode.return_, Episode.length,
                                                    Episode.id, Episode.has_trajectory)
                                             .where(Episode.run_id == run_id).order_by(Episode.id))),
        }
    return out


def steps_of(store, episode_id: int) -> list:
    with store.read() as session:
        return list(session.scalars(select(Step).where(Step.episode_id == episode_id).order_by(Step.t)))


def make_env(env: dict):
    config = validate_config({"env": env, "algo": {"id": "value_iteration"}}, source="<test>")
    return registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)


def greedy_path(tab: dict, layout: dict, max_len: int = 100) -> list[tuple[int, int]]:
    """Follow the stored greedy policy from S on a deterministic grid."""
    rows = layout["map"]
    pos = next((r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch == "S")
    names = tab["states"]
    path = [pos]
    while rows[pos[0]][pos[1]] != "G" and len(path) < max_len:
        a = tab["policy"][names.index(f"({pos[0]},{pos[1]})")]
        dr, dc = MOVES[a]
        pos = (pos[0] + dr, pos[1] + dc)
        path.append(pos)
    return path


# --- the maze, by hand ---------------------------------------------------------------------------
def maze_distances() -> dict[tuple[int, int], int]:
    """Moves to the goal from each free cell (BFS from G on the seed maze)."""
    rows = ["S...", ".#..", "..#.", "...G"]
    dist = {(3, 3): 0}
    queue = deque([(3, 3)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES.values():
            n = (r + dr, c + dc)
            if 0 <= n[0] < 4 and 0 <= n[1] < 4 and rows[n[0]][n[1]] != "#" and n not in dist:
                dist[n] = dist[(r, c)] + 1
                queue.append(n)
    return dist


@pytest.mark.parametrize("algo", ["value_iteration", "policy_iteration"])
def test_maze_optimal_values_and_six_move_path(store, algo):
    gamma = 0.9
    out = run(store, {"id": "maze", "gamma": gamma}, {"id": algo, "theta": 1e-12})
    tab = out["tabular"]
    # d moves to the goal: d-1 ordinary steps at -0.01, then +1 on the move that reaches it:
    # V*(s) = Σ_{k=0}^{d-2} γ^k (-0.01) + γ^(d-1) · 1
    for (r, c), d in maze_distances().items():
        expected = 0.0 if d == 0 else sum(gamma**k * -0.01 for k in range(d - 1)) + gamma ** (d - 1)
        assert tab["V"][tab["states"].index(f"({r},{c})")] == pytest.approx(expected, abs=1e-9)
    v_start = sum(gamma**k * -0.01 for k in range(5)) + gamma**5
    assert out["summary"]["V_start"] == pytest.approx(v_start, abs=1e-9)
    assert out["summary"]["converged"] is True
    path = greedy_path(tab, out["layout"])
    assert len(path) - 1 == 6 and path[-1] == (3, 3)
    assert (1, 1) not in path and (2, 2) not in path
    # Q* of bumping into the border at the start: -1 and stay put
    start = tab["states"].index("(0,0)")
    assert tab["Q"][start][tab["actions"].index("up")] == pytest.approx(-1 + gamma * v_start, abs=1e-9)
    assert tab["policy"][tab["states"].index("(3,3)")] is None  # terminal
    assert tab["Q"][tab["states"].index("(3,3)")] == [None, None, None, None]  # terminal: no action is taken
    # the greedy evaluation episode walks the 6-move path, with Q, π, V per step
    (ep,) = [e for e in out["episodes"] if e.phase == "eval"]
    assert ep.length == 6 and ep.return_ == pytest.approx(5 * -0.01 + 1)
    steps = steps_of(store, ep.id)
    assert len(steps) == 6 and steps[-1].done and steps[0].extras["V"] == pytest.approx(v_start, abs=1e-9)
    assert sum(steps[0].extras["pi"]) == pytest.approx(1.0) and len(steps[0].extras["Q"]) == 4


def test_value_iteration_stores_V_after_every_sweep_and_value_spreads_from_the_goal(store):
    out = run(store, {"id": "maze", "gamma": 0.9}, {"id": "value_iteration", "theta": 1e-12})
    series = out["V_series"]
    sweeps = out["summary"]["sweeps"]
    assert [step for step, _ in series] == list(range(sweeps + 1))
    assert np.all(series[0][1] == 0)
    names = out["tabular"]["states"]
    start = names.index("(0,0)")
    # after sweep 1 only the two cells next to the goal know about it
    assert sorted(names[i] for i in np.flatnonzero(series[1][1] > 0)) == ["(2,3)", "(3,2)"]
    assert series[-1][1][start] == pytest.approx(out["summary"]["V_start"])


# --- the chain, in closed form -------------------------------------------------------------------
def test_chain_value_iteration_matches_closed_form(store):
    n, gamma = 8, 0.8
    out = run(store, {"id": "chain", "n": n, "gamma": gamma}, {"id": "value_iteration", "theta": 1e-14})
    V = out["tabular"]["V"]
    # V*(i) = γ^(n-2-i): n-1-i moves right, the reward 1 comes on the last one
    assert V == pytest.approx([gamma ** (n - 2 - i) for i in range(n - 1)] + [0.0], abs=1e-12)
    assert out["tabular"]["policy"] == ["right"] * (n - 1) + [None]
    assert out["summary"]["sweeps"] == n  # n-1 sweeps to reach state 0, one more to see no change


def test_chain_with_step_cost_and_slip_matches_the_linear_solve(store):
    n, gamma, slip = 6, 0.95, 0.2
    out = run(store, {"id": "chain", "n": n, "gamma": gamma, "slip": slip, "step_reward": -0.1},
              {"id": "policy_evaluation", "policy": {str(i): "right" for i in range(n - 1)}, "theta": 1e-13,
               "max_sweeps": 10_000})
    env = make_env({"id": "chain", "n": n, "gamma": gamma, "slip": slip, "step_reward": -0.1})
    assert out["tabular"]["V"] == pytest.approx(linear_solve(env, always(env, 1)), abs=1e-10)


# --- policy evaluation against (I - γ P_π) V = r_π -----------------------------------------------
def always(env, a: int) -> np.ndarray:
    pi = np.zeros((env.n_states, env.n_actions))
    pi[~env.terminal, a] = 1.0
    return pi


def linear_solve(env, pi: np.ndarray) -> np.ndarray:
    P, R = env.dense()
    P_pi = np.einsum("sa,sat->st", pi, P)
    r_pi = np.einsum("sa,sat,sat->s", pi, P, R)
    return np.linalg.solve(np.eye(env.n_states) - env.gamma * P_pi, r_pi)


def test_policy_evaluation_uniform_matches_linear_solve(store):
    env_cfg = {"id": "gridworld", "map": ["S..#", ".H..", "...G"], "slip": 0.2, "gamma": 0.9}
    out = run(store, env_cfg, {"id": "policy_evaluation", "theta": 1e-13, "max_sweeps": 10_000})
    env = make_env(env_cfg)
    uniform = env.available / np.maximum(env.available.sum(axis=1, keepdims=True), 1)
    assert out["tabular"]["V"] == pytest.approx(linear_solve(env, uniform), abs=1e-10)
    assert out["summary"]["converged"] is True


def test_policy_evaluation_of_a_table_policy_on_the_custom_mdp(store, tmp_path):
    from rltui.envs.mdp_file import load_mdp

    path = str(sample("mdps/custom_abc.toml"))
    out = run(store, {"id": "custom", "path": path},
              {"id": "policy_evaluation", "policy": {"A": {"left": 0.25, "right": 0.75}}, "theta": 1e-14})
    env = load_mdp(path)
    pi = np.array([[0.25, 0.75], [0.0, 1.0], [0.0, 0.0]])  # B only has `right`; C is terminal
    assert out["tabular"]["V"] == pytest.approx(linear_solve(env, pi), abs=1e-10)
    # B's `left` has no transitions: unavailable, shown as null
    assert out["tabular"]["Q"][1][0] is None


def test_bad_policy_table_is_refused_at_the_door():
    from rltui.config import ConfigError

    with pytest.raises(ConfigError) as err:
        validate_config({"env": {"id": "maze"}, "algo": {"id": "policy_evaluation", "policy": {"(0,0)": "jump"}}})
    assert err.value.key == "algo.policy.(0,0)" and "unknown action 'jump'" in err.value.message


def test_gamma_one_with_a_never_ending_policy_reports_not_converged(store):
    # always `left` on a chain costing -1 per move with γ = 1: V^π = -∞, delta stays 1 forever
    out = run(store, {"id": "chain", "n": 5, "gamma": 1.0, "step_reward": -1.0},
              {"id": "policy_evaluation", "policy": {str(i): "left" for i in range(4)}, "max_sweeps": 60})
    assert out["summary"]["converged"] is False and out["summary"]["sweeps"] == 60
    assert out["tabular"]["V"][0] == pytest.approx(-60.0)


# --- VI and PI agree -----------------------------------------------------------------------------
@pytest.mark.parametrize("env", [
    # γ < 1: PI starts from the uniform random policy, whose evaluation at γ = 1 on the cliff
    # takes tens of thousands of sweeps (it keeps falling in)
    {"id": "cliff", "gamma": 0.95},
    {"id": "gridworld", "path": "maps/frozen_lake.txt", "slip": 2 / 3, "step_reward": 0.0, "pit_reward": 0.0,
     "bump_reward": 0.0, "gamma": 0.99},
    {"id": "maze", "slip": 0.1, "gamma": 0.95},
])
def test_value_iteration_and_policy_iteration_agree(store, env):
    if "path" in env:
        env = {**env, "path": str(sample(env["path"]))}
    vi = run(store, env, {"id": "value_iteration", "theta": 1e-12, "max_sweeps": 5000})
    pi = run(store, env, {"id": "policy_iteration", "theta": 1e-12, "max_sweeps": 20_000})
    assert vi["summary"]["converged"] and pi["summary"]["converged"]
    assert pi["tabular"]["V"] == pytest.approx(vi["tabular"]["V"], abs=1e-8)
    # both greedy policies are optimal: their actions have the optimal Q
    Q, V = np.array(vi["tabular"]["Q"], dtype=float), np.array(vi["tabular"]["V"])
    for s, a in enumerate(pi["tabular"]["policy"]):
        if a is not None:
            assert Q[s, vi["tabular"]["actions"].index(a)] == pytest.approx(V[s], abs=1e-7)


def test_frozen_lake_optimal_start_value(store):
    # Gymnasium's FrozenLake 4x4 (slippery), γ = 0.99: V*(start) ≈ 0.5420 (computed here by a linear
    # solve of the optimal policy, so the check is self-contained)
    env_cfg = {"id": "gridworld", "path": str(sample("maps/frozen_lake.txt")), "slip": 2 / 3, "step_reward": 0.0,
               "pit_reward": 0.0, "bump_reward": 0.0, "gamma": 0.99}
    out = run(store, env_cfg, {"id": "value_iteration", "theta": 1e-13, "max_sweeps": 5000})
    env = make_env(env_cfg)
    pi = np.zeros((env.n_states, env.n_actions))
    for s, a in enumerate(out["tabular"]["policy"]):
        if a is not None:
            pi[s, env.actions.index(a)] = 1.0
    V = linear_solve(env, pi)
    assert out["tabular"]["V"] == pytest.approx(V, abs=1e-9)
    assert V[0] == pytest.approx(0.5420, abs=1e-3)


# --- TD learning ---------------------------------------------------------------------------------
def test_q_learning_converges_to_value_iterations_Q_star(store):
    env = {"id": "maze", "gamma": 0.9}
    vi = run(store, env, {"id": "value_iteration", "theta": 1e-12})
    # off-policy: behave uniformly at random (ε = 1), learn the greedy Q*. Deterministic MDP, so a
    # constant α converges exactly.
    ql = run(store, env, {"id": "q_learning", "episodes": 400, "alpha": 0.5, "epsilon": 1.0, "max_steps": 200},
             record={"last": 0})
    q_star = np.array(vi["tabular"]["Q"], dtype=float)
    q = np.array(ql["tabular"]["Q"], dtype=float)
    assert q == pytest.approx(q_star, abs=1e-3, nan_ok=True)  # the goal's row is null (terminal)
    assert len(greedy_path(ql["tabular"], ql["layout"])) - 1 == 6  # ties may pick another 6-move path
    assert ql["summary"]["greedy_return"] == pytest.approx(0.95)


def cliff_run(store, algo: str) -> dict:
    return run(store, {"id": "cliff"}, {"id": algo, "episodes": 500, "alpha": 0.5, "alpha_schedule": "linear",
                                        "alpha_end": 0.05, "epsilon": 0.1, "max_steps": 500}, record={"last": 1})


def test_sarsa_learns_the_safe_path_q_learning_the_edge(store):
    """Sutton & Barto, example 6.6: with ε = 0.1 exploration, SARSA (on-policy) learns the path away
    from the cliff and gets better online returns; Q-learning learns the optimal path along the edge
    and falls in more often while exploring."""
    sarsa, qlearn = cliff_run(store, "sarsa"), cliff_run(store, "q_learning")
    q_path = greedy_path(qlearn["tabular"], qlearn["layout"])
    s_path = greedy_path(sarsa["tabular"], sarsa["layout"])
    assert len(q_path) - 1 == 13 and all((2, c) in q_path for c in range(12))  # along the edge
    assert s_path[-1] == (3, 11) and len(s_path) - 1 > 13
    assert not any((2, c) in s_path for c in range(1, 11))  # never walks next to the cliff
    online = {name: np.mean([e.return_ for e in out["episodes"] if e.phase == "train"][-100:])
              for name, out in (("sarsa", sarsa), ("q_learning", qlearn))}
    assert online["sarsa"] > online["q_learning"] + 10


def test_expected_sarsa_with_greedy_policy_is_q_learning(store):
    # ε = 0: Σ π(a'|s') Q(s',a') = max Q(s',·), so the targets, hence the whole runs, coincide.
    algo = {"episodes": 60, "alpha": 0.5, "epsilon": 0.0, "q_init": 1.0, "max_steps": 200}
    es = run(store, {"id": "maze"}, {"id": "expected_sarsa", **algo}, record={"last": 0})
    ql = run(store, {"id": "maze"}, {"id": "q_learning", **algo}, record={"last": 0})
    assert es["tabular"]["Q"] == ql["tabular"]["Q"]
    sa = run(store, {"id": "maze"}, {"id": "sarsa", **algo, "epsilon": 0.3}, record={"last": 0})
    es3 = run(store, {"id": "maze"}, {"id": "expected_sarsa", **algo, "epsilon": 0.3}, record={"last": 0})
    assert sa["tabular"]["Q"] != es3["tabular"]["Q"]


def test_same_config_and_seed_give_identical_results(store):
    algo = {"id": "sarsa", "episodes": 50, "epsilon": 0.2, "max_steps": 100}
    a = run(store, {"id": "maze", "slip": 0.2}, algo, seed=3)
    b = run(store, {"id": "maze", "slip": 0.2}, algo, seed=3)
    c = run(store, {"id": "maze", "slip": 0.2}, algo, seed=4)
    returns = lambda out: [(e.index, e.phase, e.return_, e.length) for e in out["episodes"]]  # noqa: E731
    assert a["tabular"] == b["tabular"] and returns(a) == returns(b)
    assert returns(a) != returns(c)


def test_td_records_trajectories_with_extras_and_never_picks_unavailable_actions(store):
    path = str(sample("mdps/custom_abc.toml"))
    out = run(store, {"id": "custom", "path": path},
              {"id": "q_learning", "episodes": 40, "epsilon": 0.5, "temperature": None, "eval_every": 10},
              record={"last": 40})
    train = [e for e in out["episodes"] if e.phase == "train"]
    evals = [e for e in out["episodes"] if e.phase == "eval"]
    assert len(train) == 40 and len(evals) == 4  # after episodes 10, 20, 30 and at the end
    assert all(e.has_trajectory for e in train)
    for e in train:
        for st in steps_of(store, e.id):
            if st.state == 1:  # state B: only `right` (index 1) is available
                assert st.action == 1
                assert st.extras["Q"][0] is None and st.extras["pi"][0] == 0.0
            assert set(st.extras) == {"Q", "pi", "V", "td_error"}
    assert out["summary"]["episodes"] == 40


def test_boltzmann_and_schedules_run_and_decay(store):
    out = run(store, {"id": "chain", "n": 5}, {"id": "expected_sarsa", "episodes": 30, "temperature": 0.5,
                                               "alpha_schedule": "visits"}, record={"last": 0})
    assert out["tabular"]["policy"][:4] == ["right"] * 4
    with store.read() as session:
        from rltui.store.models import Metric

        eps = list(session.scalars(select(Metric.value).where(Metric.run_id == run(
            store, {"id": "chain", "n": 5}, {"id": "q_learning", "episodes": 20, "epsilon": 1.0, "epsilon_end": 0.0,
                                             "epsilon_fraction": 0.5}, record={"last": 0})["id"],
            Metric.key == "epsilon").order_by(Metric.step)))
    assert eps[0] == 1.0 and eps[-1] == 0.0 and eps[5] == pytest.approx(1 - 5 / 19 / 0.5)


def sample(rel: str):
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "sample_runs" / rel
