"""Liveness with real processes and a real SQLite store: on its own host a run is crashed only when
its worker process is gone (pid and start time), a silent live one is stalled; other hosts' runs go
by the heartbeat timeout. Readers never wait for the write lock, even one held for ever."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from rltui.config import load_config_text
from rltui.recorder import utcnow
from rltui.runner import launch
from rltui.runner.hosts import host_id, process_start
from rltui.runner.lifecycle import refresh_liveness
from tests.conftest import REPO, rltui_cli

PROBE = 'name = "live"\nseed = 0\n[env]\nid = "ticker"\n[algo]\nid = "heartbeat_probe"\nsteps = 5\nstep_seconds = 0.01\n'


@pytest.fixture(autouse=True)
def _timeout(monkeypatch):
    monkeypatch.setenv("RLTUI_HEARTBEAT_TIMEOUT", "5")
    monkeypatch.setenv("PYTHONPATH", str(REPO))


@pytest.fixture
def sleeper():
    """A live process to stand for a worker (its pid and start time are real)."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def running_row(store, *, pid, pid_start, host_id_value, heartbeat_age: float, host=None) -> int:
    run_id = launch.submit(store, load_config_text(PROBE), start=False)
    with store.sql.write() as tx:
        tx.run("UPDATE runs SET status = 'running', pid = :pid, pid_start = :start, host_id = :hid, host = :host,"
               " heartbeat_at = :beat, started_at = :beat WHERE id = :id",
               pid=pid, start=pid_start, hid=host_id_value, host=host or os.uname().nodename,
               beat=utcnow() - timedelta(seconds=heartbeat_age), id=run_id)
    return run_id


def row(store, run_id):
    with store.sql.read() as tx:
        return tx.first("SELECT status, error FROM runs WHERE id = :id", id=run_id)


def test_a_live_worker_with_a_late_heartbeat_is_stalled_and_a_dead_one_crashed(store, sleeper):
    alive = running_row(store, pid=sleeper.pid, pid_start=process_start(sleeper.pid), host_id_value=host_id(),
                        heartbeat_age=60)
    assert refresh_liveness(store, kick=False) == []
    assert row(store, alive) == ("running", None)
    listed = {r["id"]: r for r in json.loads(rltui_cli("ls", "--json", db=store.path, check=True).stdout)}
    assert listed[alive]["status"] == "running"
    assert re.fullmatch(r"stalled: no heartbeat for 6\d s", listed[alive]["status_note"])
    sleeper.kill()
    sleeper.wait()
    assert refresh_liveness(store, kick=False) == [alive]
    status, error = row(store, alive)
    assert status == "crashed" and f"worker process {sleeper.pid}" in error and "is gone" in error


def test_a_run_whose_cancel_was_asked_for_ends_cancelled_when_its_worker_is_gone(store, sleeper):
    # A forced cancel's SIGKILL (or a worker dying on its way out): a peer's liveness pass may see
    # the process gone before the cancel records its end; the run was cancelled, not crashed.
    run_id = running_row(store, pid=sleeper.pid, pid_start=process_start(sleeper.pid), host_id_value=host_id(),
                         heartbeat_age=1)
    other = running_row(store, pid=sleeper.pid, pid_start=process_start(sleeper.pid), host_id_value=host_id(),
                        heartbeat_age=1)
    assert launch.request_cancel(store, run_id) == "running"
    assert refresh_liveness(store, kick=False) == []  # alive: asked to stop, still running
    sleeper.kill()
    sleeper.wait()
    assert refresh_liveness(store, kick=False) == [other]  # only the run nobody cancelled crashed
    status, error = row(store, run_id)
    assert status == "cancelled" and f"cancelled: worker process {sleeper.pid}" in error
    assert row(store, other)[0] == "crashed"


