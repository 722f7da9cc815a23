"""A run's lifecycle in the store, with no daemon: liveness, the queue's slots, claiming, cancel, resume.

    queued ──claim──▶ running ──▶ completed | failed | cancelled
                         └──(heartbeat older than the timeout, or pid gone on its host)──▶ crashed
    crashed | cancelled | failed ──resume──▶ queued

Who does what: `launch.submit` queues a run and starts a worker if a slot is free; a worker claims
queued runs in submission order (one write transaction, so two workers never claim the same run or
overfill the slots) until none is left; readers (`rltui ls/show`, the TUI) call `refresh_liveness`,
which marks dead runs crashed and starts a worker for queued runs that nobody is draining.

Settings (environment variables, read when used): RLTUI_MAX_RUNS (concurrent CPU runs, default one
per core), RLTUI_MAX_GPU_RUNS (concurrent runs per GPU, default 1), RLTUI_HEARTBEAT_INTERVAL (s,
default 1), RLTUI_HEARTBEAT_TIMEOUT (s, default 10), RLTUI_CANCEL_GRACE (s, default 10).

Nothing here imports torch: the TUI calls these functions.
"""

from __future__ import annotations

import glob
import os
import signal
import socket
import time
from collections import Counter
from typing import Any, Callable

from rltui import registry
from rltui.recorder import utcnow
from rltui.store.engine import Store
from rltui.store.sql import Tx, as_datetime, as_json
from rltui.store.status import CANCELLED, CRASHED, FAILED, FINAL_STATUSES, QUEUED, RUNNING

# What a worker does on its way to a run (liveness, slots, claim) is plain SQL on `store.sql`, so a
# worker starts without SQLAlchemy's import cost; the rest (cancel, resume, queue listing) uses the ORM.


class LifecycleError(Exception):
    """A lifecycle request that cannot be honoured (no such run, wrong status); the message says why."""


