"""Launching and stopping runs from the TUI, through the background runner (rltui.runner.launch).

The runner's launch API is torch-free, so the TUI can call it directly: a launched run gets its own
detached worker process and outlives the lab. The runner, the config schema (pydantic) and the store
are imported on first use, not with this module: the runs screen imports it on the lab's start-up path.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rltui.config import RunConfig
    from rltui.store.engine import Store


def configs_dir(store: Store) -> Path:
    from rltui.store.engine import default_db_path

    base = store.path.parent if store.path is not None else default_db_path().parent
    d = base / "configs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_config(store: Store, config: RunConfig) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", config.name).strip("-") or "run"
    path = configs_dir(store) / f"{slug}-s{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.toml"
    path.write_text(config.to_toml())
    return path


def launch(store: Store, config: RunConfig) -> tuple[int, str]:
    """Queue `config` and start a worker if a slot is free. Returns (run id, a message)."""
    from rltui.runner import launch as runner

    run_id = runner.submit(store, config)
    return run_id, f"run {run_id} {config.name} submitted"


def cancel(store: Store, run_id: int) -> str:
    """Ask a run to stop (graceful; forced after the grace period by a detached helper)."""
    from rltui.runner import launch as runner

    status = runner.cancel(store, run_id)
    return f"run {run_id}: {'cancelled' if status == 'cancelled' else 'cancel requested'}"


def resume(store: Store, run_id: int) -> str:
    """Queue a crashed, cancelled or failed run again under its id (rltui resume); a message."""
    from rltui.runner import launch as runner

    step = runner.resume(store, run_id)
    where = f"from its checkpoint at step {step}" if step is not None else "from the start (no checkpoint)"
    return f"run {run_id}: queued again, continuing {where}"


def liveness(store: Store) -> dict[int, int]:
    """Mark dead workers' runs crashed (restarting a stalled queue) and return queue positions."""
    from rltui.runner import launch as runner

    from rltui.store.faults import fault_kind

    if not store.read_only:  # a store that cannot be written (read-only, full) is still shown
        try:
            runner.refresh_liveness(store)
        except Exception as exc:  # noqa: BLE001
            if fault_kind(exc) is None:
                raise
    return dict(runner.queue_positions(store))


def sample_runs_dir() -> Path | None:
    """sample_runs/ next to the package (a source checkout) or in the current directory."""
    here = Path(__file__).resolve()
    for candidate in (here.parents[2] / "sample_runs", Path.cwd() / "sample_runs"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    return None


# Sample runs by cost: exact and tabular methods take seconds, deep RL minutes, language models the
# longest (a chain of stages: lm_reviews_1_pretrain, _2_reward_model, ... in file-name order).
TIERS = ("tabular", "deep", "language model")


def sample_tier(path: Path) -> int:
    """0 tabular (and diagnostics), 1 deep RL, 2 language models; unreadable files count as deep."""
    import tomllib

    from rltui import registry

    try:
        data = tomllib.loads(path.read_text())
        env_id = str((data.get("env") or {}).get("id", ""))
        algo_id = str((data.get("algo") or {}).get("id", ""))
        kind = registry.env_spec(env_id).kind
        torch = registry.algo_spec(algo_id).uses_torch
    except Exception:  # noqa: BLE001 — the launch itself says what is wrong with the file
        return 1
    if kind == "text":
        return 2
    return 1 if torch or kind == "control" else 0


def plan_samples(folder: Path) -> list[tuple[Path, int]]:
    """The sample configs in launch order: cheapest tier first; by file name within a tier, which
    keeps each chain's stages (…_1_pretrain, …_2_grpo) in order."""
    plan = [(path, sample_tier(path)) for path in sorted(folder.glob("*.toml"))]
    return sorted(plan, key=lambda item: item[1])  # stable: file-name order within a tier
