"""`rltui sweep`: hyperparameter sweeps whose trials are ordinary runs.

    rltui sweep SWEEP.toml [--detach] [--json]     check the file, then drive the sweep (or in the background)
    rltui sweep ls [--json]
    rltui sweep show ID [--json]                   trials ranked by objective, the best trial's config
    rltui sweep resume ID [--detach] [--json]      a crashed or cancelled sweep continues from the store
    rltui sweep cancel ID [--json]                 stop the driver and cancel the trials' runs

Importing this module costs nothing heavy: Optuna is loaded by the driver alone, Ray by its engine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

VERBS = ("ls", "show", "resume", "cancel")


def add_sweep_parser(sub: Any) -> None:
    p = sub.add_parser("sweep", help="run a hyperparameter sweep (SWEEP.toml), or ls | show | resume | cancel ID")
    p.add_argument("target", metavar="SWEEP.toml|ls|show|resume|cancel", help="a sweep file, or a verb")
    p.add_argument("id", nargs="?", type=int, help="the sweep's id (show, resume, cancel)")
    p.add_argument("--detach", action="store_true", help="run the sweep's driver in the background and return at once")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--grace", type=float, default=None, help="cancel: seconds for the runs' graceful stop")


def cmd_sweep(args: argparse.Namespace) -> int:
    from rltui.cli import CliError

    if args.target in VERBS:
        if args.target != "ls" and args.id is None:
            raise CliError(f"sweep {args.target}: which sweep? (rltui sweep {args.target} ID; `rltui sweep ls` lists them)")
        return {"ls": _ls, "show": _show, "resume": _resume, "cancel": _cancel}[args.target](args)
    if args.id is not None:
        raise CliError(f"sweep {args.target}: unexpected argument {args.id} (a sweep file takes no id)")
    return _start(args)


def _store(args: argparse.Namespace):  # noqa: ANN202
    from rltui.store import open_store

    return open_store(args.db)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _sweep_or_fail(store: Any, sweep_id: int) -> Any:
    from rltui.cli import CliError
    from rltui.sweeps.trials import get_sweep

    sweep = get_sweep(store, sweep_id)
    if sweep is None:
        raise CliError(f"no sweep with id {sweep_id} in {store}")
    return sweep


def _start(args: argparse.Namespace) -> int:
    from rltui.runner.launch import check_launch_device
    from rltui.config import validate_config
    from rltui.sweeps.spec import load_sweep_file
    from rltui.sweeps.trials import create_sweep

    spec = load_sweep_file(args.target)  # every problem: one line, exit 2, nothing stored
    check_launch_device(validate_config(spec.base, source=spec.base_path, base_dir=Path(spec.base_path).parent))
    if spec.engine == "ray":
        _check_ray(spec, args.target)
    store = _store(args)
    sweep_id = create_sweep(store, spec)
    return _drive(args, store, sweep_id, spec.name)


def _check_ray(spec: Any, source: str) -> None:
    import importlib.util
    import os

    from rltui.errors import ConfigError

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(source, "engine", 'engine = "ray" needs Ray: pip install "rltui[ray]"')
    if not (spec.address or os.environ.get("RAY_ADDRESS")):
        raise ConfigError(source, "address", 'engine = "ray" needs the cluster\'s address: address = "HOST:PORT", or $RAY_ADDRESS')


def _drive(args: argparse.Namespace, store: Any, sweep_id: int, name: str) -> int:
    from rltui.sweeps.driver import Driver, spawn_driver
    from rltui.sweeps.trials import get_sweep, sweep_json

    if args.detach:
        _proc, log_path = spawn_driver(store, sweep_id)
        data = {"id": sweep_id, "status": "running", "log_path": log_path}
        if args.json:
            _print_json(data)
        else:
            print(f"sweep {sweep_id} {name}: running in the background (rltui sweep show {sweep_id}; log: {log_path})")
        return 0
    say = (lambda line: None) if args.json else (lambda line: print(f"sweep {sweep_id}: {line}", flush=True))
    status = Driver(store, sweep_id, on_event=say).run()
    data = sweep_json(store, get_sweep(store, sweep_id))
    if args.json:
        _print_json(data)
    else:
        _print_summary(data)
    return 0 if status == "completed" else 1


def _ls(args: argparse.Namespace) -> int:
    from rltui.sweeps.trials import best_trial, list_sweeps, load_trials, refresh_sweeps

    store = _store(args)
    refresh_sweeps(store)
    rows = []
    for sweep in list_sweeps(store):
        trials = load_trials(store, sweep)
        best = best_trial(trials, sweep.spec["objective"]["mode"])
        done = sum(t.status in ("completed", "pruned", "failed") for t in trials)
        rows.append({"id": sweep.id, "name": sweep.name, "method": sweep.spec["method"], "engine": sweep.spec["engine"],
                     "status": sweep.status, "trials_done": done, "trials": len(trials), "budget": sweep.spec["trials"],
                     "objective": sweep.spec["objective"], "best_value": best.value if best else None,
                     "best_trial": best.trial if best else None})
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no sweeps yet: try `rltui sweep sample_runs/sweeps/maze_q_learning_alpha.toml`")
        return 0
    print(f"{'ID':>4}  {'NAME':<28} {'METHOD':<6} {'ENGINE':<6} {'STATUS':<10} {'TRIALS':>9}  BEST")
    for r in rows:
        best = "" if r["best_value"] is None else f"{r['best_value']:.4g} (trial {r['best_trial']})"
        print(f"{r['id']:>4}  {_plain(r['name'])[:28]:<28} {r['method']:<6} {r['engine']:<6} {r['status']:<10} "
              f"{r['trials_done']:>4}/{r['budget']:<4}  {best}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from rltui.sweeps.trials import refresh_sweeps, sweep_json

    store = _store(args)
    refresh_sweeps(store)
    data = sweep_json(store, _sweep_or_fail(store, args.id))
    if args.json:
        _print_json(data)
    else:
        _print_summary(data)
    return 0


def _print_summary(data: dict[str, Any]) -> None:
    from rltui.sweeps.trials import Trial, ranked  # noqa: F401

    obj = data["objective"]
    print(f"sweep {data['id']} {_plain(data['name'])}: {data['status']} — {data['method']}, "
          f"objective {obj['mode']} {obj['use']} {obj['metric']}, {len(data['trials'])}/{data['budget']} trials")
    if data.get("error"):
        print(f"  error: {_plain(data['error'])}")
    sign = -1 if obj["mode"] == "max" else 1
    order = {"completed": 0, "running": 1, "pruned": 2}
    trials = sorted(data["trials"], key=lambda t: (order.get(t["status"], 3),
                                                   sign * t["value"] if t["value"] is not None else 0, t["trial"]))
    print(f"  {'TRIAL':>5}  {'STATUS':<10} {'VALUE':>10}  {'RUNS':<14} PARAMS")
    for t in trials:
        value = "" if t["value"] is None else f"{t['value']:.4g}"
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
        runs = ",".join(map(str, t["run_ids"]))
        print(f"  {t['trial']:>5}  {t['status']:<10} {value:>10}  {runs:<14} {_plain(params)}")
    if data["best"]:
        best = data["best"]
        print(f"best: trial {best['trial']}, {best['value']:.6g} (runs {', '.join(map(str, best['run_ids']))}); its config:")
        print(best["config_toml"], end="")


def _plain(text: str) -> str:
    """Text from the store, shown as text: control characters made visible."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _resume(args: argparse.Namespace) -> int:
    from rltui.cli import CliError
    from rltui.sweeps.trials import SWEEP_COMPLETED, SWEEP_RUNNING, driver_alive, refresh_sweeps

    store = _store(args)
    refresh_sweeps(store)
    sweep = _sweep_or_fail(store, args.id)
    if sweep.status == SWEEP_RUNNING and driver_alive(sweep, None):
        raise CliError(f"sweep {args.id} is running (driver pid {sweep.pid} on {sweep.host}); nothing to resume")
    if sweep.status == SWEEP_COMPLETED:
        raise CliError(f"sweep {args.id} is completed; only a crashed, cancelled or failed sweep can be resumed")
    return _drive(args, store, sweep.id, sweep.name)


