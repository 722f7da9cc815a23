"""Launching runs in the background: the API the CLI and the TUI call (none of it imports torch).

    run_id = submit(store, config)        # queue the run; claim it and start its worker if a slot is free
    start_workers(store)                  # one worker per queued run that has a free slot on this host
    cancel(store, run_id)                 # graceful, then forced after the grace period; returns at once
    cancel(store, run_id, wait=True)      # the same, returning the final status (`rltui cancel`)
    request_cancel(store, run_id)         # just ask (never forced)
    resume(store, run_id)                 # crashed / cancelled / failed → queued again, same id
    refresh_liveness(store)               # readers: mark dead runs crashed, unstick the queue
    queue_positions(store)                # {run_id: 1-based position} of queued runs
    log_tail(path, lines=40)              # the end of a run's log

A worker is started only for a run already claimed for it: the launcher takes one of this host's
slot files (slots.py), claims the next queued run in the store (scheduler.claim), and only then
spawns `python -m rltui.runner.worker --run ID`. So a burst of submits never starts more workers
than there are free slots, and a worker knows its run before it imports anything. A worker is a
fresh process (exec, never fork: no engine or connection crosses into it) in its own session, with
stdin from /dev/null and output to the run's log in the store's log folder (`lab.db` →
`lab.db-logs/`), so closing the terminal, SIGHUP or Ctrl-C in the launcher leave it running. A
database URL that is not a SQLite path reaches the worker through its environment ($RLTUI_DB),
never its command line, where `ps` would show a password.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from rltui.runner import scheduler
from rltui.runner.devices import DeviceError, resolve_device
from rltui.runner.hosts import process_start, process_state
from rltui.runner.lifecycle import (
    LifecycleError,
    cancel_and_wait,
    force_cancel,
    prepare_resume,
    queue_positions,
    refresh_liveness,
    request_cancel,
    uses_torch,
)
from rltui.runner.slots import mark_slot, slot_folder, take_slot
from rltui.store.engine import DB_ENV_VAR, Store, default_db_path, sqlite_revision
from rltui.store.migrate import SCHEMA_HEAD
from rltui.store.sql import SQLITE_TIMEOUT
from rltui.store.status import QUEUED, RUNNING

if TYPE_CHECKING:
    from rltui.config import RunConfig

# Importing this module costs no pydantic (the config is imported where a run is created), so
# `rltui run --detach` can start its worker before it checks the config (spawn_waiting_worker).

_children: list[subprocess.Popen] = []  # workers this process started, reaped as we go


def log_dir(store: Store) -> Path:
    """A store's own log folder: `lab.db` → `lab.db-logs/` beside it (as SQLite's `lab.db-wal`), so
    two stores in one folder never share a log; another backend's under the default data folder."""
    path = store.path
    if path is not None:
        return path.with_name(path.name + "-logs")
    from sqlalchemy.engine import make_url

    url = make_url(store.url)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{url.database or 'db'}@{url.host or 'local'}_{url.port or ''}")
    return default_db_path().parent / "stores" / f"{name}-logs"


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
    """Queue a validated run and start its worker if a slot is free; returns the run id.

    A run whose config names other runs (init_run, reward_run) waits for them: "latest:ALGO" is
    bound now to the newest run of ALGO on the run's env, finished or not.
    """
    from rltui.runner.execute import create_run

    if check_device:
        check_launch_device(config)
    run_id = create_run(store, config, status=QUEUED, waits_for=_chain_of(store, config))
    if start:
        start_workers(store)
    return run_id


def create_foreground(store: Store, config: RunConfig, pid: int) -> tuple[int, bool]:
    """The row of a run this process executes itself (`rltui run` without --detach): `running` under
    `pid` at once, or, when its config names runs it waits for, `queued` under `pid` (no worker
    claims it; scheduler.wait_in_foreground holds it). Returns (run id, whether it waits)."""
    from rltui.runner.execute import create_run
    from rltui.runner.hosts import hostname

    waits_for = _chain_of(store, config)
    status = QUEUED if waits_for else RUNNING
    return create_run(store, config, status=status, pid=pid, host=hostname(), waits_for=waits_for), bool(waits_for)


def _chain_of(store: Store, config: RunConfig) -> dict[str, int | str] | None:
    """The runs `config` names ({field: run id, or "latest:ALGO" with none yet}), checked; None if none.
    A reference its env does not use (the verifiable task's reward_run) is not waited for."""
    ignored = getattr(config.env, "IGNORED_RUN_REFS", ())
    refs = {k: v for k, v in scheduler.run_refs(config.to_dict().get("algo") or {}).items() if k not in ignored}
    if not refs:
        return None
    with store.sql.read() as tx:
        scheduler.check_refs_exist(tx, refs)
        return scheduler.resolve_refs(tx, refs, config.env_id)


def resume(store: Store, run_id: int, *, start: bool = True) -> int | None:
    """Queue a crashed/cancelled/failed run again (same id). Returns the checkpoint step it continues
    from, or None when it restarts (no checkpoint: its old metrics, episodes and artifacts are gone)."""
    step = prepare_resume(store, run_id)
    if start:
        start_workers(store)
    return step


