"""What a sweep costs beyond its runs: a 16-trial random sweep of maze Q-learning, one trial at a time,

  * local on SQLite            (rltui's queue and detached workers; a worker started ahead of each trial)
  * local on PostgreSQL        (a throwaway cluster, as tests/pgserver.py starts one)
  * Ray on PostgreSQL          (a two-node Ray cluster on this machine, as tests/raycluster.py starts one)

and, as the peer, Optuna's own `study.optimize` over the same objective (the same training, in the
bench's process, recording into memory: no store, no processes).

For each: the wall time of the whole sweep, the time inside the runs themselves (Σ of each run's
finished_at − started_at; for the peer, Σ of the objective calls), and the overhead per trial:

    overhead/trial = (wall − Σ run time) / trials

which is everything a trial costs on top of training: sampling, queueing, starting or reaching a
worker, claiming, the store's writes, noticing the end. Goals: ≤ 0.5 s per trial locally, ≤ 1 s on Ray.

    .venv/bin/python bench/bench_sweep.py [--trials 16] [--skip-sqlite] [--skip-pg] [--skip-ray]
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
sys.path.insert(0, str(REPO / "tests"))

BASE = """name = "bench maze q"
seed = 0
device = "cpu"
[env]
id = "maze"
gamma = 0.9
[algo]
id = "q_learning"
episodes = 200
max_steps = 200
eval_every = 50
"""

SWEEP = """name = "bench maze q-learning"
base = "base.toml"
method = "random"
seeds = [0]
trials = {trials}
parallel = 1
engine = "{engine}"
{address}
objective = {{ metric = "eval_return", mode = "max", use = "last" }}
[parameters]
"algo.alpha" = {{ log_uniform = [0.05, 1.0] }}
"algo.epsilon" = {{ uniform = [0.05, 0.5] }}
"""

GOALS = {"local": 0.5, "ray": 1.0}


def run_sweep(db: str, directory: Path, trials: int, engine: str = "local", address: str | None = None) -> dict:
    from rltui.store import open_store
    from rltui.store.sql import as_datetime
    from rltui.sweeps.driver import Driver
    from rltui.sweeps.spec import load_sweep_file
    from rltui.sweeps.trials import create_sweep

    (directory / "base.toml").write_text(BASE)
    path = directory / f"sweep-{engine}.toml"
    path.write_text(SWEEP.format(trials=trials, engine=engine, address=f'address = "{address}"' if address else ""))
    store = open_store(db)
    try:
        sweep_id = create_sweep(store, load_sweep_file(path))
        t0 = time.perf_counter()
        driver = Driver(store, sweep_id, poll=0.02)
        status = driver.run()
        # Connecting to the engine (ray.init: seconds, once per sweep) is reported apart.
        wall = time.perf_counter() - t0 - driver.engine_seconds
        with store.sql.read() as tx:
            rows = tx.all("SELECT started_at, finished_at, status FROM runs WHERE sweep_id = :s", s=sweep_id)
    finally:
        store.dispose()
    inside = sum((as_datetime(f) - as_datetime(s)).total_seconds() for s, f, _ in rows)
    assert status == "completed" and len(rows) == trials and all(r[2] == "completed" for r in rows), (status, rows)
    return {"wall": wall, "inside": inside, "trials": trials, "engine": driver.engine_seconds}


def run_peer(trials: int) -> dict:
    """Optuna's study.optimize over the same objective: the same Q-learning, in this process."""
    import optuna

    from rltui import registry
    from rltui.config import load_config_text
    from rltui.recorder import Recorder
    from rltui.runner.devices import seed_everything

    class EvalReturns(Recorder):
        def __init__(self) -> None:
            self.evals: list[float] = []

        def episode(self, index, ret, length, phase="train", steps=None, step=None):  # noqa: ANN001, ARG002
            if phase == "eval":
                self.evals.append(ret)

    inside = 0.0

    def objective(trial: optuna.Trial) -> float:
        nonlocal inside
        t = time.perf_counter()
        alpha = trial.suggest_float("algo.alpha", 0.05, 1.0, log=True)
        epsilon = trial.suggest_float("algo.epsilon", 0.05, 0.5)
        config = load_config_text(BASE, overrides=[f"algo.alpha={alpha}", f"algo.epsilon={epsilon}"])
        seed_everything(config.seed, False)
        env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
        train = registry.load_callable(registry.algo_spec(config.algo_id).entry)
        rec = EvalReturns()
        train(env, config.algo, rec, seed=config.seed, device="cpu")
        inside += time.perf_counter() - t
        return rec.evals[-1]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return {"wall": time.perf_counter() - t0, "inside": inside, "trials": trials}


def report(name: str, r: dict, goal: float | None) -> None:
    per = (r["wall"] - r["inside"]) / r["trials"]
    mark = "" if goal is None else (f"  goal ≤ {goal} s: {'met' if per <= goal else 'MISSED'}")
    print(f"{name:<26} wall {r['wall']:7.2f} s   in runs {r['inside']:6.2f} s   "
          f"per trial {r['wall'] / r['trials']:5.3f} s   overhead/trial {per:6.3f} s{mark}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--skip-pg", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RLTUI_MAX_RUNS", "4")
    print(f"load average before: {open('/proc/loadavg').read().split()[:3]}, {os.cpu_count()} CPUs", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        root = Path(tmp)
        os.environ["XDG_DATA_HOME"] = str(root / "xdg")  # run logs of the PostgreSQL stores go here
        report("optuna study.optimize", run_peer(args.trials), None)
        if not args.skip_sqlite:
            (root / "sqlite").mkdir()
            report("rltui local, SQLite", run_sweep(str(root / "sqlite" / "s.db"), root / "sqlite", args.trials),
                   GOALS["local"])
        pg = cluster = None
        try:
            if not args.skip_pg or not args.skip_ray:
                from pgserver import ThrowawayPostgres

                pg = ThrowawayPostgres().start()
            if not args.skip_pg:
                (root / "pg").mkdir()
                report("rltui local, PostgreSQL", run_sweep(pg.create_database("bench_local"), root / "pg", args.trials),
                       GOALS["local"])
            if not args.skip_ray:
                from raycluster import TwoNodeRay

                cluster = TwoNodeRay(cpus_per_node=2).start()
                for key in ("RAY_USAGE_STATS_ENABLED", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN"):
                    os.environ[key] = cluster.env[key]
                (root / "ray").mkdir()
                r = run_sweep(pg.create_database("bench_ray"), root / "ray", args.trials, "ray", cluster.address)
                report("rltui Ray (2 nodes), PG", r, GOALS["ray"])
                print(f"  (ray.init, once per sweep, not counted above: {r['engine']:.2f} s)")
        finally:
            if cluster is not None:
                cluster.stop()
            if pg is not None:
                pg.stop()
    print(f"load average after: {open('/proc/loadavg').read().split()[:3]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
