"""CartPole-v1: our DQN and PPO beside Stable-Baselines3's, under one protocol, in one run.

    .venv/bin/python bench/bench_cartpole.py                 # 5 seeds, PPO and DQN
    .venv/bin/python bench/bench_cartpole.py --seeds 3 --algos ppo --sb3-python /path/to/python
    .venv/bin/python bench/bench_cartpole.py --device cuda          # both sides' networks on the GPU
    nice .venv/bin/python bench/bench_cartpole.py --algos dqn --seeds 10 --sides ours   # DQN's final vs best, seeds 0-9

Protocol (identical for both sides):
  * ours: `sample_runs/cartpole_{ppo,dqn}.toml` run through the real runner into a temporary SQLite
    store (what `rltui run` does); SB3: the RL Zoo's tuned CartPole hyperparameters, SB3's own
    MlpPolicy, torch at its default thread count (what an SB3 user gets).
  * every 2,000 environment steps (checked after each vector step), 10 evaluation episodes with the
    deterministic policy, played as 10 copies side by side, each copy's first episode counted;
    "solved" = their mean return >= 475.
  * two clocks, both started when training starts (imports and model construction excluded on both
    sides) and stopped during every evaluation on both sides: wall-clock time and process CPU time.
    Both sides run torch on one thread (SB3: --sb3-threads 1 by default), so on an idle core the two
    agree; on a shared machine CPU time is the stable one.
  * each (side, algorithm, seed) runs in its own fresh process, one at a time, sides interleaved
    per seed so that machine load hits both alike.
  * --device (default cpu) puts both sides' networks on that device (ours: the run's `device`; SB3:
    device=...). On cuda the wall clock is the one to read: CPU time leaves out the GPU's work.
SB3 runs in its own virtual environment (bench/.venv-sb3, created on first use: torch==2.13.0 first,
then stable-baselines3 and gymnasium); it is not a dependency of rltui.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SB3_VENV = REPO / "bench" / ".venv-sb3"
EVAL_EVERY, EVAL_EPISODES, SOLVED = 2000, 10, 475.0
FALLBACK_SLACK = 50.0  # a final evaluation this far below the run's best is a policy that fell back

# RL Zoo (rl-baselines3-zoo, hyperparams/ppo.yml and dqn.yml), CartPole-v1.
ZOO = {
    "ppo": dict(n_envs=8, n_timesteps=100_000, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                n_epochs=20, ent_coef=0.0, learning_rate="lin_0.001", clip_range="lin_0.2"),
    "dqn": dict(n_envs=1, n_timesteps=50_000, learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256,
                gradient_steps=128, exploration_fraction=0.16, exploration_final_eps=0.04,
                net_arch=[256, 256]),
}


# --- children ----------------------------------------------------------------------------------------
def child_ours(algo: str, seed: int, device: str) -> dict:
    return run_ours(REPO / "sample_runs" / f"cartpole_{algo}.toml", seed, device, EVAL_EVERY, EVAL_EPISODES)


def run_ours(config_path: Path, seed: int, device: str, eval_every: int, eval_episodes: int,
             overrides: tuple[str, ...] = ()) -> dict:
    """One run of a sample config (with `key=value` overrides) through the real runner into a temporary
    store, under the protocol."""
    sys.path.insert(0, str(REPO))
    from sqlalchemy import select

    from rltui.config import load_config_file
    from rltui.runner.execute import create_run, execute_run
    from rltui.store import open_store
    from rltui.store.models import Metric, Run

    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "bench.db"))
        config = load_config_file(config_path, [f"seed={seed}", f"device={device}", f"algo.eval_every={eval_every}",
                                                f"algo.eval_episodes={eval_episodes}", *overrides])
        run_id = create_run(store, config)
        status = execute_run(store, run_id)
        with store.read() as s:
            run = s.get(Run, run_id)
            assert status == "completed", run.error
            rows = s.execute(select(Metric.step, Metric.key, Metric.value).where(
                Metric.run_id == run_id, Metric.key.in_(["eval_return", "train_time", "train_cpu_time"])).order_by(Metric.id)).all()
            summary = dict(run.summary)
        store.dispose()
    returns = [(st, v) for st, k, v in rows if k == "eval_return"]
    wall = [v for _, k, v in rows if k == "train_time"]
    cpu = [v for _, k, v in rows if k == "train_cpu_time"]
    evals = [(st, r, w, c) for (st, r), w, c in zip(returns, wall, cpu)]
    return {"evals": evals, "steps": summary["global_step"], "train_seconds": summary["train_seconds"],
            "train_cpu_seconds": summary["train_cpu_seconds"], "policy_eval": summary.get("policy_eval_return")}


def child_sb3(algo: str, seed: int, threads: int, device: str) -> dict:
    return run_sb3(algo, "CartPole-v1", ZOO[algo], seed, threads, device, EVAL_EVERY, EVAL_EPISODES)


def run_sb3(algo: str, env_id: str, zoo: dict, seed: int, threads: int, device: str, eval_every: int,
            eval_episodes: int) -> dict:
    """One SB3 run with the RL Zoo's hyperparameters `zoo`, under the same protocol as run_ours."""
    import numpy as np
    import stable_baselines3
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    if threads:
        torch.set_num_threads(threads)
    hp = dict(zoo)
    n_envs, total = hp.pop("n_envs"), hp.pop("n_timesteps")
    if "noise_std" in hp:  # RL Zoo's noise_type = "normal": Gaussian exploration on the scaled action
        from stable_baselines3.common.noise import NormalActionNoise

        std, dim = hp.pop("noise_std"), hp.pop("action_dim")
        hp["action_noise"] = NormalActionNoise(np.zeros(dim), std * np.ones(dim))

    def lin(v: float):
        return lambda progress_remaining: progress_remaining * v

    for key in ("learning_rate", "clip_range"):
        if isinstance(hp.get(key), str):
            hp[key] = lin(float(hp[key].split("_")[1]))
    if "net_arch" in hp:
        hp["policy_kwargs"] = {"net_arch": hp.pop("net_arch")}
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    eval_env = make_vec_env(env_id, n_envs=eval_episodes, seed=seed + 1_000_003)
    cls = getattr(stable_baselines3, algo.upper())
    model = cls("MlpPolicy", env, seed=seed, device=device, verbose=0, **hp)

    class Protocol(BaseCallback):
        def _on_training_start(self) -> None:
            self.t0, self.cpu0, self.next_eval, self.evals = time.perf_counter(), time.process_time(), eval_every, []
            self.paused = self.paused_cpu = 0.0

        def train_seconds(self) -> float:
            return time.perf_counter() - self.t0 - self.paused

        def train_cpu_seconds(self) -> float:
            return time.process_time() - self.cpu0 - self.paused_cpu

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_eval:
                if device.startswith("cuda"):
                    torch.cuda.synchronize()  # queued GPU work belongs to training, not to the evaluation
                while self.next_eval <= self.num_timesteps:
                    self.next_eval += eval_every
                t, cpu = time.perf_counter(), time.process_time()
                self.evals.append((self.num_timesteps, evaluate(), self.train_seconds(), self.train_cpu_seconds()))
                self.paused += time.perf_counter() - t
                self.paused_cpu += time.process_time() - cpu
            return True

    def evaluate() -> float:
        obs = eval_env.reset()
        returns = np.zeros(eval_episodes)
        running = np.ones(eval_episodes, bool)
        while running.any():
            action, _ = model.predict(obs, deterministic=True)
            obs, rewards, dones, _ = eval_env.step(action)
            returns += rewards * running
            running &= ~dones
        return float(returns.mean())

    cb = Protocol()
    model.learn(total, callback=cb)
    return {"evals": cb.evals, "steps": int(model.num_timesteps), "train_seconds": cb.train_seconds(),
            "train_cpu_seconds": cb.train_cpu_seconds(), "torch_threads": torch.get_num_threads()}