def start_workers(store: Store, *, wait: bool = True, early: subprocess.Popen | None = None) -> list[int]:
    """Claim queued runs for new workers while this host has free slots, and start those workers;
    returns the runs claimed. `early`: a worker already started and holding a slot
    (spawn_waiting_worker) gets the first claim. With wait=False (readers) a busy store is left
    alone. Never starts a worker without a claimed run."""
    logs = log_dir(store)
    claimed: list[int] = []
    _reap()
    try:
        if early is not None and early.poll() is None:
            run_id = scheduler.claim(store, pid=early.pid, pid_start=process_start(early.pid),
                                     log_path_for=lambda rid: str(run_log_path(store, rid)), wait=wait)
            if run_id is None:
                return claimed
            claimed.append(run_id)
        folder, n = slot_folder(logs), scheduler.worker_slots()
        while True:
            slot = take_slot(folder, n, wait_for_leaving=wait)
            if slot is None:
                break
            try:
                run_id = scheduler.claim(store, pid=None, pid_start=None,
                                         log_path_for=lambda rid: str(run_log_path(store, rid)), wait=wait)
                if run_id is None:
                    break
                proc = _spawn_detached(store, ["--run", str(run_id)], log=run_log_path(store, run_id), slot=slot)
                mark_slot(slot, proc.pid)
            finally:
                os.close(slot)
            scheduler.set_worker(store, run_id, proc.pid, process_start(proc.pid))
            claimed.append(run_id)
    except scheduler.ClaimBusy:
        pass
    return claimed


def spawn_waiting_worker(store: Store) -> subprocess.Popen | None:
    """A worker started before its run is queued (`rltui run --detach`): its start-up (the imports)
    overlaps the launcher's checking the config and queueing the run, and the launcher then claims
    a run for it (start_workers(early=...)). It holds a slot like any worker, so none is started
    when this host's slots are all taken, and it waits only while this process lives, so a launch
    that fails leaves nothing behind. None (start no worker early) unless the store is a SQLite file
    already at head: a new or older store is first created or upgraded by the launcher."""
    try:
        path = store.path
        if path is None or not path.is_file() or sqlite_revision(path) != SCHEMA_HEAD:
            return None
    except Exception:  # noqa: BLE001 — not a store we can vouch for: the launcher will say why
        return None
    _reap()
    slot = take_slot(slot_folder(log_dir(store)), scheduler.worker_slots(), wait_for_leaving=False)  # submit waits
    if slot is None:
        return None
    try:
        proc = _spawn_detached(store, ["--launcher", str(os.getpid())], slot=slot)
        mark_slot(slot, proc.pid)
        return proc
    finally:
        os.close(slot)


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
        args = ["--cancel", str(run_id)]
        if grace is not None:
            args += ["--grace", str(grace)]
        _spawn_detached(store, args)
    return status


def _spawn_detached(store: Store, args: list[str], log: Path | None = None, slot: int | None = None) -> subprocess.Popen:
    """`python -m rltui.runner.worker ARGS` in its own session, output appended to `log` (default
    <logs>/workers.log), holding `slot` (an inherited descriptor keeps its lock)."""
    logs = log_dir(store)
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    env = dict(os.environ)
    if slot is not None:
        args = [*args, "--slot-fd", str(slot)]  # pass_fds keeps the descriptor's number in the child
    if store.path is not None:
        args = ["--db", str(store.path), *args]  # a path is no secret, and `ps` shows whose worker it is
    else:
        env[DB_ENV_VAR] = store.url  # never on a command line: `ps` would show its password
    fd = os.open(log or logs / "workers.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rltui.runner.worker", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            pass_fds=(slot,) if slot is not None else (),
            env=env,
        )
    _children.append(proc)
    return proc


def _reap() -> None:
    """Collect workers of ours that ended, so a long-lived launcher (the TUI) keeps no zombies."""
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)


@contextmanager
def store_busy_explained(store: Store) -> Iterator[None]:
    """Turn "database is locked" (another process held the write lock past the busy timeout) into one
    line that says who holds it when we can tell: a worker of this host stopped inside its write."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001
        if not scheduler.is_busy(exc):
            raise
        where = store.path or store.url
        stopped = stopped_workers(store)
        who = "; ".join(f"run {run_id}'s worker {pid} is stopped (`kill -CONT {pid}` resumes it)" for run_id, pid in stopped)
        raise LifecycleError(
            f"{where}: another process has held the store's write lock for "
            f"{SQLITE_TIMEOUT:g} s, so nothing could be written"
            + (f": {who}" if who else "; try again when it lets go")
        ) from None


def stopped_workers(store: Store) -> list[tuple[int, int]]:
    """(run id, pid) of this host's workers that are stopped (SIGSTOP, a closed lid, a debugger)."""
    with store.sql.read() as tx:
        rows = tx.all("SELECT id, pid, host_id, host FROM runs WHERE status = 'running' AND pid IS NOT NULL")
    return [(run_id, pid) for run_id, pid, hid, host in rows
            if scheduler.is_mine(hid, host) and process_state(pid) in ("T", "t")]


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
    "spawn_waiting_worker",
    "start_workers",
    "store_busy_explained",
    "submit",
]
