"""Value iteration on a 200x200 gridworld (40,000 states), side by side, in one run:

  rltui           the vectorized Bellman sweep of rltui.algos.dynamic_programming (compact s,a,k arrays)
  python loops    a straightforward implementation looping over states in Python (only a few sweeps
                  are timed; the per-sweep time is extrapolated, and labelled so)
  pymdptoolbox    mdptoolbox.mdp.ValueIteration on scipy.sparse transition matrices, if it installs
                  (`pip install pymdptoolbox` into this venv, for the bench only: not a dependency)

and the fraction of the machine's memory bandwidth one rltui sweep reaches (bandwidth measured here
with a large numpy copy). Run: .venv/bin/python bench/bench_value_iteration.py [--size 200]
"""

from __future__ import annotations

import argparse
import importlib
import math
import subprocess
import sys
import time

import numpy as np

from rltui.algos.dynamic_programming import bellman_optimality, value_iteration
from rltui.envs.tabular import grid_mdp
from rltui.recorder import Recorder


def make_map(size: int, seed: int = 0) -> list[str]:
    """An open size x size lake with 5% pits (pits are terminal states, so every cell is a state)."""
    rng = np.random.default_rng(seed)
    cells = np.where(rng.random((size, size)) < 0.05, "H", ".")
    cells[0, 0], cells[-1, -1] = "S", "G"
    return ["".join(row) for row in cells]


