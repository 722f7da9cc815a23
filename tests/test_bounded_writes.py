"""A worker's writes under a held write lock, with real processes and a real SQLite store: every
write waits a bounded time and tries again, so none fails with "database is locked" while another
process holds `BEGIN IMMEDIATE` (longer than the store's 15 s busy timeout, in the slow test), and
what must land (checkpoints, the final flush, the final status) lands once the lock is free."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rltui.config import load_config_text
from rltui.recorder import RecordPolicy
from rltui.runner import launch
from rltui.runner.execute import RunRecorder, create_run, finish_run, take_run
from rltui.store.sql import SQLITE_TIMEOUT, BoundedWrites, WriteLockBusy
from rltui.store.status import COMPLETED, RUNNING
from rltui.store.thinning import METRICS, Thinner
from tests.conftest import REPO

PROBE = 'name = "held"\nseed = 0\n[env]\nid = "ticker"\n[algo]\nid = "heartbeat_probe"\nsteps = 5\nstep_seconds = 0\n'

# Holds the store's write lock from BEGIN IMMEDIATE until it is killed, or for argv[2] seconds.
HOLDER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE runs SET notes = 'held' WHERE id = 1")
print("holding", flush=True)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 600)
conn.execute("ROLLBACK")
"""


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def hold_lock(store, seconds: float | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", HOLDER, str(store.path)] + ([str(seconds)] if seconds is not None else [])
    holder = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def our_running_run(store, text: str = PROBE) -> int:
    run_id = create_run(store, load_config_text(text))
    assert take_run(store, run_id, os.getpid())
    return run_id


def status_of(store, run_id: int) -> tuple:
    with store.sql.read() as tx:
        return tx.first("SELECT status, error, progress FROM runs WHERE id = :id", id=run_id)


def test_a_bounded_write_gives_up_in_its_wait_and_a_retried_one_lands_once_the_lock_is_free(store):
    run_id = our_running_run(store)
    said: list[str] = []
    writes = BoundedWrites(store.sql, say=said.append, say_after=0.5)
    holder = hold_lock(store, seconds=2.0)  # lets go by itself
    try:
        start = time.monotonic()
        with pytest.raises(WriteLockBusy):
            with writes.attempt(200):
                pass
        assert time.monotonic() - start < 1.5  # the bound, not the store's busy timeout
        assert writes.busy_since is not None
        start = time.monotonic()
        finish_run(store, run_id, COMPLETED, pid=os.getpid(), writes=writes)  # tries 1.5 s at a time
        waited = time.monotonic() - start
    finally:
        holder.wait(timeout=30)
    assert 0.5 < waited < SQLITE_TIMEOUT
    assert status_of(store, run_id) == (COMPLETED, None, 1.0)
    # Said once while it waited (why), and once when the store took the write again.
    assert len(said) == 2, said
    assert "write lock has been taken by other writers" in said[0] and "record that the run completed" in said[0]
    assert "took writes again" in said[1] and "nothing was lost" in said[1]
    assert writes.busy_since is None and writes.waited_s >= waited * 0.8


def test_thinning_and_a_checkpoint_under_a_held_lock_defer_and_then_catch_up(store):
    """A thinning chunk waits the flush's bound and leaves its pass where it was; a checkpoint stays
    pending with the data before it; nothing fails, and once the lock is free both are written."""
    run_id = our_running_run(store)
    bound, points = 200, 3000
    rec = RunRecorder(store, run_id, RecordPolicy(max_metric_points=10 * points), flush_every=1e9)
    rec.log_many("loss", range(1, points + 1), [float(i % 7) for i in range(1, points + 1)])
    assert rec.flush(500)  # written; under its bound, nothing to thin
    thinner = Thinner(store, run_id, bound, 1_000_000, rec.writes)  # a tighter bound: must thin now
    holder = hold_lock(store)
    try:
        start = time.monotonic()
        with pytest.raises(WriteLockBusy):  # the chunk's bounded wait, not the 15 s busy timeout
            thinner.after_flush([(run_id, "loss", points, 6.0, 0.0)], [], wait_ms=200)
        assert time.monotonic() - start < 2.0
        series = thinner.series[(METRICS, "loss")]
        assert series.cursor is not None and series.count == points  # the pass waits where it began
        rec.log_many("loss", [points + 1], [3.0])
        rec.checkpoint(points + 1, b"state after the last point")
        start = time.monotonic()
        assert rec.flush() is False  # the training loop's flush: a bounded wait, then pending
        assert time.monotonic() - start < 2.0
        assert rec._pending.checkpoints == [(points + 1, b"state after the last point")]
    finally:
        holder.kill()
        holder.wait()
    rec.close()  # the final flush: the point and the checkpoint with it
    for _ in range(10):  # the pass goes on where it was, a chunk (2,000 rows read) at a time
        thinner.after_flush([], [], wait_ms=200)
        if series.cursor is None:
            break
    with store.sql.read() as tx:
        rows = tx.all("SELECT step, value, value_min, value_max, bucket_size FROM metrics WHERE run_id = :id"
                      " ORDER BY step", id=run_id)
        checkpoints = tx.all("SELECT step, data FROM artifacts WHERE run_id = :id AND name = 'checkpoint'", id=run_id)
    assert [(s, bytes(d)) for s, d in checkpoints] == [(points + 1, b"state after the last point")]
    assert len(rows) <= bound and rows[-1][:2] == (points + 1, 3.0)
    assert sum(size or 1 for *_, size in rows) == points + 1  # every point counted, in a bucket or raw
    assert min(v if low is None else low for _, v, low, _, _ in rows) == 0.0  # each bucket keeps its min and max
    assert max(v if high is None else high for _, v, _, high, _ in rows) == 6.0


@pytest.mark.slow
def test_a_run_checkpoints_and_finishes_while_another_process_holds_the_lock_past_the_busy_timeout(store):
    """A real worker: while a second process holds BEGIN IMMEDIATE for longer than the store's busy
    timeout, the run trains to its end (checkpoints pending), then waits to write; once the lock is
    free it ends `completed` with every metric, its last checkpoints and its final status."""
    steps, every = 60, 20
    config = PROBE.replace("steps = 5", f"steps = {steps}").replace(
        "step_seconds = 0", f"step_seconds = 0.02\nuses_torch = true\ncheckpoint_every = {every}\nprint_every = 1")
    run_id = launch.submit(store, load_config_text(config))
    log_path = launch.run_log_path(store, run_id)
    deadline = time.monotonic() + 120
    while True:  # the worker is up (torch imported) and training (not only its sys/* metrics)
        with store.sql.read() as tx:
            if tx.scalar("SELECT count(*) FROM metrics WHERE run_id = :id AND key = 'count'", id=run_id):
                break
        assert time.monotonic() < deadline, "the worker wrote no metric"
        time.sleep(0.05)
    holder = hold_lock(store)
    held_from = time.monotonic()
    try:
        while f"heartbeat_probe step {steps} " not in log_path.read_text():  # trains on to its end
            assert time.monotonic() - held_from < 60, log_path.read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(max(0.0, SQLITE_TIMEOUT + 1.5 - (time.monotonic() - held_from)))  # past the busy timeout
        status, error, _ = status_of(store, run_id)
        assert status == RUNNING and error is None  # waiting to write, not failed
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # the lock goes with the process
        holder.wait()
    while status_of(store, run_id)[0] == RUNNING:
        assert time.monotonic() < deadline + 60, "the run did not finish"
        time.sleep(0.05)
    assert status_of(store, run_id) == (COMPLETED, None, 1.0)
    with store.sql.read() as tx:
        counts = [s for (s,) in tx.all("SELECT step FROM metrics WHERE run_id = :id AND key = 'count' ORDER BY step",
                                        id=run_id)]
        checkpoints = [s for (s,) in tx.all("SELECT step FROM artifacts WHERE run_id = :id AND name = 'checkpoint'"
                                             " ORDER BY step", id=run_id)]
    assert counts == list(range(1, steps + 1))
    assert checkpoints == [steps - every, steps]  # the newest two
    log = log_path.read_text()
    assert "locked" not in log and "Traceback" not in log and "heartbeat failed" not in log, log[-2000:]
    waits = re.findall(r"write lock has been taken by other writers for \d+ s", log)
    assert len(waits) == 1, log[-2000:]  # said once for the one held lock
    assert "took writes again" in log and f"run {run_id} completed" in log


AUTOGROUP_ON = Path("/proc/sys/kernel/sched_autogroup_enabled")


@pytest.mark.skipif(not AUTOGROUP_ON.exists() or AUTOGROUP_ON.read_text().strip() != "1",
                    reason="the kernel's autogroup scheduling is off here")
def test_a_worker_lowers_its_own_sessions_autogroup_not_ours(store):
    """With autogroup scheduling, CPU is shared between sessions first: a worker (its own session's
    leader) sets its session's nice value, so `rltui ls` in the user's session gets a core."""
    ours = Path("/proc/self/autogroup").read_text()
    config = PROBE.replace("steps = 5", "steps = 200").replace("step_seconds = 0", "step_seconds = 0.05")
    run_id = launch.submit(store, load_config_text(config))
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline:
        with store.sql.read() as tx:
            status, pid = tx.first("SELECT status, pid FROM runs WHERE id = :id", id=run_id)
        if pid:
            try:
                seen = Path(f"/proc/{pid}/autogroup").read_text()
            except OSError:
                pass
            if seen.endswith("nice 5\n"):
                break
        assert status in ("queued", "running"), status
        time.sleep(0.05)
    assert seen.endswith("nice 5\n"), seen  # lowered after its first report
    assert os.getsid(pid) == pid  # the session it leads
    assert Path("/proc/self/autogroup").read_text() == ours  # the launcher's session is untouched
    launch.cancel(store, run_id, wait=True)
