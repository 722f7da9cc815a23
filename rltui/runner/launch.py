"""Launching runs in the background: the API the CLI and the TUI call (none of it imports torch).

    run_id = submit(store, config)        # validate the device, queue the run, start a worker if a slot is free
    cancel(store, run_id)                 # graceful, then forced after the grace period; returns at once
    cancel(store, run_id, wait=True)      # the same, returning the final status (`rltui cancel`)
    request_cancel(store, run_id)         # just ask (never forced)
    resume(store, run_id)                 # crashed / cancelled / failed → queued again, same id
    refresh_liveness(store)               # readers: mark dead runs crashed, unstick the queue
    queue_positions(store)                # {run_id: 1-based position} of queued runs
    log_tail(path, lines=40)              # the end of a run's log

A worker is a fresh `python -m rltui.runner.worker --db URL` process (exec, never fork: no engine or
connection crosses into it) in its own session, with stdin from /dev/null and output to a log under
the store's directory, so closing the terminal, SIGHUP or Ctrl-C in the launcher leave it running.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rltui.runner.devices import DeviceError, resolve_device
from rltui.runner.lifecycle import (
    LifecycleError,
    cancel_and_wait,
    force_cancel,
    kick_stalled_queue,
    prepare_resume,
    queue_positions,
    refresh_liveness,
    request_cancel,
    uses_torch,
)
from rltui.store.engine import Store, default_db_path, sqlite_revision
from rltui.store.migrate import SCHEMA_HEAD
from rltui.store.status import QUEUED

if TYPE_CHECKING:
    from rltui.config import RunConfig

# Importing this module costs no pydantic (the config is imported where a run is created), so
# `rltui run --detach` can start its worker before it checks the config (spawn_waiting_worker).

_children: list[subprocess.Popen] = []  # workers this process started, reaped as we go


def log_dir(store: Store) -> Path:
    """Run logs live beside the SQLite file (`<db dir>/logs`), else beside the default store."""
    base = store.path.parent if store.path is not None else default_db_path().parent
    return base / "logs"


def run_log_path(store: Store, run_id: int) -> Path:
    return log_dir(store) / f"run-{run_id}.log"


def check_launch_device(config: RunConfig) -> None:
    """Refuse at launch a device this host does not have (DeviceError), never mid-run.

    "auto" and "cpu" always work. An explicit cuda/mps for a torch run is checked in this process if
    torch is already loaded, else in a short child process, so the TUI never imports torch.
    """
    torch_run = uses_torch(config.algo_id, config.algo.model_dump())
    if torch_run and config.device in ("auto", "cpu"):
        return  # always satisfiable; the worker resolves "auto"
    if not torch_run or "torch" in sys.modules:
        resolve_device(config.device, torch_run)
        return
    proc = subprocess.run(
        [sys.executable, "-m", "rltui.runner.devices", config.device],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        answer = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise DeviceError(f"device {config.device!r}: could not check it ({proc.stderr.strip()[-300:]})") from None
    if answer.get("error"):
        raise DeviceError(answer["error"])


def submit(store: Store, config: RunConfig, *, check_device: bool = True, start: bool = True) -> int:
    """Queue a validated run and start a worker if one of its slots is free; returns the run id."""
    from rltui.runner.execute import create_run

    if check_device:
        check_launch_device(config)
    run_id = create_run(store, config, status=QUEUED)
    if start:
        start_workers(store)
    return run_id


def resume(store: Store, run_id: int, *, start: bool = True) -> int | None:
    """Queue a crashed/cancelled/failed run again (same id). Returns the checkpoint step it continues
    from, or None when it restarts (no checkpoint: its old metrics, episodes and artifacts are gone)."""
    step = prepare_resume(store, run_id)
    if start:
        start_workers(store)
    return step


def start_workers(store: Store, waiting: int = 0) -> int:
    """Start one worker per queued run that has a free slot now (extra workers find nothing and exit),
    less `waiting` workers already started and waiting for work (spawn_waiting_worker)."""
    return kick_stalled_queue(store, crashed_now=True, waiting=waiting)


def spawn_waiting_worker(store: Store) -> subprocess.Popen | None:
    """A worker started before its run is queued (`rltui run --detach`): its start-up (the imports)
    overlaps the launcher's checking the config and queueing the run. It waits for a claimable run
    only while this process lives, so a launch that fails leaves nothing behind. None (start no
    worker early) unless the store is a SQLite file already at head: a new or older store is first
    created or upgraded by the launcher."""
    try:
        path = store.path
        if path is None or not path.is_file() or sqlite_revision(path) != SCHEMA_HEAD:
            return None
    except Exception:  # noqa: BLE001 — not a store we can vouch for: the launcher will say why
        return None
    _reap()
    return _spawn_detached(log_dir(store), ["--db", store.url, "--launcher", str(os.getpid())])


def spawn_worker(store: Store) -> subprocess.Popen:
    """A detached worker: own session, stdin /dev/null, output appended to <logs>/workers.log until it
    claims a run (then to that run's log)."""
    _reap()
    logs = log_dir(store)
    return _spawn_detached(logs, ["--db", store.url])


def cancel(store: Store, run_id: int, grace: float | None = None, *, wait: bool = False) -> str:
    """Cancel a run: graceful first, forced after `grace` seconds (default $RLTUI_CANCEL_GRACE or 10).

    By default it returns at once with the status after the request ("cancelled" for a queued run,
    "running" while the run winds down) and a detached helper does the waiting and forcing, so a
    caller that exits (the TUI) cannot leave the job half done. With wait=True it blocks until the
    run has ended and returns its final status.
    """
    if wait:
        return cancel_and_wait(store, run_id, grace=grace)
    return cancel_in_background(store, run_id, grace)


def cancel_in_background(store: Store, run_id: int, grace: float | None = None) -> str:
    """Ask a run to stop and return at once (the TUI's cancel): if it is running, a detached helper
    process waits out the grace period and forces it if need be — even if the caller exits."""
    status = request_cancel(store, run_id)
    if status == "running":
        args = ["--db", store.url, "--cancel", str(run_id)]
        if grace is not None:
            args += ["--grace", str(grace)]
        _spawn_detached(log_dir(store), args)
    return status


def _spawn_detached(logs: Path, args: list[str]) -> subprocess.Popen:
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(logs / "workers.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rltui.runner.worker", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    _children.append(proc)
    return proc


def _reap() -> None:
    """Collect workers of ours that ended, so a long-lived launcher (the TUI) keeps no zombies."""
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)


def log_tail(path: str | os.PathLike | None, lines: int = 40, max_bytes: int = 64_000) -> str | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return None
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


__all__ = [
    "LifecycleError",
    "cancel",
    "cancel_and_wait",
    "cancel_in_background",
    "check_launch_device",
    "force_cancel",
    "log_dir",
    "log_tail",
    "queue_positions",
    "refresh_liveness",
    "request_cancel",
    "resume",
    "run_log_path",
    "spawn_worker",
    "start_workers",
    "submit",
]