def test_a_reused_pid_is_not_the_worker(store, sleeper):
    # The pid is alive, but it started at another time than the worker that claimed the run did.
    reused = running_row(store, pid=sleeper.pid, pid_start=process_start(sleeper.pid) - 1, host_id_value=host_id(),
                         heartbeat_age=0)
    assert refresh_liveness(store, kick=False) == [reused]
    assert "is gone" in row(store, reused)[1]


def test_other_hosts_go_by_the_heartbeat_and_a_reboot_ends_every_run_of_the_boot_before(store, sleeper):
    machine, _, boot = host_id().partition(":")
    fresh = running_row(store, pid=999_999, pid_start=1, host_id_value="other-machine:b", heartbeat_age=1, host="twin")
    late = running_row(store, pid=sleeper.pid, pid_start=process_start(sleeper.pid),
                       host_id_value="other-machine:b", heartbeat_age=30, host=os.uname().nodename)
    rebooted = running_row(store, pid=sleeper.pid, pid_start=process_start(sleeper.pid),
                           host_id_value=f"{machine}:an-earlier-boot", heartbeat_age=0)
    # A live pid of ours means nothing for a run of another machine with our hostname.
    assert sorted(refresh_liveness(store, kick=False)) == sorted([late, rebooted])
    assert row(store, fresh) == ("running", None)
    assert "no heartbeat from" in row(store, late)[1]
    assert "rebooted" in row(store, rebooted)[1]


HOLDER = """
import os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
if len(sys.argv) > 2:  # stand in for run 1's worker: claim it (committed), then freeze inside a write
    start = int(open(f"/proc/{os.getpid()}/stat").read().rsplit(")", 1)[1].split()[19])
    conn.execute("UPDATE runs SET status = 'running', pid = ?, pid_start = ?, host_id = ?, host = ?,"
                 " heartbeat_at = datetime('now') WHERE id = 1", (os.getpid(), start, sys.argv[2], os.uname().nodename))
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE runs SET notes = 'held' WHERE id = 1")
print("holding", flush=True)
time.sleep(600)
"""


def test_readers_stay_fast_and_correct_while_another_process_holds_the_write_lock(store, tmp_path, sleeper):
    done = launch.submit(store, load_config_text(PROBE), start=False)
    with store.sql.write() as tx:
        tx.run("UPDATE runs SET status = 'completed', summary = '{\"final_return\": 5.0}' WHERE id = :id", id=done)
    dead = running_row(store, pid=sleeper.pid, pid_start=process_start(sleeper.pid), host_id_value=host_id(),
                       heartbeat_age=0)
    sleeper.kill()  # a dead worker: readers would like to mark it crashed, but must not wait to
    sleeper.wait()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        for args in (["ls", "--json"], ["show", str(done), "--json"], ["export", str(done)], ["db", "current"]):
            start = time.monotonic()
            proc = rltui_cli(*args, db=store.path, timeout=60)
            took = time.monotonic() - start
            assert proc.returncode == 0, (args, proc.stderr)
            # Waiting for the lock would take the 15 s busy timeout; a loaded machine's start-up, seconds.
            assert "locked" not in proc.stderr and took < 12, (args, took, proc.stderr)
            if args[0] == "ls":
                listed = {r["id"]: r for r in json.loads(proc.stdout)}
                assert listed[done]["summary"] == {"final_return": 5.0}
                assert listed[dead]["status"] == "running"  # not marked yet: the lock is taken
            elif args[0] in ("show", "export"):
                assert json.loads(proc.stdout)["summary"] == {"final_return": 5.0}
        start = time.monotonic()
        assert refresh_liveness(store) == []  # tries, finds the lock taken, returns at once
        assert time.monotonic() - start < 1
    finally:
        holder.kill()
        holder.wait()
    assert refresh_liveness(store, kick=False) == [dead]  # the lock is free: marked now


