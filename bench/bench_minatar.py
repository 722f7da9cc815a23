"""DQN from pixels: MinAtar Breakout for a CPU budget, beside a random policy measured in the same run.

    .venv/bin/python bench/bench_minatar.py                  # 20 minutes of training CPU time
    nice .venv/bin/python bench/bench_minatar.py --minutes 5 --clock wall

Protocol:
  * the random policy first: uniformly random actions in the same env (sticky actions, difficulty
    ramping, time limit as the sample run's [env]), --random-episodes episodes; its mean return is
    the bar (goal: the trained policy's average evaluation return >= 10x it);
  * then `sample_runs/minatar_breakout_dqn.toml` as `rltui run` would: queued in a temporary SQLite
    store and trained by a real worker process. Every --eval-every env steps it plays --eval-episodes
    greedy episodes (that round's mean is the curve's point); the run's own clocks leave evaluation
    out: train_cpu_time (process CPU, the default budget: stable on a shared machine) and train_time
    (wall);
  * once the budget's clock passes --minutes the run is asked to stop (as the lab's cancel does);
  * "average evaluation return" = the mean of the last 3 evaluation rounds.
The curve is printed as it grows, so an interrupted bench still shows what it measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CONFIG = REPO / "sample_runs" / "minatar_breakout_dqn.toml"


def random_policy(config, episodes: int, seed: int) -> tuple[float, float, float]:
    """(mean return, its standard error, steps/s) of uniformly random actions in the run's env."""
    import numpy as np

    from rltui import registry

    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    venv = env.vector(seed + 7_777_777, num_envs=16)
    rng = np.random.default_rng(seed)
    venv.reset()
    returns: list[float] = []
    steps, t = 0, time.perf_counter()
    while len(returns) < episodes:
        *_, finished = venv.step(rng.integers(0, venv.n_actions, venv.num_envs))
        steps += venv.num_envs
        returns += [g for _, g, _ in finished]
    returns = returns[:episodes]
    return float(np.mean(returns)), float(np.std(returns) / np.sqrt(len(returns))), steps / (time.perf_counter() - t)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget in minutes (default 20)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="which training clock the budget counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=25_000, help="env steps between evaluation rounds")
    ap.add_argument("--eval-episodes", type=int, default=10)
    ap.add_argument("--random-episodes", type=int, default=2000)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the sample run (algo.x=..)")
    args = ap.parse_args()

    from sqlalchemy import select

    from rltui.config import load_config_file
    from rltui.runner.launch import cancel, submit
    from rltui.store import open_store
    from rltui.store.models import Metric, Run

    config = load_config_file(CONFIG, [f"seed={args.seed}", f"algo.eval_every={args.eval_every}",
                                       f"algo.eval_episodes={args.eval_episodes}", *args.set])
    print(f"load average at start: {open('/proc/loadavg').read().strip()}  (nice {os.nice(0)})", flush=True)
    rand_mean, rand_se, rand_sps = random_policy(config, args.random_episodes, args.seed)
    print(f"random policy: mean return {rand_mean:.3f} ± {rand_se:.3f} over {args.random_episodes} episodes "
          f"(env alone: {rand_sps:,.0f} steps/s); goal: >= {10 * rand_mean:.2f}", flush=True)

    budget = args.minutes * 60.0
    clock_key = "train_cpu_time" if args.clock == "cpu" else "train_time"
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "bench.db"))
        run_id = submit(store, config)
        print(f"{'step':>9} {'eval_return':>11} {'train_cpu_s':>11} {'train_wall_s':>12} {'steps/s(cpu)':>12}  loadavg",
              flush=True)
        curve: list[tuple[int, float, float, float]] = []
        status = "running"
        while True:
            time.sleep(5.0)
            with store.read() as s:
                status = s.scalar(select(Run.status).where(Run.id == run_id))
                rows = s.execute(select(Metric.step, Metric.key, Metric.value).where(
                    Metric.run_id == run_id, Metric.key.in_(["eval_return", "train_time", "train_cpu_time"]))).all()
            by_step: dict[int, dict[str, float]] = {}
            for step, key, value in rows:
                by_step.setdefault(int(step), {})[key] = float(value)
            for step in sorted(by_step):
                row = by_step[step]
                if step <= (curve[-1][0] if curve else -1) or not {"eval_return", "train_cpu_time"} <= set(row):
                    continue
                curve.append((step, row["eval_return"], row["train_cpu_time"], row.get("train_time", float("nan"))))
                print(f"{step:>9,} {row['eval_return']:>11.2f} {row['train_cpu_time']:>11.1f} {row.get('train_time', 0):>12.1f} "
                      f"{step / max(row['train_cpu_time'], 1e-9):>12,.0f}  {open('/proc/loadavg').read().split()[0]}",
                      flush=True)
            spent = (curve[-1][2] if args.clock == "cpu" else curve[-1][3]) if curve else 0.0
            if status not in ("queued", "running"):
                break
            if spent >= budget:
                print(f"budget reached ({args.minutes:g} min of {clock_key}): stopping the run", flush=True)
                status = cancel(store, run_id, wait=True)
                break
        with store.read() as s:
            run = s.get(Run, run_id)
            summary, error = dict(run.summary or {}), run.error
        store.dispose()
    if not curve:
        print(f"no evaluation round was recorded (run {status}: {error})")
        return 1
    last = [r for _, r, _, _ in curve[-3:]]
    average = sum(last) / len(last)
    best = max(r for _, r, _, _ in curve)
    steps, cpu, wall = curve[-1][0], curve[-1][2], curve[-1][3]
    print(f"\nrun {status}; {steps:,} env steps in {cpu:.0f} s of training CPU ({wall:.0f} s wall): "
          f"{steps / cpu:,.0f} steps/s CPU, {steps / wall:,.0f} steps/s wall; updates {summary.get('updates', '?')}")
    ratio = average / rand_mean if rand_mean > 0 else float("inf")
    print(f"average evaluation return (last {len(last)} rounds) {average:.2f}, best round {best:.2f}; "
          f"random {rand_mean:.3f}: {ratio:.1f}x -> goal (>= 10x) {'MET' if ratio >= 10 else 'NOT met'}")
    print(f"load average at end: {open('/proc/loadavg').read().strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