def best_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def memory_bandwidth(mb: int = 256) -> float:
    """Bytes/s of a large numpy copy (read + write counted), best of 5."""
    a = np.ones(mb * 2**20 // 8)
    b = np.empty_like(a)
    t = best_time(lambda: np.copyto(b, a), 5)
    return 2 * a.nbytes / t


def python_sweep(outcomes, terminal, V, gamma):
    """One Bellman optimality sweep, state by state, in plain Python."""
    V_new = [0.0] * len(V)
    for s, per_action in enumerate(outcomes):
        if terminal[s]:
            continue
        best = -math.inf
        for outs in per_action:
            if not outs:
                continue
            q = 0.0
            for s2, p, r in outs:
                q += p * (r + gamma * V[s2])
            best = max(best, q)
        V_new[s] = best
    return V_new


def try_mdptoolbox():
    try:
        return importlib.import_module("mdptoolbox.mdp"), None
    except ImportError:
        pass
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "pymdptoolbox"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, f"`pip install pymdptoolbox` failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    try:
        importlib.invalidate_caches()
        return importlib.import_module("mdptoolbox.mdp"), None
    except Exception as exc:  # noqa: BLE001 — report whatever keeps it from importing
        return None, f"pymdptoolbox installed but does not import: {type(exc).__name__}: {exc}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--sweeps", type=int, default=100, help="sweeps timed for rltui and pymdptoolbox")
    ap.add_argument("--python-sweeps", type=int, default=2, help="sweeps timed for the Python-loop version")
    args = ap.parse_args()

    gamma, slip = 0.99, 0.2
    t0 = time.perf_counter()
    env = grid_mdp(make_map(args.size), gamma=gamma, slip=slip)
    build_s = time.perf_counter() - t0
    S, A, K = env.prob.shape
    import os

    print(f"load average before the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (timings are wall clock)")
    print(f"gridworld {args.size}x{args.size}: {S} states, {A} actions, up to {K} outcomes each "
          f"(slip {slip}), γ = {gamma}; built in {build_s:.2f} s")

    # --- rltui: the sweep value_iteration runs (backup + max|ΔV|) ---------------------------------
    V = np.zeros(S)

    def sweeps():
        nonlocal V
        for _ in range(args.sweeps):
            V_new = bellman_optimality(env, V)
            float(np.max(np.abs(V_new - V)))
            V = V_new

    sweeps()  # warm up (builds the cached r(s,a))
    V = np.zeros(S)
    t = best_time(lambda: (V.fill(0.0), sweeps()), 3) / args.sweeps
    V_rltui = V.copy()
    rltui_sps = 1 / t
    print(f"\nrltui vectorized        {rltui_sps:10.1f} sweeps/s   ({t * 1e3:.2f} ms/sweep, best of 3 x {args.sweeps} sweeps)")

    # the whole algorithm to convergence, recorder overhead included (a Recorder that stores nothing)
    class _Params:
        theta, max_sweeps = 1e-6, 100_000

    t0 = time.perf_counter()
    out = value_iteration(env, _Params(), Recorder(), seed=0)
    full = time.perf_counter() - t0
    print(f"  value_iteration() to θ=1e-6, with its final Q/π table and evaluation episode: {out['sweeps']} sweeps in {full:.2f} s = {out['sweeps'] / full:.1f} sweeps/s, "
          f"V(start) = {out['V_start']:.6f}")

    # --- memory bandwidth ---------------------------------------------------------------------------
    bw = memory_bandwidth()
    # what a sweep reads and writes at the least: int64 next-state indices and float64 probabilities
    # for every (s, a, k), r(s,a), V in and V out (the gather's and einsum's temporaries not counted)
    streamed = S * A * K * (8 + 8) + S * A * 8 + 2 * S * 8
    print(f"\nmemory bandwidth (numpy copy of 256 MiB, read+write): {bw / 1e9:.2f} GB/s")
    print(f"one sweep must stream next_state (int64) + prob + r(s,a) + V in/out = {streamed / 1e6:.2f} MB "
          f"-> {streamed / t / 1e9:.2f} GB/s = {streamed / t / bw:.1%} of the measured bandwidth")

    # --- Python loops ------------------------------------------------------------------------------
    outcomes = [[env.outcomes(s, a) for a in range(A)] for s in range(S)]
    terminal = env.terminal.tolist()
    Vp = [0.0] * S
    t0 = time.perf_counter()
    for _ in range(args.python_sweeps):
        Vp = python_sweep(outcomes, terminal, Vp, gamma)
    tp = (time.perf_counter() - t0) / args.python_sweeps
    check = np.zeros(S)
    for _ in range(args.python_sweeps):
        check = bellman_optimality(env, check)
    print(f"\npython loops            {1 / tp:10.2f} sweeps/s   ({tp * 1e3:.0f} ms/sweep; EXTRAPOLATED from "
          f"{args.python_sweeps} timed sweeps)  max|V - rltui| after {args.python_sweeps}: {np.max(np.abs(np.array(Vp) - check)):.1e}")
    print(f"  rltui / python loops = {tp / t:.0f}x")

    # --- pymdptoolbox ------------------------------------------------------------------------------
    mdp, why = try_mdptoolbox()
    if mdp is None:
        print(f"\npymdptoolbox: not compared ({why})")
        return
    import scipy.sparse as sp

    # mdptoolbox has no terminal states: a terminal state becomes absorbing with reward 0 (same V).
    P = []
    for a in range(A):
        rows, cols, vals = [], [], []
        for s in range(S):
            if env.terminal[s]:
                rows.append(s), cols.append(s), vals.append(1.0)
                continue
            for s2, p, _ in outcomes[s][a]:
                rows.append(s), cols.append(s2), vals.append(p)
        P.append(sp.csr_matrix((vals, (rows, cols)), shape=(S, S)))
    R = env.expected_reward.copy()
    # Two set-up steps of pymdptoolbox 4.0b3 cannot run at 40,000 states and are skipped (neither is
    # part of a sweep): util.check() broadcasts a sparse row-sum (an S x 1 matrix) against an S
    # vector, an S x S dense array (12.8 GB); ValueIteration._boundIter densifies a column of
    # every P[a] per state, O(S²). We fix the number of sweeps anyway.
    mdp._util.check = lambda P, R: None
    mdp.ValueIteration._boundIter = lambda self, epsilon: None
    print("\npymdptoolbox: skipping its util.check() and _boundIter() set-up (both O(S²) memory/time at this size)")
    t0 = time.perf_counter()
    vi = mdp.ValueIteration(P, R, gamma, epsilon=1e-300, max_iter=args.sweeps)
    setup = time.perf_counter() - t0
    vi.max_iter = args.sweeps  # it may lower max_iter to its own bound; time exactly args.sweeps
    t0 = time.perf_counter()
    vi.run()
    tm = (time.perf_counter() - t0) / vi.iter
    diff = np.max(np.abs(np.array(vi.V) - V_rltui)) if vi.iter == args.sweeps else float("nan")
    print(f"\npymdptoolbox            {1 / tm:10.1f} sweeps/s   ({tm * 1e3:.2f} ms/sweep over {vi.iter} sweeps, "
          f"scipy.sparse; set-up {setup:.2f} s)  max|V - rltui| after {vi.iter}: {diff:.1e}")
    print(f"  rltui / pymdptoolbox = {tm / t:.2f}x")


if __name__ == "__main__":
    main()
