"""Creating a run row and executing it. The foreground CLI and the detached worker share this path.

execute_run(): load the run's stored config, resolve the device, seed everything, build the env and
the algorithm from the registry, run it against a recorder while a heartbeat thread proves the
process alive (and flushes the recorder), and record how it ended. A worker has usually claimed the
run already (or the foreground CLI created it `running`); a queued run is taken here.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable

from rltui import registry
from rltui.config import RunConfig, validate_config
from rltui.recorder import RecordPolicy, StoreRecorder, utcnow
from rltui.runner.devices import resolve_device, seed_everything, versions
from rltui.runner.hosts import host_id, process_start
from rltui.runner.wal import keep_wal_small
from rltui.runner.sysmetrics import log_sample
from rltui.store.engine import Store
from rltui.store.quiet import held_back
from rltui.store.sql import BoundedWrites, Json, WriteLockBusy, as_json
from rltui.store.status import CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING

# Every statement here is plain SQL on `store.sql` (see rltui/store/sql.py): a worker runs a tabular
# run start to end without importing SQLAlchemy.


def create_run(
    store: Store,
    config: RunConfig,
    status: str = QUEUED,
    parent_id: int | None = None,
    pid: int | None = None,
    host: str | None = None,
    waits_for: dict[str, int | str] | None = None,
) -> int:
    """Store a validated config as a new run row; returns its id.

    A `running` row (the foreground CLI) is created already owned by `pid` on `host`, so no worker
    draining the queue can claim it in between. `waits_for` ({field: run id or "latest:ALGO"}, see
    runner/scheduler.py) holds the run queued until those runs completed; the ids bound go into the
    stored config too, so the run reads exactly the runs it waited for.
    """
    now = utcnow()
    stored = config.to_dict()
    if waits_for:
        stored.setdefault("algo", {}).update({k: v for k, v in waits_for.items() if isinstance(v, int)})
    row = {
        "name": config.name,
        "env_id": config.env_id,
        "algo_id": config.algo_id,
        "config_toml": config.source_text,
        "config": Json(stored),
        "config_path": config.source_path,
        "seed": config.seed,
        "device": config.device,
        "status": status,
        "created_at": now,
        # For a queued run: when it was queued (a stalled queue is noticed from it).
        "heartbeat_at": now,
        "started_at": now if status == RUNNING else None,
        "pid": pid,
        "pid_start": process_start(pid),
        "host": host,
        "host_id": host_id() if host is not None else None,
        "waits_for": Json(waits_for) if waits_for else None,
        "summary": Json({}),
        "tags": Json([]),
        "notes": "",
        "versions": Json({}),
        "parent_id": parent_id,
        "progress": 0.0,
        "cancel_requested": False,
    }
    with store.sql.write() as tx:
        return tx.scalar(
            f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join(':' + k for k in row)}) RETURNING id", **row
        )


def stored_config(store: Store, run_id: int) -> RunConfig:
    with store.sql.read() as tx:
        row = tx.first("SELECT config, config_toml FROM runs WHERE id = :id", id=run_id)
    if row is None:
        raise KeyError(run_id)
    return validate_config(dict(as_json(row[0])), source=f"run {run_id}", source_text=row[1])


# A worker's writes wait a bounded time for SQLite's write lock, so a peer frozen inside its
# transaction (SIGSTOP, a closed lid) never stalls this run: the data stays buffered and the heartbeat
# tries again a beat later. Past BACKLOG rows waiting, training itself waits (nothing is dropped).
# Writes that must land (the run's claim, its final flush and status) try again, a bounded wait at a
# time, until they do; none waits the store's busy timeout and fails with "database is locked".
TRAIN_WAIT_MS = 500  # a flush from the training loop
BEAT_WAIT_MS = 1500  # the heartbeat's stamp and flush
# Rows waiting (trajectories' steps counted) before training waits for the store. Small enough that
# the final flush of a run asked to stop ends within a cancel's grace even while 8 writers share the
# lock (~7k rows/s each, measured by bench/bench_load.py), large enough for seconds of a flood.
BACKLOG = 50_000
BUSY_SAY_AFTER = 10.0  # s of a taken write lock before the run's log says so (once)


def worker_writes(store: Store, run_id: int) -> BoundedWrites:
    """A run's writes, bounded waits each; a long-held lock is said in the run's log (stderr)."""
    def say(message: str) -> None:
        print(f"rltui worker: run {run_id}: {message}", file=sys.stderr, flush=True)

    path = store.path
    return BoundedWrites(store.sql, say=say, say_after=BUSY_SAY_AFTER,
                         hold_back=(lambda: held_back(path)) if path is not None else None)


class RunRecorder(StoreRecorder):
    """The StoreRecorder a run writes through, made safe for the heartbeat thread.

    Flushes are serialised (the heartbeat flushes too), and once the run is no longer ours (marked
    crashed by a reader and resumed elsewhere) nothing more is written and should_stop() turns true. Writes wait a bounded
    time for the write lock (TRAIN_WAIT_MS, BEAT_WAIT_MS); a batch that could not be written stays
    pending, and the training loop does not try again until the next beat has.
    """

    def __init__(self, store: Store, run_id: int, policy: RecordPolicy | None = None, wall_offset: float = 0.0,
                 writes: BoundedWrites | None = None, **kwargs: Any) -> None:
        super().__init__(store, run_id, policy=policy, **kwargs)
        self.writes = self._thinner.writes = writes or worker_writes(store, run_id)
        self._run_flush_lock = threading.Lock()  # ours; the base class may hold its own inside flush()
        self._t0 -= wall_offset  # a resumed run's clock continues
        self.pid = os.getpid()
        self.lost = False
        self._wait = threading.local()  # this thread's bound on waiting for the write lock
        self.after_first_write: Callable[[], None] | None = None  # called once, in the main thread

    @property
    def write_wait_ms(self) -> int:  # type: ignore[override]
        return getattr(self._wait, "ms", TRAIN_WAIT_MS)

    def flush(self, wait_ms: int | None = None) -> bool:
        """Write what is pending; False if the write lock stayed taken (it stays pending)."""
        if wait_ms is None and self.writes.busy_since is not None:  # busy a moment ago
            if self._pending.rows < BACKLOG or self._stop:
                return False  # the heartbeat tries again (close() once asked to stop); training goes on
            self.flush_until_written(or_stop=True)  # back-pressure: training waits rather than drop data
            return True
        with self._run_flush_lock:
            if not self.lost and not self._owned():
                print(f"rltui worker: run {self.run_id} is no longer ours; stopping", file=sys.stderr, flush=True)
                self.lose()
            if self.lost:
                with self._lock:
                    self._pending = type(self._pending)()
                return True
            self._wait.ms = wait_ms if wait_ms is not None else TRAIN_WAIT_MS
            try:
                super().flush()
            except WriteLockBusy:
                return False  # noted by self.writes; the heartbeat tries again
            finally:
                del self._wait.ms
        if self.after_first_write is not None and threading.current_thread() is threading.main_thread():
            hook, self.after_first_write = self.after_first_write, None
            hook()
        return True

    def flush_until_written(self, wait_ms: int = BEAT_WAIT_MS, or_stop: bool = False) -> None:
        """Flush, trying again while the write lock is taken (the final flush, and a full backlog):
        however long other writers keep it, the data waits in memory and is written once it can be.
        `or_stop` (a full backlog): return early once the run is asked to stop, so a cancel reaches
        the algorithm's next safe point while the store is busy (close() writes the rest)."""
        while not self.flush(wait_ms):  # each try waited wait_ms; the log said why, once
            if or_stop and self.should_stop():
                return

    def close(self) -> None:
        self.flush_until_written()
        if not self.lost:
            self._finish_rollups()

    def _owned(self) -> bool:
        """Still running under this process? (A worker frozen past the heartbeat timeout was declared
        crashed and may have been resumed elsewhere: it must not write into that run any more.)"""
        with self.store.sql.read() as tx:
            row = tx.first("SELECT status, pid FROM runs WHERE id = :id", id=self.run_id)
        return row is not None and row[0] == RUNNING and row[1] == self.pid

    def checkpoint(self, step: int, data: bytes) -> None:
        if not self.lost:
            super().checkpoint(step, data)

    def lose(self) -> None:
        self.lost = True
        self._stop = True


