"""A deterministic demo store: realistic runs written through the real StoreRecorder.

Used by the TUI's tests and snapshots, by bench/bench_tui.py, and by `python -m rltui.tui.demo PATH`
to try the lab without training anything. Every number comes from a real (small) computation:
value iteration and Q-learning on the seeds' 4x4 maze, a cart-pole simulated with its textbook
dynamics under a linear controller, and a short language-model episode with per-token statistics.
Timestamps are fixed and the recorder's wall clock is simulated, so screenshots are repeatable.
"""

from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import update

from rltui.config import dump_toml
from rltui.recorder import RecordPolicy, StepRecord, StoreRecorder
from rltui.store.engine import Store
from rltui.store.models import Run

EPOCH = datetime(2026, 1, 5, 9, 30, 0)
ACTIONS = ["up", "right", "down", "left"]
MOVES = [(-1, 0), (0, 1), (1, 0), (0, -1)]
MAZE = ["S...", ".#..", "..#.", "...G"]


class SimClockRecorder(StoreRecorder):
    """A StoreRecorder whose wall clock is simulated (seconds advance as the caller says)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sim_time = 0.0

    def wall_time(self) -> float:
        return self.sim_time


def add_run(
    store: Store,
    name: str,
    env: dict[str, Any],
    algo: dict[str, Any],
    *,
    seed: int = 0,
    status: str = "completed",
    created: datetime | None = None,
    duration_s: float = 12.0,
    progress: float = 1.0,
    device: str = "cpu",
    tags: list[str] | None = None,
    notes: str = "",
    error: str | None = None,
    traceback: str | None = None,
    log_path: str | None = None,
) -> int:
    """A run row as the runner would leave it (config as TOML and as data, fixed times)."""
    created = created or EPOCH
    config = {"name": name, "seed": seed, "device": device, "env": env, "algo": algo}
    started = created + timedelta(seconds=2) if status != "queued" else None
    finished = started + timedelta(seconds=duration_s) if started and status not in ("queued", "running") else None
    with store.write() as session:
        run = Run(
            name=name, env_id=env["id"], algo_id=algo["id"], config_toml=dump_toml(config), config=config,
            seed=seed, device=device, device_used=None if status == "queued" else "cpu", status=status,
            created_at=created, started_at=started, finished_at=finished,
            heartbeat_at=(started + timedelta(seconds=duration_s)) if started else None,
            pid=None, host="lab", progress=progress, summary={}, tags=tags or [], notes=notes,
            versions={}, error=error, traceback=traceback, log_path=log_path,
        )
        session.add(run)
        session.flush()
        return run.id


# --- the maze (seeds: start (0,0), walls (1,1), (2,2), goal (3,3)) -----------------------------
def maze_mdp() -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray, np.ndarray]:
    """States (non-wall cells), P[s, a, s'], R[s, a] (expected reward), terminal mask."""
    cells = [(r, c) for r in range(4) for c in range(4) if MAZE[r][c] != "#"]
    index = {cell: i for i, cell in enumerate(cells)}
    n, m = len(cells), len(ACTIONS)
    P, R = np.zeros((n, m, n)), np.zeros((n, m))
    terminal = np.array([MAZE[r][c] == "G" for r, c in cells])
    for s, (r, c) in enumerate(cells):
        for a, (dr, dc) in enumerate(MOVES):
            if terminal[s]:
                P[s, a, s] = 1.0
                continue
            nr, nc = r + dr, c + dc
            if not (0 <= nr < 4 and 0 <= nc < 4) or MAZE[nr][nc] == "#":
                P[s, a, s], R[s, a] = 1.0, -1.0  # bumped: stay put
            else:
                s2 = index[(nr, nc)]
                P[s, a, s2] = 1.0
                R[s, a] = 1.0 if MAZE[nr][nc] == "G" else -0.01
    return cells, P, R, terminal


def maze_layout(cells: list[tuple[int, int]]) -> dict[str, Any]:
    return {
        "kind": "grid", "rows": 4, "cols": 4, "map": MAZE,
        "positions": [list(c) for c in cells], "states": [f"({r},{c})" for r, c in cells], "actions": ACTIONS,
    }


def _step_maze(cells, index, s: int, a: int) -> tuple[int, float, bool]:  # noqa: ANN001
    r, c = cells[s]
    nr, nc = r + MOVES[a][0], c + MOVES[a][1]
    if not (0 <= nr < 4 and 0 <= nc < 4) or MAZE[nr][nc] == "#":
        return s, -1.0, False
    s2 = index[(nr, nc)]
    return (s2, 1.0, True) if MAZE[nr][nc] == "G" else (s2, -0.01, False)


def _tabular_artifact(cells, Q: np.ndarray, terminal: np.ndarray) -> dict[str, Any]:  # noqa: ANN001
    V = np.where(terminal, 0.0, Q.max(axis=1))
    return {
        "states": [f"({r},{c})" for r, c in cells], "actions": ACTIONS, "V": V.tolist(), "Q": Q.tolist(),
        "policy": [None if terminal[s] else ACTIONS[int(Q[s].argmax())] for s in range(len(cells))],
    }


def write_value_iteration(store: Store, run_id: int, gamma: float = 0.9) -> None:
    """Value iteration, V after every sweep, then a greedy episode with Q/π/V/TD error extras."""
    cells, P, R, terminal = maze_mdp()
    index = {cell: i for i, cell in enumerate(cells)}
    rec = SimClockRecorder(store, run_id, flush_every=1e9)
    rec.artifact("layout", maze_layout(cells))
    V = np.zeros(len(cells))
    rec.artifact("V", V.copy(), step=0)
    for sweep in range(1, 100):
        # Bellman optimality target: V(s) = max_a Σ_s' P(s'|s,a) [r(s,a) + γ V(s')], terminal masked.
        Q = R + gamma * (P @ (V * ~terminal))
        V_new = np.where(terminal, 0.0, Q.max(axis=1))
        delta = float(np.abs(V_new - V).max())
        V = V_new
        rec.sim_time = sweep * 0.01
        rec.artifact("V", V.copy(), step=sweep)
        rec.log(sweep, delta=delta)
        if delta < 1e-8:
            break
    Q = R + gamma * (P @ (V * ~terminal))
    rec.artifact("tabular", _tabular_artifact(cells, Q, terminal))
    steps, s, G = [], 0, 0.0
    for t in range(20):
        a = int(Q[s].argmax())
        s2, r, done = _step_maze(cells, index, s, a)
        td = r + (0.0 if done else gamma * V[s2]) - V[s]
        G += r
        pi = [1.0 if i == a else 0.0 for i in range(4)]
        steps.append(StepRecord(t, s, a, r, done, {"Q": Q[s].tolist(), "pi": pi, "V": float(V[s]), "td_error": td,
                                                   "return_so_far": G}))
        s = s2
        if done:
            break
    rec.episode(0, G, len(steps), phase="eval", steps=steps, step=sweep)
    rec.summary(sweeps=sweep, converged=True, best_return=G, final_return=G)
    rec.progress(1.0)
    rec.close()


def write_q_learning(store: Store, run_id: int, seed: int, episodes: int = 300, gamma: float = 0.9,
                     alpha: float = 0.5, live_until: int | None = None) -> None:
    """Tabular Q-learning on the maze (ε-greedy, terminal masked): returns, TD error, ε, trajectories."""
    cells, P, R, terminal = maze_mdp()
    index = {cell: i for i, cell in enumerate(cells)}
    rng = np.random.default_rng(seed)
    rec = SimClockRecorder(store, run_id, policy=RecordPolicy(every=100, last=2), flush_every=1e9)
    rec.artifact("layout", maze_layout(cells))
    Q = np.zeros((len(cells), 4))
    step = 0
    upto = episodes if live_until is None else live_until
    for ep in range(upto):
        epsilon = max(0.05, 1.0 - ep / (0.6 * episodes))
        s, G, traj, tds = 0, 0.0, [], []
        # Build per-step extras only for episodes the store keeps (every 100th, and the last two).
        keep = rec.wants_trajectory(ep) and (ep % 100 == 0 or ep >= upto - 2)
        for t in range(50):
            a = int(rng.integers(4)) if rng.random() < epsilon else int(Q[s].argmax())
            s2, r, done = _step_maze(cells, index, s, a)
            # Q-learning target: r + γ max_a' Q(s', a'), with Q(terminal, ·) = 0.
            target = r + (0.0 if done else gamma * Q[s2].max())
            td = target - Q[s, a]
            q_before = Q[s].tolist()
            Q[s, a] += alpha * td
            G += r
            step += 1
            tds.append(abs(td))
            if keep:
                greedy = int(np.argmax(q_before))
                pi = [epsilon / 4 + (1 - epsilon if i == greedy else 0.0) for i in range(4)]
                traj.append(StepRecord(t, s, a, r, done, {"Q": q_before, "pi": pi, "V": max(q_before), "td_error": td,
                                                          "return_so_far": G}))
            s = s2
            if done:
                break
        rec.sim_time = step * 0.002
        rec.episode(ep, G, t + 1, steps=traj or None, step=step)
        rec.log(step, td_error=float(np.mean(tds)), epsilon=epsilon)
        rec.progress((ep + 1) / episodes)
    if live_until is None:
        rec.artifact("tabular", _tabular_artifact(cells, Q, terminal))
        rec.summary(final_return=G)
    rec.close()


def cartpole_trajectory(steps: int = 120) -> list[tuple[list[float], int, float, bool]]:
    """Cart-pole (Barto, Sutton & Anderson 1983 dynamics, Euler, τ=0.02) under a linear controller."""
    g, mc, mp, l, f_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    x, x_dot, th, th_dot = 0.02, 0.0, 0.04, 0.0
    out = []
    for t in range(steps):
        state = [x, x_dot, th, th_dot]
        a = 1 if (th + 0.3 * th_dot + 0.02 * x + 0.05 * x_dot) > 0 else 0
        force = f_mag if a == 1 else -f_mag
        temp = (force + mp * l * th_dot**2 * math.sin(th)) / (mc + mp)
        th_acc = (g * math.sin(th) - math.cos(th) * temp) / (l * (4 / 3 - mp * math.cos(th) ** 2 / (mc + mp)))
        x_acc = temp - mp * l * th_acc * math.cos(th) / (mc + mp)
        x, x_dot = x + tau * x_dot, x_dot + tau * x_acc
        th, th_dot = th + tau * th_dot, th_dot + tau * th_acc
        done = abs(x) > 2.4 or abs(th) > 0.2095 or t == steps - 1
        out.append((state, a, 1.0, done))
        if done:
            break
    return out


def write_control(store: Store, run_id: int, updates: int = 60) -> None:
    """A PPO-shaped run: SB3 metric names per update, rising returns, one eval trajectory."""
    rng = np.random.default_rng(7)
    rec = SimClockRecorder(store, run_id, flush_every=1e9)
    rec.artifact("layout", {"kind": "cartpole"})
    ep = 0
    for u in range(1, updates + 1):
        step = u * 2048
        rec.sim_time = u * 1.5
        frac = u / updates
        rec.log(step, loss=float(0.8 * math.exp(-3 * frac) + 0.05 * rng.random()),
                approx_kl=float(0.01 + 0.005 * rng.random()), clip_fraction=float(0.1 + 0.05 * rng.random()),
                entropy=float(0.69 - 0.4 * frac), explained_variance=float(min(0.95, frac * 1.2)))
        for _ in range(3):
            ret = float(min(500.0, 20 + 480 * frac**1.5 + 30 * rng.standard_normal()))
            rec.episode(ep, max(8.0, ret), int(max(8.0, ret)), step=step)
            ep += 1
    traj = cartpole_trajectory()
    steps, G = [], 0.0
    for t, (state, a, r, done) in enumerate(traj):
        G += r
        v = float(len(traj) - t) * 0.9
        steps.append(StepRecord(t, state, a, r, done, {"pi": [0.2, 0.8] if a else [0.8, 0.2], "V": v,
                                                       "advantage": float(r + 0.99 * (v - 0.9) - v)}))
    rec.episode(0, G, len(steps), phase="eval", steps=steps, step=updates * 2048)
    rec.summary(best_return=500.0, final_return=G)
    rec.progress(1.0)
    rec.close()


def write_lm(store: Store, run_id: int) -> None:
    """An RLHF-style episode: the response token by token with logprob, ref logprob, KL, advantage."""
    rec = SimClockRecorder(store, run_id, flush_every=1e9)
    rec.artifact("layout", {"kind": "text"})
    for it in range(1, 41):
        rec.sim_time = it * 0.8
        rec.log(it, **{"objective/kl": 0.02 * it ** 0.5, "objective/scores": -1.0 + 2.0 * (1 - math.exp(-it / 12)),
                       "policy/approxkl_avg": 0.004 + 0.001 * math.sin(it)})
        rec.episode(it - 1, -1.0 + 2.0 * (1 - math.exp(-it / 12)) + 0.05 * math.sin(it * 1.7), 12, step=it)
    prompt = "Q: What is the capital of France?\nA:"
    tokens = [" The", " capital", " of", " France", " is", " Paris", "."]
    steps, G = [], 0.0
    for t, tok in enumerate(tokens):
        lp = -0.3 - 0.1 * t % 0.7
        ref = lp - 0.05 * (t + 1) / len(tokens)
        done = t == len(tokens) - 1
        r = 1.0 if done else 0.0
        G += r
        steps.append(StepRecord(t, {"prompt": prompt, "response": "".join(tokens[:t])}, tok, r, done,
                                {"token": tok, "logprob": lp, "ref_logprob": ref, "kl": lp - ref,
                                 "value": 0.5 + 0.05 * t, "advantage": 0.4 - 0.05 * t}))
    rec.episode(0, G, len(tokens), phase="eval", steps=steps, step=40)
    rec.summary(final_return=G)
    rec.progress(1.0)
    rec.close()


def populate(store: Store, *, live: bool = False) -> dict[str, int]:
    """The demo store. Returns name → run id. `live=True` leaves one Q-learning run `running`."""
    ids: dict[str, int] = {}
    maze = {"id": "maze", "gamma": 0.9}
    t = EPOCH
    ids["vi"] = add_run(store, "maze-vi", maze, {"id": "value_iteration", "theta": 1e-8, "max_sweeps": 1000},
                        created=t, duration_s=0.4, tags=["dp"], notes="Exact Bellman optimality sweeps.")
    write_value_iteration(store, ids["vi"])
    for seed in (0, 1, 2):
        key = f"q{seed}"
        ids[key] = add_run(store, f"maze-q-s{seed}", maze, {"id": "q_learning", "alpha": 0.5, "episodes": 300},
                           seed=seed, created=t + timedelta(minutes=1 + seed), duration_s=3.0 + seed, tags=["td"])
        write_q_learning(store, ids[key], seed)
    ids["q_fast"] = add_run(store, "maze-q-a0.9", maze, {"id": "q_learning", "alpha": 0.9, "episodes": 300},
                            created=t + timedelta(minutes=4), duration_s=2.5, tags=["td"])
    write_q_learning(store, ids["q_fast"], 0, alpha=0.9)
    ids["ppo"] = add_run(store, "cartpole-ppo", {"id": "cartpole", "gamma": 0.99},
                         {"id": "ppo", "learning_rate": 3e-4, "n_steps": 2048}, created=t + timedelta(minutes=5),
                         duration_s=95.0, tags=["deep"])
    write_control(store, ids["ppo"])
    ids["lm"] = add_run(store, "lm-ppo-capitals", {"id": "text_prompts", "gamma": 1.0},
                        {"id": "lm_ppo", "kl_coef": 0.05}, created=t + timedelta(minutes=6), duration_s=40.0,
                        tags=["lm"])
    write_lm(store, ids["lm"])
    ids["failed"] = add_run(
        store, "cliff-sarsa-bad", {"id": "cliff", "gamma": 1.0}, {"id": "sarsa", "alpha": 2.0},
        status="failed", created=t + timedelta(minutes=7), duration_s=0.3, progress=0.1,
        error="FloatingPointError: overflow encountered in multiply",
        traceback='Traceback (most recent call last):\n  File "rltui/algos/sarsa.py", line 42, in train\n'
                  "    Q[s, a] += alpha * td\nFloatingPointError: overflow encountered in multiply\n",
    )
    ids["queued"] = add_run(store, "chain-pi", {"id": "chain", "gamma": 0.95, "n": 7},
                            {"id": "policy_iteration"}, status="queued", created=t + timedelta(minutes=8),
                            progress=0.0)
    if live:
        ids["live"] = add_run(store, "maze-q-live", maze, {"id": "q_learning", "alpha": 0.5, "episodes": 300},
                              seed=5, status="running", created=t + timedelta(minutes=9), duration_s=1.0,
                              progress=0.0)
        write_q_learning(store, ids["live"], 5, live_until=20)
    return ids


def mark(store: Store, run_id: int, **values: Any) -> None:
    with store.write() as session:
        session.execute(update(Run).where(Run.id == run_id).values(**values))


def main(argv: list[str] | None = None) -> int:
    from rltui.store import open_store

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m rltui.tui.demo STORE.db   (writes the demo runs into that store)")
        return 2
    store = open_store(args[0])
    ids = populate(store, live="--live" in args)
    print(f"wrote {len(ids)} demo runs to {store.where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
