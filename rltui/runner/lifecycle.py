"""A run's lifecycle in the store, with no daemon: liveness, cancel, resume (the queue: scheduler.py).

    queued ──claim──▶ running ──▶ completed | failed | cancelled
                         └──(its worker is gone)──▶ crashed
    crashed | cancelled | failed ──resume──▶ queued

Who does what: `launch.submit` queues a run, and if this host has a free slot claims it and starts
a worker for it; a worker runs its run, then claims the next one until none is left; readers
(`rltui ls/show`, the TUI) call `refresh_liveness`, which marks dead runs crashed and starts workers
for runs nobody is draining, but only if the store's write lock is free that very moment.

Crashed means the worker is gone. On its own host that is known for sure: the pid is gone, or is
another process (its start time differs), or the host has rebooted since. A live worker whose
heartbeat is late is only *stalled* (shown as such, never killed). The heartbeat timeout decides
alone for runs claimed on other hosts.

Settings (environment variables, read when used): RLTUI_MAX_RUNS (concurrent CPU runs, default one
per core), RLTUI_MAX_GPU_RUNS (concurrent runs per GPU, default 1), RLTUI_HEARTBEAT_INTERVAL (s,
default 1), RLTUI_HEARTBEAT_TIMEOUT (s, default 10), RLTUI_CANCEL_GRACE (s, default 10).

Nothing here imports torch: the TUI calls these functions.
"""

from __future__ import annotations

import os
import signal
import time

from rltui.store.runs_table import utcnow
from rltui.runner import scheduler
from rltui.runner.hosts import host_id, hostname, process_alive, same_machine_other_boot
from rltui.runner.scheduler import (  # noqa: F401 — the lifecycle's settings and queue, re-exported
    ClaimBusy,
    SchedulerError as LifecycleError,
    capacity,
    claimable,
    max_gpu_runs,
    max_runs,
    slot_of,
    uses_torch,
    visible_gpus,
)
from rltui.store.engine import Store
from rltui.store.sql import as_datetime
from rltui.store.status import CANCELLED, CRASHED, FAILED, FINAL_STATUSES, QUEUED, RUNNING

# What a worker does on its way to a run (liveness, slots, claim) is plain SQL on `store.sql`, so a
# worker starts without SQLAlchemy's import cost; the rest (cancel, resume) uses the ORM.


# --- settings ------------------------------------------------------------------------------------
def heartbeat_interval() -> float:
    return scheduler.env_number("RLTUI_HEARTBEAT_INTERVAL", 1.0)


def heartbeat_timeout() -> float:
    return scheduler.env_number("RLTUI_HEARTBEAT_TIMEOUT", 10.0)


def cancel_grace() -> float:
    return scheduler.env_number("RLTUI_CANCEL_GRACE", 10.0)


# --- processes -----------------------------------------------------------------------------------
def pid_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether `pid` is a live process on this host (a zombie counts as dead), and still the one that
    started at `start` when that is known."""
    return process_alive(pid, start)


def signal_worker(pid: int, sig: int) -> None:
    """Signal a worker's whole process group when it leads one (detached workers do), else the pid."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


def queue_positions(store: Store) -> dict[int, int]:
    """{run_id: position} of queued runs, 1 = next to start (submission order)."""
    with store.sql.read() as tx:
        # Not the foreground runs waiting in their own `rltui run` (a pid): they are in no worker's queue.
        ids = [run_id for (run_id,) in tx.all("SELECT id FROM runs WHERE status = :queued AND pid IS NULL ORDER BY id",
                                              queued=QUEUED)]
    return {run_id: i + 1 for i, run_id in enumerate(ids)}


# --- liveness ------------------------------------------------------------------------------------
def why_dead(pid: int | None, pid_start: int | None, host: str | None, run_host_id: str | None,
             age: float, timeout: float) -> str | None:
    """Why the worker of a running run is dead, or None while it may be alive."""
    if scheduler.is_mine(run_host_id, host):
        if pid is None:  # claimed for a worker that was starting: it gets a start-up's grace
            return f"its worker on {hostname()} never started" if age > timeout else None
        if not process_alive(pid, pid_start):
            return f"worker process {pid} on {hostname()} is gone"
        return None
    if same_machine_other_boot(run_host_id):
        return f"{host or 'its host'} has rebooted since its worker {pid} started"
    if age > timeout:
        return f"no heartbeat from {host or 'its host'} for {age:.1f} s (timeout {timeout:g} s)"
    return None