# --- settings ------------------------------------------------------------------------------------
def _env_number(name: str, default: float, cast: Callable[[str], float] = float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise LifecycleError(f"${name}={raw!r}: expected a number") from None
    if value <= 0:
        raise LifecycleError(f"${name}={raw!r}: must be positive")
    return value


def max_runs() -> int:
    return int(_env_number("RLTUI_MAX_RUNS", os.cpu_count() or 1, int))


def max_gpu_runs() -> int:
    return int(_env_number("RLTUI_MAX_GPU_RUNS", 1, int))


def heartbeat_interval() -> float:
    return _env_number("RLTUI_HEARTBEAT_INTERVAL", 1.0)


def heartbeat_timeout() -> float:
    return _env_number("RLTUI_HEARTBEAT_TIMEOUT", 10.0)


def cancel_grace() -> float:
    return _env_number("RLTUI_CANCEL_GRACE", 10.0)


def hostname() -> str:
    return socket.gethostname()


# --- processes -----------------------------------------------------------------------------------
def pid_alive(pid: int | None) -> bool:
    """Whether `pid` is a live process on this host (a zombie counts as dead)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def signal_worker(pid: int, sig: int) -> None:
    """Signal a worker's whole process group when it leads one (detached workers do), else the pid."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


# --- slots ---------------------------------------------------------------------------------------
def uses_torch(algo_id: str, algo_config: dict[str, Any] | None) -> bool:
    """An algorithm uses torch if its spec says so, or if its params switch torch on (`uses_torch`)."""
    spec = registry.find_algo(algo_id)
    return bool(spec is not None and spec.uses_torch) or bool((algo_config or {}).get("uses_torch"))


def visible_gpus() -> int:
    """How many CUDA GPUs this host shows, without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(glob.glob("/proc/driver/nvidia/gpus/*"))


def slot_of(device: str, device_used: str | None, torch_run: bool) -> str:
    """Which pool a run counts against: "cpu", or "cuda:N" (GPU runs are counted per GPU)."""
    d = device_used or device
    if d.startswith("cuda"):
        return d if ":" in d else "cuda:0"
    if d == "auto" and torch_run and visible_gpus() > 0:
        return "cuda:0"  # what the worker's "auto" will pick
    return "cpu"


def capacity(slot: str) -> int:
    return max_gpu_runs() if slot.startswith("cuda") else max_runs()


def _config_algo(config: Any) -> dict[str, Any]:
    return (as_json(config) or {}).get("algo") or {}


def _slot_of_row(row: tuple) -> str:
    _id, device, device_used, algo_id, config = row
    # Whether the run uses torch matters only for "auto" on a host with a GPU; asking imports its
    # algorithm's schema family, which a worker about to run something else need not pay for.
    torch_run = (device_used or device) == "auto" and visible_gpus() > 0 and uses_torch(algo_id, _config_algo(config))
    return slot_of(device, device_used, torch_run)


_SLOT_COLUMNS = "SELECT id, device, device_used, algo_id, config FROM runs WHERE status = :status"


def _claimable(tx: Tx) -> list[int]:
    """Queued run ids that would get a slot now, in the order they would start."""
    used = Counter(_slot_of_row(r) for r in tx.all(_SLOT_COLUMNS, status=RUNNING))
    out = []
    for row in tx.all(_SLOT_COLUMNS + " ORDER BY id", status=QUEUED):
        slot = _slot_of_row(row)
        if used[slot] < capacity(slot):
            used[slot] += 1
            out.append(row[0])
    return out


def has_claimable(store: Store) -> bool:
    with store.sql.read() as tx:
        return bool(_claimable(tx))


def next_needs_torch(store: Store) -> bool:
    """Whether the run a worker would claim next uses torch (it imports torch before claiming, so
    the seconds that import can take are spent while the run is still queued, not heartbeat-less)."""
    with store.sql.read() as tx:
        ready = _claimable(tx)
        if not ready:
            return False
        algo_id, config = tx.first("SELECT algo_id, config FROM runs WHERE id = :id", id=ready[0])
    return uses_torch(algo_id, _config_algo(config))


def claim_next(store: Store, pid: int, host: str, log_path_for: Callable[[int], str | None]) -> int | None:
    """Mark the first queued run that has a free slot as running under `pid`; returns its id.

    One IMMEDIATE transaction holds the write lock from the first read, so counting the slots and
    claiming are atomic: two workers never take the same run and never overfill a pool.
    """
    with store.sql.write() as tx:
        ready = _claimable(tx)
        if not ready:
            return None
        run_id = ready[0]
        claimed = tx.run(
            "UPDATE runs SET status = :running, pid = :pid, host = :host, heartbeat_at = :now,"
            " started_at = coalesce(started_at, :now), finished_at = NULL, log_path = :log_path"
            " WHERE id = :id AND status = :queued",
            running=RUNNING, pid=pid, host=host, now=utcnow(), log_path=log_path_for(run_id),
            id=run_id, queued=QUEUED,
        )
        # On SQLite the write lock makes this certain; elsewhere another worker may have won the row.
        return run_id if claimed else None


def queue_positions(store: Store) -> dict[int, int]:
    """{run_id: position} of queued runs, 1 = next to start (submission order)."""
    with store.sql.read() as tx:
        ids = [run_id for (run_id,) in tx.all("SELECT id FROM runs WHERE status = :queued ORDER BY id", queued=QUEUED)]
    return {run_id: i + 1 for i, run_id in enumerate(ids)}


# --- liveness ------------------------------------------------------------------------------------
STALLED_QUEUE_SECONDS = 10.0  # a claimable run queued this long has no worker coming: start one


def refresh_liveness(store: Store, *, kick: bool = True) -> list[int]:
    """Mark running runs whose worker is dead as crashed; returns their ids.

    Dead means: the heartbeat is older than the timeout, or the pid is gone on this host. With
    `kick`, also start a worker when a queued run could run but nobody is draining the queue (its
    worker was killed before it could hand on) — so the queue never stalls without a daemon.
    """
    now = utcnow()
    timeout = heartbeat_timeout()
    here = hostname()
    with store.sql.read() as tx:
        rows = tx.all("SELECT id, pid, host, heartbeat_at FROM runs WHERE status = :running", running=RUNNING)
    dead: list[tuple[tuple, str]] = []
    for row in rows:
        _id, pid, host, heartbeat_at = row
        beat = as_datetime(heartbeat_at)
        age = (now - beat).total_seconds() if beat else float("inf")
        if host == here and pid and not pid_alive(pid):
            dead.append((row, f"worker process {pid} on {here} is gone"))
        elif age > timeout:
            dead.append((row, f"no heartbeat for {age:.1f} s (timeout {timeout:g} s)"))
    crashed: list[int] = []
    if dead:
        with store.sql.write() as tx:
            for (run_id, pid, _host, heartbeat_at), reason in dead:
                # Only if nothing moved since we looked (a late heartbeat wins): the stored value,
                # compared as stored.
                unmoved = {"pid": pid, "heartbeat_at": heartbeat_at}
                changed = tx.run(
                    "UPDATE runs SET status = :crashed, finished_at = :now, error = :error"
                    " WHERE id = :id AND status = :running AND "
                    + " AND ".join(f"{k} = :{k}" if v is not None else f"{k} IS NULL" for k, v in unmoved.items()),
                    crashed=CRASHED, now=now, error=f"crashed: {reason}", id=run_id, running=RUNNING,
                    **{k: v for k, v in unmoved.items() if v is not None},
                )
                if changed:
                    crashed.append(run_id)
    if kick:
        kick_stalled_queue(store, crashed_now=bool(crashed))
    return crashed


def kick_stalled_queue(store: Store, crashed_now: bool = False, waiting: int = 0) -> int:
    """Start workers for claimable queued runs that have waited too long (or lost their worker),
    less `waiting` workers already started that will claim some of them."""
    with store.sql.read() as tx:
        ready = _claimable(tx)
        if not ready:
            return 0
        if not crashed_now:
            # When the run that waited longest was queued (a queued run's heartbeat_at).
            beats = [as_datetime(b) for (b,) in tx.all(
                "SELECT heartbeat_at FROM runs WHERE status = :queued", queued=QUEUED
            ) if b is not None]
    if not crashed_now:
        waited = (utcnow() - min(beats)).total_seconds() if beats else float("inf")
        if waited < STALLED_QUEUE_SECONDS:
            return 0
    from rltui.runner.launch import spawn_worker

    for _ in ready[waiting:]:
        spawn_worker(store)
    return len(ready[waiting:])


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
        return run.status


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
        row = tx.first("SELECT status, pid, host FROM runs WHERE id = :id", id=run_id)
    if row is None:
        raise LifecycleError(f"no run with id {run_id}")
    status, pid, host = row
    if status != RUNNING:
        return status
    if host != hostname():
        raise LifecycleError(
            f"run {run_id} runs on host {host!r}; it was asked to stop, but only a `rltui cancel` "
            "on that host can force it"
        )
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if pid and pid_alive(pid):
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
        run.finished_at = run.pid = run.error = run.traceback = None
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
    "claim_next",
    "force_cancel",
    "prepare_resume",
    "queue_positions",
    "refresh_liveness",
    "request_cancel",
]
