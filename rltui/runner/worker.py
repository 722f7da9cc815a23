"""The detached worker: `python -m rltui.runner.worker --run ID [--db PATH]` (another backend's URL
comes in $RLTUI_DB, never on the command line).

Started by `launch.start_workers` for a run already claimed for it, holding one of this host's slot
files (runner/slots.py), in its own session (no controlling terminal: SIGHUP and Ctrl-C of the
launcher never reach it). It points its stdout/stderr at that run's log, executes it, then claims
the next queued run that has a free slot on this host, and so on until the queue has nothing for
it — so the queue drains with no daemon. It imports no torch unless a run's algorithm does.

`--launcher PID` (from `rltui run --detach`): started before its run was queued, it waits while that
launcher lives for the launcher to claim a run for it (see launch.spawn_waiting_worker), and claims
one itself if the launcher leaves without doing so. Without --run or --launcher it claims its first
run itself. `--slot-fd N`: the inherited descriptor of its slot file, marked `leaving` before its
last look at the queue (runner/slots.py: no run queued as it leaves is stranded).

`--cancel RUN_ID` instead waits out a cancel's grace period and forces it (the TUI's cancel, which
must not block or die with the TUI).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from rltui.store.engine import Store, resolve_url

# One BLAS thread per worker unless asked otherwise: a host runs one worker per slot (a core), and
# OpenBLAS's own threads spin on the other cores as numpy loads (~0.08 s of CPU per worker start,
# taken from the worker beside it) and oversubscribe them while it runs. Set before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _redirect_output(path: str) -> None:
    """Send this process's stdout and stderr (fds 1 and 2, so child libraries too) to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


LAUNCHER_WAIT_LIMIT = 30.0  # s: a launcher that takes longer starts a worker the usual way


def _wait_for_launcher(store: Store, launcher: int, poll: float = 0.005) -> int | None:
    """The run the launcher that started us claims for us, while it lives. Reads only."""
    import numpy  # noqa: F401 — every run seeds numpy: import it while the launcher is still busy

    from rltui.runner.scheduler import assigned_run

    pid = os.getpid()
    deadline = time.monotonic() + LAUNCHER_WAIT_LIMIT
    while True:
        launcher_gone = os.getppid() != launcher  # looked at first: a claim before its exit is seen below
        run_id = assigned_run(store, pid)
        if run_id is not None or launcher_gone or time.monotonic() >= deadline:
            return run_id
        time.sleep(poll)


WORKER_NICE_ENV = "RLTUI_WORKER_NICE"  # niceness a worker adds to its own (default 5; 0 keeps it)


AUTOGROUP = "/proc/self/autogroup"


def _lower_priority() -> None:
    """Training yields the CPU to the people watching it: with more runs than cores, `rltui ls` and
    the lab still get a core when they ask for one."""
    try:
        niceness = os.nice(max(0, int(os.environ.get(WORKER_NICE_ENV) or 5)))
    except (ValueError, OSError):
        return
    # With the kernel's autogroup scheduling on (most desktops), CPU is shared between sessions
    # first, and a process's nice value only counts within its own session. A detached worker leads
    # a session of its own, so its nice value alone changes nothing against `rltui ls` in the
    # user's terminal; the session's (autogroup's) nice value does. Only a session leader sets it
    # (it would lower every process of a session it merely joined).
    if os.getsid(0) == os.getpid() and os.access(AUTOGROUP, os.W_OK):
        try:
            with open(AUTOGROUP, "w") as autogroup:
                autogroup.write(str(niceness))
        except OSError:
            pass  # no autogroup support, or not allowed: the process's nice value stays


CLAIM_ATTEMPTS = 4  # each waits up to the store's busy timeout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rltui.runner.worker")
    parser.add_argument("--db", help="the store's SQLite path (another backend's URL: in $RLTUI_DB)")
    parser.add_argument("--run", type=int, metavar="RUN_ID", help="the run claimed for this worker")
    parser.add_argument("--cancel", type=int, metavar="RUN_ID",
                        help="instead of running the queue: cancel this run (graceful, then forced)")
    parser.add_argument("--grace", type=float, default=None, help="with --cancel: seconds before forcing")
    parser.add_argument("--launcher", type=int, metavar="PID",
                        help="started before its run was queued: wait for one while the launcher PID lives")
    parser.add_argument("--slot-fd", type=int, metavar="N", help="the inherited descriptor of this worker's slot file")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from rltui.runner.execute import execute_run, sigterm_as_interrupt
    from rltui.runner.hosts import process_start
    from rltui.runner.launch import log_dir, run_log_path
    from rltui.runner.lifecycle import heartbeat_interval, last_wall_time, refresh_liveness
    from rltui.runner.scheduler import claim, is_busy
    from rltui.runner.slots import mark_leaving, mark_slot

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
    pid, start = os.getpid(), process_start(os.getpid())
    interval = heartbeat_interval()

    def next_run() -> int | None:
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                refresh_liveness(store, kick=False, wait=True)  # free the slots of dead workers first
                return claim(store, pid=pid, pid_start=start, log_path_for=lambda rid: str(run_log_path(store, rid)))
            except Exception as exc:  # noqa: BLE001 — a writer frozen inside its transaction holds the store
                if not is_busy(exc) or attempt == CLAIM_ATTEMPTS - 1:
                    print(f"rltui worker {pid}: cannot claim the next run ({exc}); leaving it queued", flush=True)
                    return None
                time.sleep(1.0)
        return None

    def next_run_or_leave() -> int | None:
        run_id = next_run()
        if run_id is None and args.slot_fd is not None:
            # A launcher that queued a run just now may have found our slot held and started nobody:
            # mark the slot leaving (such a launcher then waits for it), and look once more.
            mark_leaving(args.slot_fd, pid)
            run_id = next_run()
            if run_id is not None:
                mark_slot(args.slot_fd, pid)  # staying: the launcher waiting on the slot gives up
        return run_id

    nice_pending = True

    def lower_once() -> None:  # after a run's first report: its start-up ran at the launcher's priority
        nonlocal nice_pending
        if nice_pending:
            nice_pending = False
            _lower_priority()
    try:
        run_id = args.run
        if run_id is None and args.launcher is not None:
            run_id = _wait_for_launcher(store, args.launcher)
            if run_id is None and os.getppid() == args.launcher:
                return 0  # still there after LAUNCHER_WAIT_LIMIT, it claimed nothing for us
            # gone without a claim for us (a refused config; its run taken by another worker): we hold
            # a slot, so we drain the queue like any worker (a run queued meanwhile may count on us)
        while True:
            try:
                if run_id is None:
                    run_id = next_run_or_leave()
            except KeyboardInterrupt:
                break
            if run_id is None:
                break
            _redirect_output(str(run_log_path(store, run_id)))
            print(f"rltui worker {pid} on {os.uname().nodename}: run {run_id}", flush=True)
            status = execute_run(store, run_id, wall_offset=last_wall_time(store, run_id), heartbeat_interval=interval,
                                 after_first_write=lower_once)
            print(f"rltui worker {pid}: run {run_id} {status}", flush=True)
            run_id = None
    finally:
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
