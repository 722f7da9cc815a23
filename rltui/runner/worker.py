"""The detached worker: `python -m rltui.runner.worker --db URL`.

`--cancel RUN_ID` instead waits out a cancel's grace period and forces it (the TUI's cancel, which
must not block or die with the TUI).

Started by `launch.spawn_worker` in its own session (no controlling terminal: SIGHUP and Ctrl-C of
the launcher never reach it). It claims the next queued run that has a free slot, points its
stdout/stderr at that run's log, executes it, and claims again until the queue has nothing for it —
so the queue drains with no daemon. It imports no torch unless a run's algorithm does.

`--launcher PID` (from `rltui run --detach`): started before its run was queued, it first waits for
a claimable run while that launcher lives (see launch.spawn_waiting_worker).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from rltui.store.engine import Store, resolve_url


def _redirect_output(path: str) -> None:
    """Send this process's stdout and stderr (fds 1 and 2, so child libraries too) to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


LAUNCHER_WAIT_LIMIT = 30.0  # s: a launcher that takes longer has a worker started the usual way too


def _wait_for_launcher(store: Store, launcher: int, has_claimable, poll: float = 0.005) -> None:  # noqa: ANN001
    """Until a run is claimable, or the launcher that started us has exited (then this worker is
    reparented) or gave up on us. Reads only: claiming stays the one IMMEDIATE transaction."""
    import numpy  # noqa: F401 — every run seeds numpy: import it while the launcher is still busy

    deadline = time.monotonic() + LAUNCHER_WAIT_LIMIT
    while os.getppid() == launcher and time.monotonic() < deadline:
        if has_claimable(store):
            return
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rltui.runner.worker")
    parser.add_argument("--db", required=True, help="the store's SQLAlchemy URL or SQLite path")
    parser.add_argument("--cancel", type=int, metavar="RUN_ID",
                        help="instead of running the queue: cancel this run (graceful, then forced)")
    parser.add_argument("--grace", type=float, default=None, help="with --cancel: seconds before forcing")
    parser.add_argument("--launcher", type=int, metavar="PID",
                        help="started before its run was queued: wait for one while the launcher PID lives")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from rltui.runner.execute import execute_run, sigterm_as_interrupt
    from rltui.runner.launch import log_dir, run_log_path
    from rltui.runner.lifecycle import (
        claim_next,
        has_claimable,
        heartbeat_interval,
        hostname,
        last_wall_time,
        next_needs_torch,
        refresh_liveness,
    )

    sigterm_as_interrupt()
    # The launcher already opened (and upgraded) this store. On SQLite everything on the way to and
    # through a run is plain sqlite3 (Store.sql); SQLAlchemy is imported only if something asks for
    # a session (an LM stage reading an earlier run's weights).
    store = Store(resolve_url(args.db))
    if args.cancel is not None:
        from rltui.runner.lifecycle import cancel_and_wait

        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            status = cancel_and_wait(store, args.cancel, grace=args.grace)
            print(f"rltui: cancel run {args.cancel}: {status}", flush=True)
        finally:
            store.dispose()
        return 0
    log_dir(store).mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.launcher is not None:
        _wait_for_launcher(store, args.launcher, has_claimable)
    pid, host = os.getpid(), hostname()
    interval = heartbeat_interval()
    try:
        while True:
            try:
                refresh_liveness(store, kick=False)  # free the slots of dead workers first
                if "torch" not in sys.modules and next_needs_torch(store):
                    try:  # slow: done before the claim starts the heartbeat clock
                        import torch  # noqa: F401
                    except ImportError:
                        pass  # the run itself will fail and say why
                run_id = claim_next(store, pid, host, lambda rid: str(run_log_path(store, rid)))
            except KeyboardInterrupt:
                break
            if run_id is None:
                break
            _redirect_output(str(run_log_path(store, run_id)))
            print(f"rltui worker {pid} on {host}: run {run_id}", flush=True)
            status = execute_run(store, run_id, wall_offset=last_wall_time(store, run_id), heartbeat_interval=interval)
            print(f"rltui worker {pid}: run {run_id} {status}", flush=True)
    finally:
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
