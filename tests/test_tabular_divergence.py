"""γ = 1 where the values have no finite limit: value and policy iteration end the run with one
line saying why (in the summary's `diverged` and in the log), checked on MDPs whose values are
known in closed form; where the values merely oscillate, no such claim is made."""

from __future__ import annotations

import numpy as np
import pytest

from rltui.algos.dynamic_programming import earns_forever, pays_forever
from rltui.envs.mdp_file import mdp_from_data
from test_tabular_algos import run


def mdp_file(tmp_path, data: dict) -> dict:
    """An [env] table for a custom MDP file holding `data` (written as TOML)."""
    lines = [f"gamma = {data['gamma']}", f"states = {data['states']!r}", f"actions = {data['actions']!r}",
             f"start = {data['start']!r}", f"terminal = {data['terminal']!r}", "transitions = ["]
    lines += [f"  [{s!r}, {a!r}, {t!r}, {p!r}, {r!r}]," for s, a, t, p, r in data["transitions"]]
    path = tmp_path / "m.toml"
    path.write_text("\n".join(lines + ["]"]).replace("'", '"') + "\n")
    return {"id": "custom", "path": str(path)}


# A: `stay` pays +1 and stays; `go` ends the episode (G) paying 0. V*(A) = Σ_t γ^t = 1/(1-γ): +∞ at γ = 1.
EARN = {"gamma": 1.0, "states": ["A", "G"], "actions": ["stay", "go"], "start": "A", "terminal": ["G"],
        "transitions": [["A", "stay", "A", 1.0, 1.0], ["A", "go", "G", 1.0, 0.0]]}
# A loop A -> B (+3), B -> A (-1) that can be left at B for G (0): gain (3 - 1) / 2 = +1 per step.
CYCLE = {"gamma": 1.0, "states": ["A", "B", "G"], "actions": ["next", "out"], "start": "A", "terminal": ["G"],
         "transitions": [["A", "next", "B", 1.0, 3.0], ["B", "next", "A", 1.0, -1.0], ["B", "out", "G", 1.0, 0.0]]}
# From S: `end` (0) or `fall` into T, where the only action `stay` pays -1 forever: V*(T) = -∞, V*(S) = 0.
TRAP = {"gamma": 1.0, "states": ["S", "T", "G"], "actions": ["end", "fall", "stay"], "start": "S", "terminal": ["G"],
        "transitions": [["S", "end", "G", 1.0, 0.0], ["S", "fall", "T", 1.0, 0.0], ["T", "stay", "T", 1.0, -1.0]]}
# A <-> B paying +1 then -1, no way out: V_k oscillates between two values, bounded; no divergence.
FLIP = {"gamma": 1.0, "states": ["A", "B", "G"], "actions": ["flip"], "start": "A", "terminal": ["G"],
        "transitions": [["A", "flip", "B", 1.0, 1.0], ["B", "flip", "A", 1.0, -1.0]]}


@pytest.mark.parametrize("algo", ["value_iteration", "policy_iteration"])
def test_a_policy_earning_reward_forever_ends_the_run_with_one_clear_line(store, tmp_path, capfd, algo):
    out = run(store, mdp_file(tmp_path, EARN), {"id": algo, "max_sweeps": 10_000})
    summary = out["summary"]
    assert summary["converged"] is False
    message = summary["diverged"]
    assert "diverge at γ = 1 because a policy can earn reward forever" in message
    assert "state 'A'" in message and "+1 per step" in message
    assert f"{algo}: {message}" in capfd.readouterr().err  # the same line in the run's log
    if algo == "value_iteration":
        # V_k(A) = k: max|ΔV| = 1 at every sweep; seen at the first look (sweep 16), not at the cap
        assert summary["sweeps"] == 16
        assert out["tabular"]["V"][0] == 16.0


def test_the_same_mdp_below_gamma_one_converges_to_its_closed_form(store, tmp_path):
    out = run(store, mdp_file(tmp_path, {**EARN, "gamma": 0.9}), {"id": "value_iteration", "theta": 1e-12})
    assert out["summary"]["converged"] is True and "diverged" not in out["summary"]
    assert out["tabular"]["V"][0] == pytest.approx(1 / (1 - 0.9), abs=1e-9)


def test_a_loop_of_mixed_rewards_is_judged_by_its_average_reward(store, tmp_path):
    out = run(store, mdp_file(tmp_path, CYCLE), {"id": "value_iteration", "max_sweeps": 10_000})
    message = out["summary"]["diverged"]
    assert "earn reward forever" in message and "+1 per step" in message
    assert "'A' (and 1 more state it loops through)" in message
    # the gain computed from the loop's stationary distribution, (3 - 1) / 2
    env = mdp_from_data(CYCLE)
    C, gain = earns_forever(env, np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]))
    assert C.tolist() == [0, 1] and gain == pytest.approx(1.0, abs=1e-12)
    assert earns_forever(env, np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])) is None  # leaves at B


def test_a_trap_that_pays_forever_diverges_to_minus_infinity(store, tmp_path, capfd):
    out = run(store, mdp_file(tmp_path, TRAP), {"id": "value_iteration", "max_sweeps": 10_000})
    message = out["summary"]["diverged"]
    assert "diverge to -∞ at γ = 1" in message and "state 'T'" in message and "at least 1 per step" in message
    V = dict(zip(out["tabular"]["states"], out["tabular"]["V"]))
    assert V["S"] == 0.0 and V["T"] == -16.0  # S ends the episode; T has lost 1 per sweep
    assert out["tabular"]["policy"][0] == "end"
    assert "value_iteration: the values diverge to -∞" in capfd.readouterr().err
    # the bound: a set closed under every action whose values all fell
    env = mdp_from_data(TRAP)
    assert pays_forever(env, np.array([0.0, -1.0, 0.0]))[1] == -1.0
    assert pays_forever(env, np.array([-1.0, 0.5, 0.0])) is None  # S can leave: no claim there


def test_values_that_oscillate_without_diverging_make_no_such_claim(store, tmp_path):
    out = run(store, mdp_file(tmp_path, FLIP), {"id": "value_iteration", "max_sweeps": 101})
    summary = out["summary"]
    assert summary["converged"] is False and summary["sweeps"] == 101 and "diverged" not in summary
    assert sorted(out["tabular"]["V"][:2]) == [-1.0, 1.0]  # V_101 = (1, -1): bounded, periodic
