"""Launching runs from the TUI: through the background runner when it is there, else via the CLI.

Order of preference (the first that exists is used):
1. `rltui.runner.launch.submit(store, config)` — the runner's API, imported lazily (torch-free);
2. `python -m rltui.cli --db URL run FILE --detach --json` — the config is written to a TOML file
   under the store's directory first;
3. if this rltui's CLI has no --detach yet: the same command without --detach, started in its own
   session (so it outlives the TUI) with its output in a log file next to the TOML.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from rltui.config import RunConfig
from rltui.store.engine import Store, default_db_path


def _runner_launch():  # noqa: ANN202
    """rltui.runner.launch if this install has it (imported lazily; it is torch-free), else None."""
    try:
        return importlib.import_module("rltui.runner.launch")
    except ModuleNotFoundError as exc:
        if exc.name != "rltui.runner.launch":
            raise
        return None


def configs_dir(store: Store) -> Path:
    base = store.path.parent if store.path is not None else default_db_path().parent
    d = base / "configs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_config(store: Store, config: RunConfig) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.name).strip("-") or "run"
    path = configs_dir(store) / f"{slug}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.toml"
    path.write_text(config.to_toml())
    return path


def launch(store: Store, config: RunConfig) -> tuple[int | None, str]:
    """Start `config` in the background. Returns (run id or None if not yet known, a message)."""
    runner_launch = _runner_launch()
    if runner_launch is not None and hasattr(runner_launch, "submit"):
        run_id = runner_launch.submit(store, config)
        return run_id, f"run {run_id} {config.name} submitted"
    path = save_config(store, config)
    cmd = [sys.executable, "-m", "rltui.cli", "--db", store.url, "run", str(path)]
    proc = subprocess.run(cmd + ["--detach", "--json"], capture_output=True, text=True, timeout=60)
    if proc.returncode == 0:
        try:
            data = json.loads(proc.stdout)
            return int(data["id"]), f"run {data['id']} {config.name} {data.get('status', 'queued')}"
        except (ValueError, KeyError, TypeError):
            return None, f"{config.name} launched"
    if "--detach" not in proc.stderr:
        raise RuntimeError(proc.stderr.strip() or proc.stdout.strip() or "launch failed")
    log = path.with_suffix(".log")
    with open(log, "ab") as out:
        subprocess.Popen(cmd + ["--json"], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, close_fds=True)
    return None, f"{config.name} started in the background (log: {log})"


def cancel(store: Store, run_id: int) -> str:
    """Ask a run to stop: the runner's cancel when there, else the stop flag workers poll."""
    runner_launch = _runner_launch()
    if runner_launch is not None and hasattr(runner_launch, "cancel"):
        runner_launch.cancel(store, run_id)
        return f"run {run_id}: cancel requested"
    from sqlalchemy import update

    from rltui.recorder import utcnow
    from rltui.store.models import QUEUED, Run

    with store.write() as session:
        run = session.get(Run, run_id)
        if run is None:
            return f"run {run_id}: no such run"
        if run.status == QUEUED:
            session.execute(update(Run).where(Run.id == run_id).values(status="cancelled", finished_at=utcnow(),
                                                                      cancel_requested=True))
            return f"run {run_id}: cancelled before it started"
        session.execute(update(Run).where(Run.id == run_id).values(cancel_requested=True))
    return f"run {run_id}: cancel requested"


def liveness(store: Store) -> dict[int, int]:
    """Refresh crashed-run detection and return queue positions, when the runner provides them."""
    runner_launch = _runner_launch()
    if runner_launch is None:
        return {}
    if hasattr(runner_launch, "refresh_liveness"):
        runner_launch.refresh_liveness(store)
    if hasattr(runner_launch, "queue_positions"):
        return dict(runner_launch.queue_positions(store))
    return {}


def sample_runs_dir() -> Path | None:
    """sample_runs/ next to the package (a source checkout) or in the current directory."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "sample_runs", Path.cwd() / "sample_runs"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    return None