def _cancel(args: argparse.Namespace) -> int:
    """Ask the driver to stop (it cancels the trials' runs); with no live driver, do it here."""
    from rltui.runner import launch
    from rltui.recorder import utcnow
    from rltui.sweeps.trials import (SWEEP_CANCELLED, SWEEP_FINAL, SWEEP_RUNNING, driver_alive, get_sweep,
                                     load_trials, refresh_sweeps, update_sweep)

    store = _store(args)
    refresh_sweeps(store)
    sweep = _sweep_or_fail(store, args.id)
    if sweep.status in SWEEP_FINAL:
        status = sweep.status
    else:
        if sweep.status == SWEEP_RUNNING and driver_alive(sweep, None):
            update_sweep(store, sweep.id, cancel_requested=True)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and get_sweep(store, sweep.id).status == SWEEP_RUNNING:
                time.sleep(0.1)
        if get_sweep(store, sweep.id).status not in SWEEP_FINAL:  # no driver (or it did not answer)
            for t in load_trials(store, sweep, with_series=False):
                for run_id, status in zip(t.run_ids, t.statuses):
                    if status in ("queued", "running"):
                        launch.cancel(store, run_id, grace=args.grace)
            update_sweep(store, sweep.id, status=SWEEP_CANCELLED, finished_at=utcnow(), cancel_requested=False)
        status = get_sweep(store, sweep.id).status
    if args.json:
        _print_json({"id": sweep.id, "status": status})
    else:
        print(f"sweep {sweep.id}: {status}")
    return 0 if status == SWEEP_CANCELLED else 1


if __name__ == "__main__":
    from rltui.cli import main

    sys.exit(main(["sweep", *sys.argv[1:]]))