class Heartbeat(threading.Thread):
    """Every `interval` seconds: stamp heartbeat_at on the run we own, then flush the recorder.

    If the stamp matches no row (a reader declared the run crashed), the run is no longer ours: the
    recorder stops writing and the algorithm is asked to stop. The stamp and the flush wait at most
    BEAT_WAIT_MS each for the write lock; a beat that finds it taken is skipped (the next one tries).
    """

    def __init__(self, store: Store, run_id: int, pid: int, recorder: RunRecorder, interval: float) -> None:
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.store, self.run_id, self.pid, self.recorder, self.interval = store, run_id, pid, recorder, interval
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                with self.recorder.writes.attempt(BEAT_WAIT_MS, self.recorder.waiting_note) as tx:
                    owned = tx.run(
                        "UPDATE runs SET heartbeat_at = :now WHERE id = :id AND status = :running AND pid = :pid",
                        now=utcnow(), id=self.run_id, running=RUNNING, pid=self.pid,
                    )
                if not owned:
                    print(f"rltui worker: run {self.run_id} is no longer ours; stopping", file=sys.stderr, flush=True)
                    self.recorder.lose()
                    return
                log_sample(self.recorder)  # sys/* metrics: CPU %, RSS, GPU (rltui.runner.sysmetrics)
                self.recorder.flush(BEAT_WAIT_MS)
            except WriteLockBusy:
                pass  # a frozen peer holds the lock (noted by recorder.writes): this beat is skipped
            except Exception as exc:  # noqa: BLE001 — a missed beat must not kill the run
                print(f"rltui worker: heartbeat failed: {exc}", file=sys.stderr, flush=True)
            try:  # also after a beat the lock turned away: under many writers that is most beats
                keep_wal_small(self.store)
            except Exception as exc:  # noqa: BLE001 — nor a checkpoint that could not be made
                print(f"rltui worker: WAL checkpoint failed: {exc}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)


def take_run(store: Store, run_id: int, pid: int, writes: BoundedWrites | None = None) -> bool:
    """Make sure the run is `running` under `pid`: a worker's claim or the foreground CLI already did
    that; a caller that executes a queued run directly (tests, scripts) takes it here."""
    with store.sql.read() as tx:  # the usual case needs no write lock (a burst's launcher is busy with it)
        row = tx.first("SELECT status, pid FROM runs WHERE id = :id", id=run_id)
    if row is not None and row[0] == RUNNING and row[1] == pid:
        return True
    writes = writes or worker_writes(store, run_id)
    return writes.until_done(lambda tx: _take(tx, run_id, pid), BEAT_WAIT_MS, "waiting to take the run")


def _take(tx: Any, run_id: int, pid: int) -> bool:
    row = tx.first("SELECT status, pid, host_id FROM runs WHERE id = :id", id=run_id)
    if row is None:
        raise KeyError(run_id)
    status, owner, owner_host = row
    if status == RUNNING and owner == pid:
        return True
    if status == RUNNING and owner is None and owner_host == host_id():
        # Claimed for this worker while it was starting; its launcher may not have said whose yet.
        tx.run("UPDATE runs SET pid = :pid, pid_start = :start WHERE id = :id AND pid IS NULL",
               pid=pid, start=process_start(pid), id=run_id)
        return True
    if status != QUEUED:
        return False
    tx.run(
        "UPDATE runs SET status = :running, pid = :pid, pid_start = :start, host = :host, host_id = :host_id,"
        " heartbeat_at = :now, started_at = coalesce(started_at, :now) WHERE id = :id",
        running=RUNNING, pid=pid, start=process_start(pid), host=socket.gethostname(), host_id=host_id(),
        now=utcnow(), id=run_id,
    )
    return True


def run_uses_torch(config: RunConfig) -> bool:
    """The spec's uses_torch, or a `uses_torch` switch in the algorithm's params (heartbeat_probe)."""
    return registry.algo_spec(config.algo_id).uses_torch or bool(getattr(config.algo, "uses_torch", False))


def execute_run(
    store: Store,
    run_id: int,
    on_progress: Callable[[float], None] | None = None,
    wall_offset: float = 0.0,
    heartbeat_interval: float = 1.0,
    after_first_write: Callable[[], None] | None = None,
) -> str:
    """Run `run_id` in this process to its end; returns the final status. `after_first_write` is
    called in this thread once the run's first report is in the store (a worker lowers its priority
    then: its start-up, up to the first metric, runs at the launcher's priority).

    SIGTERM (a forced cancel) and Ctrl-C end it as `cancelled` after a flush; an exception ends it
    as `failed` with the traceback stored and printed to stderr (the run's log).
    """
    pid = os.getpid()
    writes = worker_writes(store, run_id)
    if not take_run(store, run_id, pid, writes):
        return run_status(store, run_id)  # someone else's, or already over
    try:
        return _execute(store, run_id, pid, writes, on_progress, wall_offset, heartbeat_interval, after_first_write)
    finally:
        _ENDING.clear()
        if writes.waited_s >= 1.0:
            print(f"rltui worker: run {run_id} waited {writes.waited_s:.1f} s in all for the store's write lock",
                  file=sys.stderr, flush=True)


def _execute(store: Store, run_id: int, pid: int, writes: BoundedWrites, on_progress: Callable[[float], None] | None,
             wall_offset: float, heartbeat_interval: float, after_first_write: Callable[[], None] | None) -> str:
    recorder: RunRecorder | None = None
    heartbeat: Heartbeat | None = None
    try:
        config = stored_config(store, run_id)
        recorder = RunRecorder(store, run_id, config.record.policy(), wall_offset=wall_offset, writes=writes)
        recorder.after_first_write = after_first_write
        heartbeat = Heartbeat(store, run_id, pid, recorder, heartbeat_interval)
        heartbeat.start()  # before anything slow (importing torch)
        torch_run = run_uses_torch(config)
        device = resolve_device(config.device, torch_run)
        seed_everything(config.seed, torch_run)
        writes.until_done(lambda tx: tx.run(
            "UPDATE runs SET device_used = :device, versions = :versions, host = :host, pid = :pid WHERE id = :id",
            device=device, versions=Json(versions(torch_run)), host=socket.gethostname(), pid=pid, id=run_id,
        ), BEAT_WAIT_MS, "waiting to record the run's device")
        if on_progress is not None:
            _forward_progress(recorder, on_progress)
        env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
        train = registry.load_callable(registry.algo_spec(config.algo_id).entry)
        result = train(env, config.algo, recorder, seed=config.seed, device=device)
        if isinstance(result, dict) and result:
            recorder.summary(**result)
        _ENDING.set()
        recorder.close()
    except BaseException as exc:  # noqa: BLE001 — record every way a run can end
        _ENDING.set()
        tb = traceback.format_exc()
        cancelled = isinstance(exc, KeyboardInterrupt)
        if not cancelled and not (recorder is not None and exc is recorder.fault):  # a fault: said in one line
            sys.stderr.write(tb)
            sys.stderr.flush()
        if cancelled:
            waiting = f"; writing its last {len(recorder._pending)} records first" if recorder is not None else ""
            print(f"rltui worker: run {run_id} interrupted ({exc or 'Ctrl-C'}): it ends cancelled{waiting}",
                  file=sys.stderr, flush=True)
        try:
            if recorder is not None:
                recorder.close()
        except Exception as flush_exc:  # noqa: BLE001
            print(f"rltui worker: final flush failed: {flush_exc}", file=sys.stderr, flush=True)
        finally:
            if heartbeat is not None:
                heartbeat.stop()
        if recorder is not None and recorder.lost:
            return _status(store, run_id)
        if cancelled:
            finish_run(store, run_id, CANCELLED, error="cancelled: interrupted (SIGTERM or Ctrl-C)", pid=pid,
                       writes=writes)
            return CANCELLED
        finish_failed(store, run_id, exc, tb, pid, writes)
        return FAILED
    heartbeat.stop()
    if recorder.lost:
        return _status(store, run_id)
    status = CANCELLED if recorder.should_stop() else COMPLETED
    finish_run(store, run_id, status, pid=pid, error="cancelled at a safe point" if status == CANCELLED else None,
               writes=writes)
    return status


def _forward_progress(recorder: StoreRecorder, on_progress: Callable[[float], None]) -> None:
    original = recorder.progress

    def progress(fraction: float) -> None:
        original(fraction)
        on_progress(fraction)

    recorder.progress = progress  # type: ignore[method-assign]


def finish_run(
    store: Store, run_id: int, status: str, error: str | None = None, tb: str | None = None, pid: int | None = None,
    writes: BoundedWrites | None = None,
) -> None:
    """Record how a run ended — only while it is still ours (running under `pid`), if a pid is given.
    With a worker's `writes`, it waits for the write lock as long as a peer holds it, a bounded wait
    at a time (the run's log says why, once): a run's end is never lost to a busy store."""
    values: dict[str, Any] = {"status": status, "finished_at": utcnow()}
    if status == COMPLETED:
        values["progress"] = 1.0
    if error is not None:
        values["error"] = error
        values["traceback"] = tb
    condition, params = "id = :id", {"id": run_id}
    if pid is not None:
        condition, params = condition + " AND pid = :pid AND status = :running", {**params, "pid": pid, "running": RUNNING}
    sql = f"UPDATE runs SET {', '.join(f'{k} = :{k}' for k in values)} WHERE {condition}"
    if writes is None:  # the foreground CLI's paths: the store's busy timeout, once
        writes, wait_ms = BoundedWrites(store.sql), None
    else:
        wait_ms = BEAT_WAIT_MS
    writes.until_done(lambda tx: tx.run(sql, **values, **params), wait_ms, f"waiting to record that the run {status}")


FULL_DISK_WAIT = 600.0  # s a worker keeps trying to record its failure on a full disk


def finish_failed(store: Store, run_id: int, exc: BaseException, tb: str, pid: int,
                  writes: BoundedWrites | None = None) -> None:
    """Record a failed run even on a full disk: as soon as its one row can be written, dropping the
    traceback (the log has it), then all but the fault's first words, if the row would not fit."""
    from rltui.store.faults import FULL, StoreFault, fault_kind

    error = str(exc) if isinstance(exc, StoreFault) else f"{type(exc).__name__}: {exc}"
    tries = [(error, tb), (error, None), (f"{store.where}: disk full", None)]
    deadline, said = time.monotonic() + FULL_DISK_WAIT, False
    while True:
        text, trace = tries[0]
        try:
            return finish_run(store, run_id, FAILED, error=text, tb=trace, pid=pid, writes=writes)
        except Exception as again:
            if fault_kind(again) != FULL or time.monotonic() > deadline:
                raise
            if len(tries) > 1:
                tries.pop(0)
                continue
            if not said:
                said = True
                print(f"rltui: run {run_id}: waiting for space in {store.where} to record that it failed",
                      file=sys.stderr, flush=True)
            time.sleep(2.0)


def _status(store: Store, run_id: int) -> str | None:
    return run_status(store, run_id)


def run_status(store: Store, run_id: int) -> str | None:
    with store.sql.read() as tx:
        return tx.scalar("SELECT status FROM runs WHERE id = :id", id=run_id)


# Set while a run's end is being recorded (its last flush, its final status): a SIGTERM then must not
# cut that short (the run would be left `running` by a dead process, and end `crashed`); the run is
# ending anyway, which is what the signal asked for.
_ENDING = threading.Event()


def sigterm_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt in the main thread, so a forced cancel still flushes and
    records `cancelled` — unless the run is already recording how it ended."""

    def handler(signum, frame):  # noqa: ANN001, ARG001
        if _ENDING.is_set():
            # os.write, not print: a handler that prints while the main thread prints raises there
            os.write(2, b"rltui worker: SIGTERM while the run's end is being recorded: finishing that first\n")
            return
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, handler)