def refresh_liveness(store: Store, *, kick: bool = True, wait: bool = False) -> list[int]:
    """Mark running runs whose worker is dead as crashed (cancelled, if their cancel was asked for);
    returns the crashed ones' ids.

    Reads first, and writes only if a run is dead, and then (unless `wait`) only if the write lock
    is free right now: a reader never waits behind a writer (a frozen worker may hold the lock for
    ever). With `kick`, it also starts workers for queued runs that have a free slot on this host
    and nobody draining them (their worker was killed before it could hand on).
    """
    now = utcnow()
    timeout = heartbeat_timeout()
    with store.sql.read() as tx:
        # Running runs, and queued ones held by a foreground `rltui run` (scheduler.wait_in_foreground).
        rows = tx.all("SELECT id, pid, pid_start, host, host_id, heartbeat_at, status, cancel_requested FROM runs"
                      " WHERE status = :running OR (status = :queued AND pid IS NOT NULL)", running=RUNNING, queued=QUEUED)
    dead: list[tuple[tuple, str]] = []
    for row in rows:
        _id, pid, pid_start, host, run_host_id, heartbeat_at, _status, _cancel = row
        beat = as_datetime(heartbeat_at)
        age = (now - beat).total_seconds() if beat else float("inf")
        reason = why_dead(pid, pid_start, host, run_host_id, age, timeout)
        if reason:
            dead.append((row, reason))
    crashed: list[int] = []
    if dead:
        try:
            with (store.sql.write() if wait else store.sql.try_write()) as tx:
                for (run_id, pid, _start, _host, _hid, heartbeat_at, status, cancel_asked), reason in dead:
                    # A run whose cancel was asked for and whose worker is gone was cancelled (a forced
                    # cancel's SIGKILL, or the worker died on its way out), not crashed.
                    ended, error = (CANCELLED, f"cancelled: {reason}") if cancel_asked else (CRASHED, f"crashed: {reason}")
                    # Only if nothing moved since we looked (a late heartbeat, a new claim wins).
                    unmoved = {"pid": pid, "heartbeat_at": heartbeat_at}
                    changed = tx.run(
                        "UPDATE runs SET status = :ended, finished_at = :now, error = :error"
                        " WHERE id = :id AND status = :status AND "
                        + " AND ".join(f"{k} = :{k}" if v is not None else f"{k} IS NULL" for k, v in unmoved.items()),
                        ended=ended, now=now, error=error, id=run_id, status=status,
                        **{k: v for k, v in unmoved.items() if v is not None},
                    )
                    if changed and ended == CRASHED:
                        crashed.append(run_id)
        except Exception:  # noqa: BLE001
            if wait:
                raise
            # A reader's marking is best effort: the store is busy (or read-only, or full), and the
            # next look, or a worker, marks them. Reading goes on regardless.
            return []
    if kick:
        try:
            kick_stalled_queue(store)
        except Exception:  # noqa: BLE001 — best effort too: a read-only store or folder starts nothing
            pass
    return crashed


def kick_stalled_queue(store: Store, wait: bool = False) -> list[int]:
    """Start workers for queued runs that have a free slot on this host but nobody draining them
    (their worker was killed before it could hand on); never waits for the write lock unless asked."""
    from rltui.runner.launch import start_workers

    return start_workers(store, wait=wait)


# --- cancel --------------------------------------------------------------------------------------
def request_cancel(store: Store, run_id: int) -> str:
    """Ask a run to stop; returns its status after the request. A queued run is cancelled at once."""
    from rltui.store.models import Run

    with store.write() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LifecycleError(f"no run with id {run_id}")
        if run.status == QUEUED:
            run.status, run.finished_at = CANCELLED, utcnow()
            run.error = "cancelled before it started"
        elif run.status == RUNNING:
            run.cancel_requested = True
        status = run.status
    if status == CANCELLED:
        scheduler.settle_chains(store)  # runs waiting for this one fail now, naming it
    return status


def cancel_and_wait(store: Store, run_id: int, grace: float | None = None, poll: float = 0.1) -> str:
    """Graceful, then forced: ask the algorithm to stop at its next safe point; after `grace` seconds
    SIGTERM the worker (it records `cancelled`), and SIGKILL it if that did not end the run.
    Blocks up to about grace + 2 × 3 s (`rltui cancel`). Returns the final status.
    """
    grace = cancel_grace() if grace is None else grace
    status = request_cancel(store, run_id)
    if status != RUNNING:
        return status
    if _wait_final(store, run_id, grace, poll):
        return _status(store, run_id)
    return force_cancel(store, run_id, poll=poll)