# --- driver -----------------------------------------------------------------------------------------
def ensure_sb3(python: str | None) -> str:
    if python:
        return python
    py = SB3_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating {SB3_VENV} (torch==2.13.0, stable-baselines3, gymnasium) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(SB3_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "stable-baselines3", "gymnasium"], check=True)
    return str(py)


def check_device(python: str, device: str, side: str) -> None:
    """Fail before any run when `device` is not usable by that side's torch, with a message that says why."""
    if device == "cpu":
        return
    probe = ("import sys, torch; d = sys.argv[1]; ok = torch.cuda.is_available() if d.startswith('cuda') else "
             "d == 'mps' and torch.backends.mps.is_available(); "
             "print(f'torch {torch.__version__} (CUDA build: {torch.version.cuda or \"none\"}), "
             "cuda available: {torch.cuda.is_available()}'); sys.exit(0 if ok else 1)")
    proc = subprocess.run([python, "-c", probe, device], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"--device {device}: not available to the {side} side ({python}): "
                         f"{(proc.stdout + proc.stderr).strip()[-500:]}. Use --device cpu, or a machine "
                         f"(and, for SB3, --sb3-python) with a CUDA build of torch.")


def run_child(python: str, side: str, algo: str, seed: int, sb3_threads: int, device: str = "cpu",
              script: str = __file__, solved_at: float = SOLVED, extra: tuple[str, ...] = ()) -> dict:
    """Run `script --child side` (with `extra` arguments) in a fresh process; its result with when it
    first reached `solved_at`."""
    proc = subprocess.run([python, script, "--child", side, "--algos", algo, "--seed", str(seed), "--sb3-threads", str(sb3_threads),
                           "--device", device, *extra],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise RuntimeError(f"{side} {algo} seed {seed} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    solved = next((e for e in result["evals"] if e[1] >= solved_at), None)
    result.update(
        side=side, algo=algo, seed=seed, device=device,
        solved_step=solved[0] if solved else None,
        solved_wall=solved[2] if solved else None, solved_cpu=solved[3] if solved else None,
        final_eval=result["evals"][-1][1] if result["evals"] else None,
        best_eval=max(e[1] for e in result["evals"]) if result["evals"] else None,
        policy_eval=result.get("policy_eval"),  # ours: the closing round of the best weights (final_policy)
        sps=result["steps"] / result["train_seconds"], cpu_sps=result["steps"] / result["train_cpu_seconds"],
    )
    return result


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def median(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def report(results: list[dict]) -> None:
    print()
    print(f"{'algo':<5} {'side':<5} {'seed':>4} {'solved_cpu_s':>12} {'solved_wall_s':>13} {'solved_step':>11} "
          f"{'final_eval':>10} {'best_eval':>9} {'policy_eval':>11} {'train_cpu_s':>11} {'train_wall_s':>12} {'SPS(cpu)':>9}")
    for r in results:
        print(f"{r['algo']:<5} {r['side']:<5} {r['seed']:>4} {fmt(r['solved_cpu']):>12} {fmt(r['solved_wall']):>13} "
              f"{fmt(r['solved_step'], 'd'):>11} {fmt(r['final_eval'], '.1f'):>10} {fmt(r['best_eval'], '.1f'):>9} "
              f"{fmt(r.get('policy_eval'), '.1f'):>11} {r['train_cpu_seconds']:>11.2f} "
              f"{r['train_seconds']:>12.2f} {r['cpu_sps']:>9.0f}")
    print()
    keys = ("solved_cpu", "solved_wall", "solved_step", "train_cpu_seconds", "train_seconds", "cpu_sps", "final_eval",
            "best_eval", "policy_eval")
    for algo in sorted({r["algo"] for r in results}):
        rows = {side: [r for r in results if r["algo"] == algo and r["side"] == side] for side in ("ours", "sb3")}
        m = {side: {k: median([r[k] for r in rows[side]]) for k in keys} for side in rows}
        n_solved = {side: sum(r["solved_cpu"] is not None for r in rows[side]) for side in rows}
        print(f"{algo}: seeds solved: ours {n_solved['ours']}/{len(rows['ours'])}, sb3 {n_solved['sb3']}/{len(rows['sb3'])}")
        for side, side_rows in rows.items():  # does the last policy hold what the run reached?
            gaps = [r["best_eval"] - r["final_eval"] for r in side_rows if r["final_eval"] is not None]
            if gaps:
                print(f"  {side}: final eval within {FALLBACK_SLACK:.0f} of best on {sum(g <= FALLBACK_SLACK for g in gaps)}/"
                      f"{len(gaps)} seeds, largest fall {max(gaps):.1f}")
        for key in keys:
            a, b = m["ours"][key], m["sb3"][key]
            ratio = a / b if a is not None and b else None
            print(f"  median {key:<17} ours {fmt(a):>10}  sb3 {fmt(b):>10}  ours/sb3 {fmt(ratio, '.3f')}")
        if not rows["ours"] or not rows["sb3"]:
            continue
        for clock in ("cpu", "wall"):
            worst = max((r[f"solved_{clock}"] or float("inf")) for r in rows["ours"])
            if algo == "ppo":
                goal = 0.5 * m["sb3"][f"solved_{clock}"] if m["sb3"][f"solved_{clock}"] else None
                what = f"half SB3 PPO's median time to solve ({fmt(goal)} s)"
                met = goal is not None and worst <= goal
            else:
                goal = m["sb3"]["train_cpu_seconds" if clock == "cpu" else "train_seconds"]
                what = f"SB3 DQN's median time to finish ({fmt(goal)} s)"
                met = goal is not None and worst < goal
            print(f"  goal ({clock} clock): every ours seed solved within {what}: slowest ours {fmt(worst)} s -> {'MET' if met else 'NOT MET'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here (default 0)")
    parser.add_argument("--algos", default="ppo,dqn")
    parser.add_argument("--sides", default="ours,sb3")
    parser.add_argument("--sb3-python", help="a python with stable-baselines3 (default: bench/.venv-sb3, created if missing)")
    parser.add_argument("--json-out", help="also write all results as JSON here")
    parser.add_argument("--sb3-threads", type=int, default=1,
                        help="torch threads for SB3 (default 1, as ours: then CPU time equals idle wall time; 0: torch default)")
    parser.add_argument("--device", default="cpu",
                        help="where both sides' networks live: cpu (default), cuda, cuda:N (read the wall clock there)")
    parser.add_argument("--child", choices=("ours", "sb3"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "ours":
            result = child_ours(args.algos, args.seed, args.device)
        else:
            result = child_sb3(args.algos, args.seed, args.sb3_threads, args.device)
        print(json.dumps(result))
        return 0

    sides = args.sides.split(",")
    sb3_python = ensure_sb3(args.sb3_python) if "sb3" in sides else None
    for side in sides:
        check_device(sys.executable if side == "ours" else sb3_python, args.device, side)
    results = []
    load_before = load_average()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for algo in args.algos.split(","):
            for side in sides:
                r = run_child(sys.executable if side == "ours" else sb3_python, side, algo, seed, args.sb3_threads, args.device)
                print(f"{algo} {side} seed {seed}: solved cpu {fmt(r['solved_cpu'])} s / wall {fmt(r['solved_wall'])} s at step "
                      f"{fmt(r['solved_step'], 'd')}, final eval {fmt(r['final_eval'], '.1f')}, train cpu {r['train_cpu_seconds']:.2f} s "
                      f"/ wall {r['train_seconds']:.2f} s", flush=True)
                results.append(r)
    report(results)
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_average()} on {os.cpu_count()} CPUs")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
