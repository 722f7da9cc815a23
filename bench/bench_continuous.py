"""Pendulum-v1: our SAC and TD3 beside Stable-Baselines3's, under bench_cartpole.py's protocol.

    .venv/bin/python bench/bench_continuous.py                        # 5 seeds, SAC and TD3, both sides
    .venv/bin/python bench/bench_continuous.py --seeds 1 --algos sac --sb3-python .venv/bin/python
    .venv/bin/python bench/bench_continuous.py --algos td3 --steps 6000 --until-solved --parallel   # a busy machine

Protocol (bench/bench_cartpole.py's, with Pendulum's numbers):
  * ours: sample_runs/pendulum_{sac,td3}.toml through the real runner into a temporary SQLite store;
    SB3: the RL Zoo's Pendulum-v1 hyperparameters (hyperparams/sac.yml, td3.yml), its MlpPolicy.
  * every 1,000 environment steps, 10 deterministic evaluation episodes played as 10 copies;
    "solved" = their mean return >= -200.
  * the two clocks (wall, process CPU) run only while training; each (side, algo, seed) in its own
    fresh process, one at a time, sides interleaved per seed; torch on one thread on both sides.
Goal (the issue's): every seed of ours solves, and ours' median time to solve is within 0.7x SB3's; the
report adds a 90% bootstrap interval of that ratio over seeds (8 seeds a side or more), and a stricter
reading (every seed of ours within 0.7x SB3's median), and from 10 seeds the goal on each block of five
(seeds 0-4, 5-9, ...). --report FILE prints a saved run's report again.
On a busy machine: --steps N stops both sides N environment steps after learning starts (SAC: 100
random steps, TD3: 10,000, on both sides), which is enough when both solve before (the final eval is
then that step's); --parallel runs a seed's two sides at once (machine load then hits both alike; read
the CPU clock); --until-solved ends each run at its first evaluation >= -200 on both sides (the time to
solve is unchanged; the final eval is then that one).
SB3 runs in bench/.venv-sb3 (created on first use) or the python given by --sb3-python; it is never a
dependency of rltui.

Reading the figures (2026-12-02, Pendulum, batch 256): both sides spend most of their CPU in
gradient updates, and an update is matmul-bound. On AMD CPUs torch's BLAS (MKL) takes an AVX2 path;
ours sends the large products through oneDNN's AVX-512 kernels when that is quicker
(rltui/algos/dense.py), ~2.2x per product on Zen 5, skips the critic's weight gradients in the
actors' losses, and writes the critics' step (and TD3's actor step) out by hand instead of through
autograd (rltui/algos/backprop.py, 0.88x per TD3 update). Both sides start their layers as torch's
nn.Linear does (SB3's init for SAC and TD3). How many updates a seed needs to solve is close to a coin
flip on both sides (TD3: 3800, 4800 or 5800), and any change to the numerics or the initial draws
reshuffles it, so a 5-seed median time ratio swings with the draws for the same per-update ratio; read
the ms/update column for the speed, and more seeds for the time to solve. On 2026-12-02 (SB3 at 13-14
ms per update), `--algos td3 --seeds 15 --until-solved`: both sides solve 15/15 (updates to solve: ours
3800 x11, 4800 x2, 5800 x2; SB3 3800 x6, 4800 x4, 5800 x5), ours' median time to solve 0.440x SB3's (90%
bootstrap interval 0.36-0.54x), 0.521x per update; seeds 0-4 alone 0.549x, 5-9 0.350x, 10-14 0.420x.
`--algos sac --seeds 10 --until-solved`: 10/10 each, median 3899 updates both, 0.547x (0.45-0.62x),
0.581x per update; seeds 0-4 0.471x, 5-9 0.581x.
The schedules are SB3's on both sides (since 2026-12-02): a training phase closes each rollout of
train_freq steps once more than learning_starts are stored, and an evaluation due at a step runs before
that step's phase, minibatches are drawn with replacement even from fewer than batch_size transitions
(SAC's first phases), so a round at step N has seen exactly as many updates on both sides (before, ours
trained from step learning_starts and evaluated after the phase: TD3 ran two more phases, 400 updates,
~10% of a solve, by every round). The solved_updates and ms/update columns show the per-update speed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cartpole import REPO, check_device, ensure_sb3, fmt, median, run_child, run_ours, run_sb3  # noqa: E402

ENV_ID = "Pendulum-v1"
EVAL_EVERY, EVAL_EPISODES, SOLVED, GOAL_RATIO = 1000, 10, -200.0, 0.7

# Random-action steps before learning, the same on both sides (SB3 SAC's default 100; the Zoo's TD3 10,000):
# --steps counts from here, so a cap leaves each algorithm the same training.
LEARNING_STARTS = {"sac": 100, "td3": 10_000}
# RL Zoo (rl-baselines3-zoo, hyperparams/sac.yml and td3.yml), Pendulum-v1.
ZOO = {
    "sac": dict(n_envs=1, n_timesteps=20_000, learning_rate=1e-3),
    "td3": dict(n_envs=1, n_timesteps=20_000, gamma=0.98, buffer_size=200_000, learning_starts=LEARNING_STARTS["td3"],
                noise_std=0.1, action_dim=1, gradient_steps=-1, train_freq=(1, "episode"), learning_rate=1e-3,
                net_arch=[400, 300]),
}


def stop_when_solved(side: str) -> None:
    """--until-solved, in a child: end the run at its first evaluation >= SOLVED. SB3: its callback's
    on_step returns False after that evaluation; ours: the recorder reports one stop request, as
    `rltui stop` would (the loop ends at its next step; the run still completes)."""
    if side == "sb3":
        from stable_baselines3.common.callbacks import BaseCallback

        on_step = BaseCallback.on_step
        BaseCallback.on_step = lambda self: on_step(self) and not (getattr(self, "evals", None) and self.evals[-1][1] >= SOLVED)
        return
    from rltui.recorder import StoreRecorder

    log, should_stop = StoreRecorder.log, StoreRecorder.should_stop
    solved = {"now": False, "told": False}

    def log_and_watch(self, step: int, **metrics: float) -> None:
        solved["now"] |= metrics.get("eval_return", float("-inf")) >= SOLVED
        log(self, step, **metrics)

    def stop_once_solved(self) -> bool:
        if solved["now"] and not solved["told"]:
            solved["told"] = True
            return True
        return should_stop(self)

    StoreRecorder.log, StoreRecorder.should_stop = log_and_watch, stop_once_solved


def count_updates(side: str) -> list[tuple[int, int]]:
    """In a child: (step, gradient updates done so far) at each evaluation, filled in as the run goes
    (SB3: its model's _n_updates when the protocol's callback has just evaluated; ours: counters.updates
    after each evaluation round, which logs one eval_return each)."""
    seen: list[tuple[int, int]] = []
    if side == "sb3":
        from stable_baselines3.common.callbacks import BaseCallback

        on_step = BaseCallback.on_step

        def on_step_counting(self) -> bool:
            before = len(getattr(self, "evals", ()))
            go_on = on_step(self)
            evals = getattr(self, "evals", None)
            if evals and len(evals) > before:
                seen.append((evals[-1][0], self.model._n_updates))
            return go_on

        BaseCallback.on_step = on_step_counting
        return seen
    from rltui.algos.common import EvalSchedule

    run = EvalSchedule.run

    def run_counting(self) -> float:
        mean = run(self)
        seen.append((self.counters.global_step, self.counters.updates))
        return mean

    EvalSchedule.run = run_counting
    return seen


def report(results: list[dict]) -> None:
    print()
    print(f"{'algo':<4} {'side':<5} {'seed':>4} {'solved_cpu_s':>12} {'solved_wall_s':>13} {'solved_step':>11} "
          f"{'solved_updates':>14} {'ms/update':>9} {'final_eval':>10} {'best_eval':>9} {'train_cpu_s':>11} {'SPS(cpu)':>9}")
    for r in results:
        print(f"{r['algo']:<4} {r['side']:<5} {r['seed']:>4} {fmt(r['solved_cpu']):>12} {fmt(r['solved_wall']):>13} "
              f"{fmt(r['solved_step'], 'd'):>11} {fmt(r['solved_updates'], 'd'):>14} {fmt(r['cpu_ms_per_update']):>9} "
              f"{fmt(r['final_eval'], '.1f'):>10} {fmt(r['best_eval'], '.1f'):>9} {r['train_cpu_seconds']:>11.2f} {r['cpu_sps']:>9.0f}")
    print()
    for algo in sorted({r["algo"] for r in results}):
        rows = {side: [r for r in results if r["algo"] == algo and r["side"] == side] for side in ("ours", "sb3")}
        solved = {side: sum(r["solved_cpu"] is not None for r in rows[side]) for side in rows}
        print(f"{algo}: seeds solved (eval mean >= {SOLVED:g}): ours {solved['ours']}/{len(rows['ours'])}, "
              f"sb3 {solved['sb3']}/{len(rows['sb3'])}")
        for key in ("solved_cpu", "solved_wall", "solved_step", "solved_updates", "cpu_ms_per_update", "final_eval",
                    "best_eval", "cpu_sps"):
            a, b = (median([r[key] for r in rows[side]]) for side in ("ours", "sb3"))
            print(f"  median {key:<17} ours {fmt(a):>10}  sb3 {fmt(b):>10}  ours/sb3 {fmt(a / b if a is not None and b else None, '.3f')}")
        if rows["ours"] and rows["sb3"]:
            all_solved = solved["ours"] == len(rows["ours"])
            for clock in ("cpu", "wall"):
                ours_times = [r[f"solved_{clock}"] or float("inf") for r in rows["ours"]]
                sb3_times = [r[f"solved_{clock}"] or float("inf") for r in rows["sb3"]]
                sb3_median = median(sb3_times)
                goal = GOAL_RATIO * sb3_median
                ratio = median(ours_times) / sb3_median
                print(f"  goal ({clock} clock): every ours seed solves, and ours' median time to solve is within "
                      f"{GOAL_RATIO}x SB3's: {ratio:.3f}x -> {'MET' if all_solved and ratio <= GOAL_RATIO else 'NOT MET'}"
                      f"{median_ratio_interval(ours_times, sb3_times)}")
                print(f"  stricter ({clock} clock): every ours seed within {GOAL_RATIO}x SB3's median ({fmt(goal)} s): "
                      f"slowest ours {fmt(max(ours_times))} s -> {'MET' if max(ours_times) <= goal else 'NOT MET'}")
            blocks = five_seed_blocks(rows)
            if blocks:
                print(f"  the goal on each five seeds (cpu clock): {blocks}")


def five_seed_blocks(rows: dict[str, list[dict]]) -> str:
    """The goal on each block of five consecutive seeds that both sides ran (seeds 0-4, 5-9, ...): the
    issue's protocol is five seeds, so a larger run holds several samples of it. Empty under ten seeds."""
    by_seed = {side: {r["seed"]: r for r in rows[side]} for side in rows}
    seeds = sorted(set(by_seed["ours"]) & set(by_seed["sb3"]))
    if len(seeds) < 10:
        return ""
    parts = []
    for block in (seeds[i:i + 5] for i in range(0, len(seeds) - 4, 5)):
        ours, sb3 = ([by_seed[side][s]["solved_cpu"] for s in block] for side in ("ours", "sb3"))
        solved = all(t is not None for t in ours)
        ratio = median([t or float("inf") for t in ours]) / median([t or float("inf") for t in sb3])
        parts.append(f"seeds {block[0]}-{block[-1]} {ratio:.3f}x {'MET' if solved and ratio <= GOAL_RATIO else 'NOT MET'}")
    return "; ".join(parts)


