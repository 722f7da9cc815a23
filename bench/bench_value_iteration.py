"""Value iteration on a 200x200 gridworld (40,000 states), side by side, in one run, then a
1000x1000 one (a million states) built and solved in a child process with its peak memory:

  rltui           the vectorized Bellman sweep of rltui.algos.dynamic_programming (compact s,a,k arrays)
  python loops    a straightforward implementation looping over states in Python (only a few sweeps
                  are timed; the per-sweep time is extrapolated, and labelled so)
  pymdptoolbox    mdptoolbox.mdp.ValueIteration on scipy.sparse transition matrices, if it installs
                  (`pip install pymdptoolbox` into this venv, for the bench only: not a dependency)
  scipy.sparse    a direct implementation: one (S·A) x S CSR matrix, Q = r + γ P V, masked max

Build (vectorized, goal ≤ 50 ms at 200x200), build + solve (goal ≤ 0.3 s; best and median of
--repeat runs) and construct + solve beside both peers, to the same θ, with the largest difference
between rltui's V and each peer's (the same sweeps: equal to rounding). Then the bytes one rltui
sweep moves through memory per second, beside a large numpy copy's (the machine's bandwidth).
Run: .venv/bin/python bench/bench_value_iteration.py [--size 200] [--repeat 5] [--big 1000]
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
from rltui.schemas.tabular import ValueIterationParams


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


class KeepTabular(Recorder):
    """A Recorder that stores nothing but the final "tabular" artifact (to compare V with the peers)."""

    tabular: dict | None = None

    def artifact(self, name, value, step=None):
        if name == "tabular":
            self.tabular = value


def build_and_solve(size: int, gamma: float, slip: float, theta: float, keep: KeepTabular | None = None) -> dict:
    """Build the size x size lake and run value_iteration() to θ (a Recorder that stores nothing):
    wall and CPU seconds of each part, and this process's peak memory."""
    import resource

    params = ValueIterationParams(theta=theta, max_sweeps=100_000)  # the real schema, its defaults (horizon) filled
    w0, c0 = time.perf_counter(), time.process_time()
    env = grid_mdp(make_map(size), gamma=gamma, slip=slip)
    w1, c1 = time.perf_counter(), time.process_time()
    out = value_iteration(env, params, keep or Recorder(), seed=0)
    w2, c2 = time.perf_counter(), time.process_time()
    return {"states": env.n_states, "build_wall": w1 - w0, "build_cpu": c1 - c0, "solve_wall": w2 - w1,
            "solve_cpu": c2 - c1, "sweeps": out["sweeps"], "V_start": out["V_start"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def scipy_value_iteration(env, gamma: float, theta: float) -> tuple[float, float, int, np.ndarray]:
    """A direct scipy.sparse implementation: P as one (S·A) x S CSR matrix, Q = r + γ P V, masked
    max over actions, until max|ΔV| < θ. Returns (construct s, solve s, sweeps, V)."""
    import scipy.sparse as sp

    S, A, K = env.prob.shape
    t0 = time.perf_counter()
    rows = np.repeat(np.arange(S * A), K)
    P = sp.csr_matrix((env.prob.ravel(), (rows, env.next_state.ravel())), shape=(S * A, S))
    r = env.expected_reward.ravel()
    unavailable = ~env.available.ravel() & ~np.repeat(env.terminal, A)
    t1 = time.perf_counter()
    V, sweeps = np.zeros(S), 0
    while True:
        Q = r + gamma * (P @ V)
        Q[unavailable] = -np.inf
        V_new = Q.reshape(S, A).max(axis=1)
        sweeps += 1
        done = np.max(np.abs(V_new - V)) < theta
        V = V_new
        if done:
            break
    return t1 - t0, time.perf_counter() - t1, sweeps, V


def mdptoolbox_value_iteration(mdp, env, gamma: float, theta: float) -> tuple[float, float, int, np.ndarray]:
    """pymdptoolbox's ValueIteration: construct its per-action scipy.sparse P (terminal states
    absorbing with reward 0, the same V) and R, then solve. Its stopping rule is on the span of
    ΔV: ε = θγ/(1-γ) makes its threshold θ."""
    import scipy.sparse as sp

    S, A, K = env.prob.shape
    t0 = time.perf_counter()
    P = []
    for a in range(A):
        prob = env.prob[:, a, :].copy()
        nxt = env.next_state[:, a, :].copy()
        prob[env.terminal, 0], nxt[env.terminal, 0] = 1.0, np.flatnonzero(env.terminal)
        P.append(sp.csr_matrix((prob.ravel(), (np.repeat(np.arange(S), K), nxt.ravel())), shape=(S, S)))
    R = env.expected_reward.copy()
    # Two set-up steps of pymdptoolbox 4.0b3 cannot run at these sizes and are skipped (neither is
    # part of a sweep): util.check() broadcasts a sparse row-sum against an S vector (an S x S dense
    # array); ValueIteration._boundIter densifies a column of every P[a] per state, O(S²).
    mdp._util.check = lambda P, R: None
    mdp.ValueIteration._boundIter = lambda self, epsilon: None
    vi = mdp.ValueIteration(P, R, gamma, epsilon=theta * gamma / (1 - gamma), max_iter=100_000)
    t1 = time.perf_counter()
    vi.run()
    return t1 - t0, time.perf_counter() - t1, vi.iter, np.array(vi.V)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--big", type=int, default=1000, help="the big grid built and solved in a child process (0: skip)")
    ap.add_argument("--sweeps", type=int, default=100, help="sweeps timed for the sweep rate")
    ap.add_argument("--repeat", type=int, default=5, help="build + solve runs (best and median reported)")
    ap.add_argument("--python-sweeps", type=int, default=2, help="sweeps timed for the Python-loop version")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: build + solve one size, print JSON
    args = ap.parse_args()
    gamma, slip, theta = 0.99, 0.2, 1e-6
    big_gamma = 0.95
    if args.one:
        import json

        print(json.dumps(build_and_solve(args.one, big_gamma, slip, theta)))
        return

    import os

    print(f"load average before the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
          "(wall clock beside CPU time: CPU time is what a loaded machine distorts least)")
    lake = make_map(args.size)
    builds = []
    for _ in range(5):
        w0, c0 = time.perf_counter(), time.process_time()
        env = grid_mdp(lake, gamma=gamma, slip=slip)
        builds.append((time.perf_counter() - w0, time.process_time() - c0))
    S, A, K = env.prob.shape
    print(f"gridworld {args.size}x{args.size}: {S} states, {A} actions, up to {K} outcomes each (slip {slip}), "
          f"γ = {gamma}, θ = {theta}")
    print(f"  build (vectorized): best of 5 {min(b[0] for b in builds) * 1e3:.1f} ms wall, "
          f"{min(b[1] for b in builds) * 1e3:.1f} ms CPU   (goal ≤ 50 ms)")
    keep = KeepTabular()
    runs = [build_and_solve(args.size, gamma, slip, theta, keep) for _ in range(args.repeat)]
    totals = sorted(r["build_wall"] + r["solve_wall"] for r in runs)
    cpus = sorted(r["build_cpu"] + r["solve_cpu"] for r in runs)
    small = min(runs, key=lambda r: r["build_wall"] + r["solve_wall"])
    print(f"  build + value_iteration() to θ, {args.repeat} runs: best {totals[0]:.3f} s wall ({cpus[0]:.3f} s CPU), "
          f"median {totals[len(totals) // 2]:.3f} s wall ({cpus[len(cpus) // 2]:.3f} s CPU), "
          f"{small['sweeps']} sweeps   (goal ≤ 0.3 s)")
    V_rltui = np.array(keep.tabular["V"])

    # --- rltui: the sweep value_iteration runs (backup + max|ΔV|, into reused buffers) -------------
    V, V_new, change = np.zeros(S), np.empty(S), np.empty(S)

    def sweeps():
        nonlocal V, V_new
        for _ in range(args.sweeps):
            bellman_optimality(env, V, out=V_new)
            float(np.abs(np.subtract(V_new, V, out=change), out=change).max())
            V, V_new = V_new, V

    sweeps()  # warm up (lays out the sweep's arrays once)
    times = []
    for _ in range(5):
        V.fill(0.0)
        t0 = time.perf_counter()
        sweeps()
        times.append((time.perf_counter() - t0) / args.sweeps)
    times.sort()
    t, t_median = times[0], times[2]
    print(f"\nrltui vectorized        {1 / t:10.1f} sweeps/s   ({t * 1e3:.3f} ms/sweep best, {t_median * 1e3:.3f} median "
          f"of 5 x {args.sweeps} sweeps)")

    # --- memory bandwidth ---------------------------------------------------------------------------
    bw = memory_bandwidth()
    # what a grid sweep reads and writes outside its cache-sized block buffers: V copied in (read +
    # write), V read once per direction, r(s,a), V_new written, then max|ΔV| (V_new, V read, |ΔV|
    # written and read); at 200x200 all of it fits in the L3 cache, so this may exceed the DRAM figure
    streamed = (2 + 4 + A + 1 + 4) * S * 8
    print(f"memory bandwidth (numpy copy of 256 MiB, read+write): {bw / 1e9:.2f} GB/s; one sweep moves "
          f"{streamed / 1e6:.2f} MB -> {streamed / t / 1e9:.2f} GB/s = {streamed / t / bw:.0%} of it")

    # --- Python loops ------------------------------------------------------------------------------
    outcomes = [[env.outcomes(s, a) for a in range(A)] for s in range(S)]
    terminal = env.terminal.tolist()
    Vp = [0.0] * S
    t0 = time.perf_counter()
    for _ in range(args.python_sweeps):
        Vp = python_sweep(outcomes, terminal, Vp, gamma)
    tp = (time.perf_counter() - t0) / args.python_sweeps
    print(f"python loops            {1 / tp:10.2f} sweeps/s   ({tp * 1e3:.0f} ms/sweep; EXTRAPOLATED from "
          f"{args.python_sweeps} timed sweeps); rltui / python loops = {tp / t:.0f}x")

    # --- peers: construct + solve to the same θ -----------------------------------------------------
    rl_total = small["build_wall"] + small["solve_wall"]
    print(f"\nconstruct + solve to θ = {theta} (wall, best of {args.repeat} for rltui, one run each peer):")
    print(f"  rltui                 {small['build_wall']:.3f} s + {small['solve_wall']:.3f} s = {rl_total:.3f} s "
          f"({small['sweeps']} sweeps, {small['solve_wall'] / small['sweeps'] * 1e3:.3f} ms/sweep in the run)")
    mdp, why = try_mdptoolbox()  # installs pymdptoolbox (and scipy) into this venv, for the bench only
    try:
        import scipy  # noqa: F401
    except ImportError:
        print("  scipy.sparse: not compared (scipy is not installed)")
    else:
        build_s, solve_s, n, V_sp = scipy_value_iteration(env, gamma, theta)
        print(f"  scipy.sparse direct   {build_s:.3f} s + {solve_s:.3f} s = {build_s + solve_s:.3f} s ({n} sweeps, "
              f"{solve_s / n * 1e3:.3f} ms/sweep; construct from rltui's arrays)  -> rltui is "
              f"{(build_s + solve_s) / rl_total:.2f}x faster; max|V_rltui - V| = {np.max(np.abs(V_rltui - V_sp)):.1e}")
    if mdp is None:
        print(f"  pymdptoolbox: not compared ({why})")
    else:
        build_m, solve_m, n, V_m = mdptoolbox_value_iteration(mdp, env, gamma, theta)
        print(f"  pymdptoolbox          {build_m:.3f} s + {solve_m:.3f} s = {build_m + solve_m:.3f} s ({n} sweeps, "
              f"{solve_m / n * 1e3:.3f} ms/sweep; its own stopping rule)  -> rltui is "
              f"{(build_m + solve_m) / rl_total:.2f}x faster; max|V_rltui - V| = {np.max(np.abs(V_rltui - V_m)):.1e}")

    # --- the million-state grid, in a child process (its own peak memory) ---------------------------
    if args.big:
        import json

        proc = subprocess.run([sys.executable, __file__, "--one", str(args.big)], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"\n{args.big}x{args.big}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            return
        big = json.loads(proc.stdout)
        print(f"\ngridworld {args.big}x{args.big} ({big['states']:,} states, γ = {big_gamma}, slip {slip}, θ = {theta}):")
        print(f"  build {big['build_wall']:.1f} s wall / {big['build_cpu']:.1f} s CPU; value_iteration() "
              f"{big['solve_wall']:.1f} s wall / {big['solve_cpu']:.1f} s CPU ({big['sweeps']} sweeps); "
              f"total {big['build_wall'] + big['solve_wall']:.1f} s wall / {big['build_cpu'] + big['solve_cpu']:.1f} s CPU "
              f"(goal ≤ 20 s); {big['solve_wall'] / big['sweeps'] * 1e3:.1f} ms/sweep in the run; "
              f"peak memory {big['peak_rss_mb']:.0f} MB (goal ≤ 2048)")
    print(f"load average after the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