@pytest.mark.slow
def test_a_worker_stopped_inside_its_write_leaves_readers_working_and_a_launch_one_clear_line(store, tmp_path):
    launch.submit(store, load_config_text(PROBE), start=False)
    # A stand-in worker: the run is its, and it is frozen inside its write transaction.
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path), host_id()], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        os.kill(holder.pid, signal.SIGSTOP)
        start = time.monotonic()
        listing = rltui_cli("ls", db=store.path, check=True, timeout=60)
        assert time.monotonic() - start < 12 and "running" in listing.stdout
        config = tmp_path / "probe.toml"
        config.write_text(PROBE)
        proc = rltui_cli("run", str(config), "--detach", db=store.path, timeout=60)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"worker {holder.pid} is stopped" in lines[0] and "kill -CONT" in lines[0]
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()


def test_a_frozen_writer_holding_the_lock_neither_stalls_a_healthy_run_nor_loses_its_data(store):
    """A heartbeat or flush never waits long behind another writer: while a stopped process holds the
    write lock, a real worker's training goes on (its data buffered), and once the lock is free
    every metric arrives, with no "locked" error anywhere."""
    steps = 200
    config = PROBE.replace("steps = 5", f"steps = {steps}").replace("step_seconds = 0.01", "step_seconds = 0.02\nprint_every = 1")
    run_id = launch.submit(store, load_config_text(config))
    deadline = time.monotonic() + 60
    while True:
        with store.sql.read() as tx:
            if tx.scalar("SELECT count(*) FROM metrics WHERE run_id = :id", id=run_id):
                break
        assert time.monotonic() < deadline, "the worker wrote no metric"
        time.sleep(0.02)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        os.kill(holder.pid, signal.SIGSTOP)
        held_from = time.time()
        time.sleep(2.5)
        with store.sql.read() as tx:
            assert tx.scalar("SELECT status FROM runs WHERE id = :id", id=run_id) == "running"
    finally:
        held_to = time.time()
        holder.kill()  # the lock goes with the process
        holder.wait()
    while True:
        with store.sql.read() as tx:
            status = tx.scalar("SELECT status FROM runs WHERE id = :id", id=run_id)
        if status != "running":
            break
        assert time.monotonic() < deadline + 60, "the run did not finish"
        time.sleep(0.05)
    assert status == "completed"
    log = launch.run_log_path(store, run_id).read_text()
    stepped = [float(t) for t in re.findall(r"heartbeat_probe step \d+ t=([\d.]+)", log)]
    during = [t for t in stepped if held_from + 0.5 < t < held_to - 0.2]
    # 0.02 s a step: about 90 steps in that window; a flush waiting for the lock would stall them all.
    assert len(during) >= 20, (len(during), log[-2000:])
    with store.sql.read() as tx:
        counts = tx.all("SELECT step FROM metrics WHERE run_id = :id AND key = 'count' ORDER BY step", id=run_id)
    assert [s for (s,) in counts] == list(range(1, steps + 1))  # every step's metric, once
    assert "locked" not in log and "heartbeat failed" not in log, log[-2000:]


def test_a_foreground_stage_waiting_in_a_process_that_is_gone_is_crashed_and_never_claimed(store, sleeper):
    """A queued run held by its own `rltui run` (a pid on it) is in no worker's queue; once that
    process is gone, a reader marks it crashed instead of leaving it queued for ever."""
    from rltui.runner.scheduler import claimable

    waiting = launch.submit(store, load_config_text(PROBE), start=False)
    with store.sql.write() as tx:
        tx.run("UPDATE runs SET pid = :pid, pid_start = :start, host_id = :hid, host = :host WHERE id = :id",
               pid=sleeper.pid, start=process_start(sleeper.pid), hid=host_id(), host=os.uname().nodename, id=waiting)
    with store.sql.read() as tx:
        assert claimable(tx) == []
    assert launch.queue_positions(store) == {}
    assert refresh_liveness(store, kick=False) == [] and row(store, waiting) == ("queued", None)
    sleeper.kill()
    sleeper.wait()
    assert refresh_liveness(store, kick=False) == [waiting]
    status, error = row(store, waiting)
    assert status == "crashed" and f"process {sleeper.pid}" in error