def force_cancel(store: Store, run_id: int, term_grace: float = 3.0, poll: float = 0.1) -> str:
    with store.sql.read() as tx:
        row = tx.first("SELECT status, pid, pid_start, host, host_id FROM runs WHERE id = :id", id=run_id)
    if row is None:
        raise LifecycleError(f"no run with id {run_id}")
    status, pid, pid_start, host, run_host_id = row
    if status != RUNNING:
        return status
    if not scheduler.is_mine(run_host_id, host):
        raise LifecycleError(
            f"run {run_id} runs on host {host!r}; it was asked to stop, but only a `rltui cancel` "
            "on that host can force it"
        )
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if pid and pid_alive(pid, pid_start):
            signal_worker(pid, sig)
        # The worker turns SIGTERM into a clean `cancelled` and then goes on with the queue, so wait
        # for the run's status, not for the process.
        if _wait_final(store, run_id, term_grace, poll, pid=pid):
            break
    with store.sql.write() as tx:
        tx.run(
            "UPDATE runs SET status = :cancelled, finished_at = :now, error = :error"
            " WHERE id = :id AND status = :running",
            cancelled=CANCELLED, now=utcnow(), error="cancelled: the worker was stopped by force",
            id=run_id, running=RUNNING,
        )
    return _status(store, run_id)


def _status(store: Store, run_id: int) -> str:
    with store.sql.read() as tx:
        return tx.scalar("SELECT status FROM runs WHERE id = :id", id=run_id)


def _wait_final(store: Store, run_id: int, seconds: float, poll: float, pid: int | None = None) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        if _status(store, run_id) in FINAL_STATUSES:
            return True
        if pid is not None and not pid_alive(pid):
            return _status(store, run_id) in FINAL_STATUSES
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)


# --- resume --------------------------------------------------------------------------------------
RESUMABLE = (CRASHED, CANCELLED, FAILED)


def prepare_resume(store: Store, run_id: int) -> int | None:
    """Queue a crashed, cancelled or failed run again under the same id; returns the checkpoint step
    it will continue from, or None when it restarts from scratch.

    With a checkpoint at step k, everything recorded after k (metrics, episodes, artifacts) is
    dropped, so the resumed series continues at k+1 without duplicates. Without one (tabular runs),
    the run's metrics, episodes and artifacts are deleted and it starts over.
    """
    from sqlalchemy import delete, select

    from rltui.store.models import Artifact, Episode, Metric, Run

    refresh_liveness(store, kick=False)
    with store.write() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise LifecycleError(f"no run with id {run_id}")
        if run.status not in RESUMABLE:
            raise LifecycleError(
                f"run {run_id} is {run.status}; only {', '.join(RESUMABLE)} runs can be resumed"
            )
        step = session.scalar(
            select(Artifact.step)
            .where(Artifact.run_id == run_id, Artifact.name == "checkpoint")
            .order_by(Artifact.id.desc())
            .limit(1)
        )
        if step is not None:
            session.execute(delete(Metric).where(Metric.run_id == run_id, Metric.step > step))
            session.execute(delete(Episode).where(Episode.run_id == run_id, Episode.step > step))
            session.execute(
                delete(Artifact).where(
                    Artifact.run_id == run_id, Artifact.name != "checkpoint", Artifact.step > step
                )
            )
        else:
            for table in (Metric, Episode, Artifact):
                session.execute(delete(table).where(table.run_id == run_id))
            run.summary, run.progress = {}, 0.0
        run.status = QUEUED
        run.cancel_requested = False
        run.finished_at = run.pid = run.pid_start = run.error = run.traceback = None
        run.heartbeat_at = utcnow()  # for a queued run: when it was queued
        return step


def last_wall_time(store: Store, run_id: int) -> float:
    """Seconds into the run of its last stored metric (a resumed run's clock continues from there)."""
    with store.sql.read() as tx:
        return float(tx.scalar("SELECT max(wall_time) FROM metrics WHERE run_id = :id", id=run_id) or 0.0)


def is_final(status: str | None) -> bool:
    return status in FINAL_STATUSES


__all__ = [
    "LifecycleError",
    "cancel_and_wait",
    "force_cancel",
    "prepare_resume",
    "queue_positions",
    "refresh_liveness",
    "request_cancel",
]