def median_ratio_interval(ours: list[float], sb3: list[float], draws: int = 4000) -> str:
    """A 90% bootstrap interval of median(ours) / median(sb3), the seeds of each side resampled: how far
    the ratio moves with which seeds were drawn (each seed needs one of a few update counts to solve, so
    a 5-seed median jumps between them). Printed for 8 seeds a side or more."""
    if min(len(ours), len(sb3)) < 8:
        return ""
    rng = np.random.default_rng(0)
    a, b = np.asarray(ours), np.asarray(sb3)
    ratios = (np.median(rng.choice(a, (draws, a.size)), axis=1) / np.median(rng.choice(b, (draws, b.size)), axis=1))
    low, high = np.percentile(ratios, [5, 95])
    return f" (90% bootstrap interval over seeds {low:.3f}-{high:.3f}x)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--algos", default="sac,td3")
    parser.add_argument("--sides", default="ours,sb3")
    parser.add_argument("--sb3-python", help="a python with stable-baselines3 (default: bench/.venv-sb3, created if missing)")
    parser.add_argument("--sb3-threads", type=int, default=1, help="torch threads for SB3 (default 1, as ours)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, help="environment steps after learning starts, both sides (default: the RL Zoo's "
                        "20,000 steps in all)")
    parser.add_argument("--parallel", action="store_true", help="run each seed's two sides at the same time")
    parser.add_argument("--until-solved", action="store_true", help="end each run at its first evaluation >= -200 (both sides)")
    parser.add_argument("--json-out", help="write every run's figures here (a JSON list)")
    parser.add_argument("--report", metavar="JSON", help="print the table and goals of a --json-out file again, "
                        "or of several joined by commas (seeds from more than one sitting), and run nothing")
    parser.add_argument("--child", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        algo = args.algos
        updates_at_evals = count_updates(args.child)
        if args.until_solved:
            stop_when_solved(args.child)
        total = LEARNING_STARTS[algo] + args.steps if args.steps else None
        if args.child == "ours":
            steps = (f"algo.total_timesteps={total}", f"algo.learning_starts={LEARNING_STARTS[algo]}") if total else ()
            result = run_ours(REPO / "sample_runs" / f"pendulum_{algo}.toml", args.seed, args.device, EVAL_EVERY, EVAL_EPISODES, steps)
        else:
            zoo = {**ZOO[algo], **({"n_timesteps": total} if total else {})}
            result = run_sb3(algo, ENV_ID, zoo, args.seed, args.sb3_threads, args.device, EVAL_EVERY, EVAL_EPISODES)
        print(json.dumps({**result, "updates_at_evals": updates_at_evals}))
        return 0

    if args.report:
        report([r for path in args.report.split(",") for r in json.loads(Path(path).read_text())])
        return 0
    sides = args.sides.split(",")
    sb3_python = ensure_sb3(args.sb3_python) if "sb3" in sides else None
    for side in sides:
        check_device(sys.executable if side == "ours" else sb3_python, args.device, side)
    extra = (*(("--steps", str(args.steps)) if args.steps else ()), *(("--until-solved",) if args.until_solved else ()))

    def one(side: str, algo: str, seed: int) -> dict:
        python = sys.executable if side == "ours" else sb3_python
        r = run_child(python, side, algo, seed, args.sb3_threads, args.device, script=__file__, solved_at=SOLVED, extra=extra)
        r["solved_updates"] = next((n for step, n in r["updates_at_evals"] if step == r["solved_step"]), None)
        # CPU to solve per gradient update (acting, replay and the recorder included: they are ~1% of it)
        r["cpu_ms_per_update"] = 1e3 * r["solved_cpu"] / r["solved_updates"] if r["solved_updates"] else None
        return r

    print(f"load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for algo in args.algos.split(","):
            if args.parallel:
                with ThreadPoolExecutor(len(sides)) as pool:
                    done = list(pool.map(lambda side: one(side, algo, seed), sides))
            else:
                done = [one(side, algo, seed) for side in sides]
            for side, r in zip(sides, done):
                print(f"{algo} {side} seed {seed}: solved cpu {fmt(r['solved_cpu'])} s / wall {fmt(r['solved_wall'])} s at "
                      f"step {fmt(r['solved_step'], 'd')} after {fmt(r['solved_updates'], 'd')} updates "
                      f"({fmt(r['cpu_ms_per_update'])} ms cpu each), final eval {fmt(r['final_eval'], '.1f')}, best {fmt(r['best_eval'], '.1f')}, "
                      f"train cpu {r['train_cpu_seconds']:.2f} s", flush=True)
                results.append(r)
    report(results)
    print(f"load average at end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
