"""A machine in a store's pool: `rltui worker [--db URL] [--slots N] [--drain] [--foreground]`.

The pool process keeps this host's slots busy with the store's queue, by the same rules as every
launcher (scheduler.claim: per-host slots, FOR UPDATE SKIP LOCKED on PostgreSQL; slots.py: one slot
file per worker process). Once a second it marks the dead workers of this host crashed and claims a
queued run for each free slot, starting a worker for it; each worker then drains the queue itself.
So any number of machines pointed at one shared PostgreSQL store share its queue, each within its
own `--slots`.

`rltui worker` starts the pool in its own session (it survives logout like any worker) and returns;
`--foreground` runs it in the terminal (or under a service manager). `--drain` ends it once the
queue has nothing this host can run and its workers are done; without it, it waits for new runs
until SIGTERM or SIGINT. The store's URL reaches the pool and its workers through the environment
($RLTUI_DB), never a command line: `ps` shows every user the command lines of every process.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from rltui.store.engine import DB_ENV_VAR, Store, resolve_url

POLL_SECONDS = 1.0


def display_url(url: str) -> str:
    """The store's URL as it may be printed: a password is masked."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///"):]
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def start_pool(store: Store, slots: int | None, drain: bool) -> tuple[subprocess.Popen, str]:
    """Start the pool process detached (own session, stdin /dev/null); (process, its log path)."""
    from rltui.runner.launch import log_dir

    logs = log_dir(store)
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = logs / "pool.log"
    env = dict(os.environ, **{DB_ENV_VAR: store.url})
    if slots is not None:
        env["RLTUI_MAX_RUNS"] = str(slots)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rltui.runner.pool", *(["--drain"] if drain else [])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env=env,
        )
    return proc, str(log)


def run_pool(store: Store, drain: bool = False, poll: float = POLL_SECONDS) -> int:
    """Keep this host's slots busy until SIGTERM/SIGINT (or, with `drain`, until nothing is left)."""
    from rltui.runner import scheduler
    from rltui.runner.hosts import host_id, hostname
    from rltui.runner.launch import start_workers
    from rltui.runner.lifecycle import refresh_liveness

    stop = False

    def on_signal(signum, frame):  # noqa: ANN001, ARG001
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    print(f"rltui pool {os.getpid()} on {hostname()} ({host_id()}): {scheduler.worker_slots()} slots for "
          f"{display_url(store.url)}", flush=True)
    while not stop:
        try:
            refresh_liveness(store, kick=False)
            started = start_workers(store)
            if started:
                print(f"rltui pool: started workers for runs {', '.join(map(str, started))}", flush=True)
            if drain and not started and _idle(store):
                break
        except Exception as exc:  # noqa: BLE001 — a store that is away for a moment: try again
            print(f"rltui pool: {type(exc).__name__}: {exc}", flush=True)
        deadline = time.monotonic() + poll
        while not stop and time.monotonic() < deadline:
            time.sleep(min(0.1, poll))
    print(f"rltui pool {os.getpid()}: stopped", flush=True)
    return 0


def _idle(store: Store) -> bool:
    """Nothing for this host: no run of its own running, and nothing it could claim."""
    from rltui.runner import scheduler
    from rltui.store.status import RUNNING

    with store.sql.read() as tx:
        mine = [1 for hid, host in tx.all("SELECT host_id, host FROM runs WHERE status = :running", running=RUNNING)
                if scheduler.is_mine(hid, host)]
        return not mine and not scheduler.claimable(tx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rltui.runner.pool")
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args(argv)
    store = Store(resolve_url(None))  # $RLTUI_DB, set by start_pool
    try:
        return run_pool(store, drain=args.drain)
    finally:
        store.dispose()


if __name__ == "__main__":
    sys.exit(main())
