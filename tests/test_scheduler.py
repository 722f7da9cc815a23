"""The queue's rules with real processes: claiming within a host's slots on SQLite and on a real
PostgreSQL, bounded worker processes under a burst of submits, the pool (`rltui worker`), the
store's URL kept off command lines, and logs kept per store."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rltui.config import load_config_text
from rltui.runner import launch, scheduler
from rltui.runner.hosts import host_id, process_start
from rltui.store import open_store
from tests.conftest import REPO, rltui_cli

PROBE = 'name = "{name}"\nseed = 0\n[env]\nid = "ticker"\n[algo]\nid = "heartbeat_probe"\nsteps = {steps}\nstep_seconds = {step_seconds}\n'


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("RLTUI_HEARTBEAT_INTERVAL", "0.3")
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def probe(name: str = "p", steps: int = 10, step_seconds: float = 0.01):
    return load_config_text(PROBE.format(name=name, steps=steps, step_seconds=step_seconds))


def worker_pids(marker: str) -> list[int]:
    """Live worker processes whose command line names `marker` (a store path), from /proc. A worker's
    own child between fork and exec (a subprocess it runs) shows the same command line for a moment:
    it is not another worker."""
    found = {}
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(path, "rb") as f:
                cmd = f.read()
            with open(path.replace("cmdline", "stat")) as f:
                state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        except OSError:
            continue
        if b"rltui.runner.worker" in cmd and marker.encode() in cmd and state != "Z":
            found[int(path.split("/")[2])] = int(ppid)
    return [pid for pid, ppid in found.items() if ppid not in found]


class Sampler(threading.Thread):
    """The most worker processes of one store seen at once, sampled every few milliseconds."""

    def __init__(self, marker: str) -> None:
        super().__init__(daemon=True)
        self.marker, self.most, self.done = marker, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.most = max(self.most, len(worker_pids(self.marker)))
            time.sleep(0.005)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.most


def statuses(store) -> dict[int, str]:
    with store.sql.read() as tx:
        return dict(tx.all("SELECT id, status FROM runs"))


def wait_all_final(store, ids, timeout: float = 90, poll: float = 0.05) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        current = statuses(store)
        if all(current[i] in ("completed", "failed", "cancelled", "crashed") for i in ids):
            return current
        assert time.monotonic() < deadline, {i: current[i] for i in ids}
        time.sleep(poll)


# --- bounded workers -----------------------------------------------------------------------------
def test_twenty_submits_in_a_loop_leave_at_most_the_slot_count_of_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "2")
    db = tmp_path / "burst.db"
    store = open_store(str(db))
    sampler = Sampler(str(db))
    sampler.start()
    try:
        ids = [launch.submit(store, probe(f"b{i}", steps=8, step_seconds=0.02)) for i in range(20)]
        final = wait_all_final(store, ids)
    finally:
        most = sampler.stop()
        store.dispose()
    assert set(final.values()) == {"completed"}, final
    assert 1 <= most <= 2, f"{most} workers alive at once for 2 slots"


def test_parallel_cli_launches_never_start_more_workers_than_slots(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "2")
    db = tmp_path / "cli.db"
    open_store(str(db)).dispose()
    config = tmp_path / "probe.toml"
    config.write_text(PROBE.format(name="c", steps=8, step_seconds=0.02))
    sampler = Sampler(str(db))
    sampler.start()
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "rltui.cli", "--db", str(db), "run", str(config), "--detach",
                                   "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
                 for _ in range(5)]
        ids = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            ids.append(json.loads(out)["id"])
        store = open_store(str(db))
        try:
            final = wait_all_final(store, ids)
        finally:
            store.dispose()
    finally:
        most = sampler.stop()
    assert set(final.values()) == {"completed"}, final
    assert most <= 2, f"{most} workers alive at once for 2 slots"


def test_a_run_queued_as_the_last_worker_leaves_still_gets_a_worker(tmp_path, monkeypatch):
    """The lost wake-up: a submit that finds the only slot still held by a worker that has just found
    the queue empty, on its way out, must see its run start all the same (the leaving worker takes
    it, or the submit starts a worker once that one is gone). Nobody else looks at the store meanwhile,
    so no reader's kick can rescue a stranded run."""
    monkeypatch.setenv("RLTUI_MAX_RUNS", "1")
    store = open_store(str(tmp_path / "handoff.db"))
    try:
        for i in range(12):
            first = launch.submit(store, probe(f"a{i}", steps=2, step_seconds=0.01))
            wait_all_final(store, [first], timeout=30, poll=0.002)  # its worker now looks for more, and leaves
            second = launch.submit(store, probe(f"b{i}", steps=1, step_seconds=0.0))
            assert wait_all_final(store, [second], timeout=15)[second] == "completed", f"round {i}"
    finally:
        store.dispose()


SLOT_HOLDER = """
import sys, time
from pathlib import Path
from rltui.runner.slots import mark_leaving, mark_slot, take_slot
fd = take_slot(Path(sys.argv[1]), 1)
mark_slot(fd, __import__("os").getpid())
mark_leaving(fd, __import__("os").getpid())
print("leaving", flush=True)
time.sleep(float(sys.argv[2]))
if sys.argv[3] == "stay":
    mark_slot(fd, __import__("os").getpid())
    time.sleep(30)
"""


@pytest.mark.parametrize("then", ["exits", "stays"])
def test_a_slot_marked_leaving_is_waited_for_until_its_worker_exits_or_stays(tmp_path, then):
    """take_slot waits for a held slot whose worker is leaving: it gets the slot once that process has
    gone, and gives up as soon as the worker marks the slot its own again (it drains the queue)."""
    from rltui.runner.slots import take_slot

    holder = subprocess.Popen([sys.executable, "-c", SLOT_HOLDER, str(tmp_path), "0.6", "stay" if then == "stays" else "exit"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "leaving"
        assert take_slot(tmp_path, 1, wait_for_leaving=False) is None  # a reader never waits
        t0 = time.monotonic()
        fd = take_slot(tmp_path, 1)
        waited = time.monotonic() - t0
        if then == "exits":
            assert fd is not None and holder.poll() is not None, "the slot was taken while its worker lived"
            os.close(fd)
        else:
            assert fd is None and holder.poll() is None
        assert 0.3 < waited < 5, waited
    finally:
        holder.kill()
        holder.wait()


# --- claiming: the cap holds, no slot stays idle (SQLite and PostgreSQL) ---------------------------
CLAIMER = """
import os, sys, time
from pathlib import Path
from rltui.store.engine import Store, resolve_url
from rltui.runner.scheduler import claim
from rltui.runner.hosts import process_start
store = Store(resolve_url(None))
sync, me, trials = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
for trial in range(trials):
    while not (sync / f"go-{trial}").exists():
        time.sleep(0.0005)
    got = claim(store, pid=os.getpid(), pid_start=process_start(os.getpid()), log_path_for=lambda r: None)
    (sync / f"tmp-{trial}-{me}").write_text(str(got))
    (sync / f"tmp-{trial}-{me}").rename(sync / f"done-{trial}-{me}")  # seen whole, or not at all
"""


def test_eight_claimers_at_once_never_exceed_a_cap_of_two_and_leave_no_slot_idle(store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "2")
    monkeypatch.setenv("RLTUI_DB", store_url)  # the claimers' store: through the environment
    store = open_store(store_url)
    try:
        for i in range(10):
            launch.submit(store, probe(f"q{i}"), start=False)
        sync = tmp_path / "sync"
        sync.mkdir()
        trials, n = 4, 8
        claimers = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(sync), str(k), str(trials)], cwd=REPO)
                    for k in range(n)]
        try:
            time.sleep(1.5)  # let them all import and spin on the start signal
            for trial in range(trials):
                (sync / f"go-{trial}").touch()
                deadline = time.monotonic() + 60
                while len(list(sync.glob(f"done-{trial}-*"))) < n:
                    assert time.monotonic() < deadline and all(c.poll() in (None, 0) for c in claimers)
                    time.sleep(0.01)
                got = [(sync / f"done-{trial}-{k}").read_text() for k in range(n)]
                claimed = sorted(int(g) for g in got if g != "None")
                with store.sql.read() as tx:
                    running = sorted(r for (r,) in tx.all("SELECT id FROM runs WHERE status = 'running'"))
                assert running == claimed, (running, claimed)
                assert len(claimed) == 2, f"trial {trial}: {len(claimed)} runs claimed for a cap of 2: {got}"
                assert claimed == [1, 2]  # the oldest two, whoever won
                with store.sql.write() as tx:  # next trial: all queued again
                    tx.run("UPDATE runs SET status = 'queued', pid = NULL, pid_start = NULL, host_id = NULL")
            for c in claimers:
                assert c.wait(timeout=30) == 0
        finally:
            for c in claimers:
                if c.poll() is None:
                    c.kill()
                c.wait(timeout=30)
    finally:
        store.dispose()


def test_slots_are_counted_per_host_and_a_row_being_taken_is_skipped(pg_url, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "1")
    store = open_store(pg_url)
    try:
        ids = [launch.submit(store, probe(f"h{i}"), start=False) for i in range(3)]
        with store.sql.write() as tx:  # run 1 runs on another machine that shares our hostname
            tx.run("UPDATE runs SET status = 'running', host = :host, host_id = 'another-machine:boot', pid = 1,"
                   " heartbeat_at = now() WHERE id = :id", host=os.uname().nodename, id=ids[0])
        from sqlalchemy import create_engine, text

        other = create_engine(pg_url)
        with other.connect() as conn, conn.begin():  # a third host is taking run 2 right now
            conn.execute(text("SELECT id FROM runs WHERE id = :id FOR UPDATE"), {"id": ids[1]})
            start = time.monotonic()
            got = scheduler.claim(store, pid=os.getpid(), pid_start=process_start(os.getpid()),
                                  log_path_for=lambda r: None)
            assert time.monotonic() - start < 2, "the claim waited for the other host's row lock"
        other.dispose()
        assert got == ids[2]  # run 1 is not ours to count, run 2 was skipped, not waited for
        with store.sql.read() as tx:
            assert tx.scalar("SELECT host_id FROM runs WHERE id = :id", id=ids[2]) == host_id()
    finally:
        store.dispose()


# --- PostgreSQL: the pool, and the password never on a command line --------------------------------
def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def test_rltui_worker_drains_a_postgresql_store_with_the_password_off_every_command_line(pg_url, pg_server, monkeypatch):
    from pgserver import PASSWORD

    assert PASSWORD in pg_url
    store = open_store(pg_url)
    try:
        ids = [launch.submit(store, probe(f"w{i}", steps=15, step_seconds=0.02), start=False) for i in range(4)]
        monkeypatch.setenv("RLTUI_DB", pg_url)
        started = rltui_cli("worker", "--slots", "2", "--drain", check=True)
        assert PASSWORD not in started.stdout + started.stderr
        pool_pid = int(started.stdout.split()[2])
        seen_workers: set[int] = set()
        most = 0
        deadline = time.monotonic() + 120
        while True:
            with store.sql.read() as tx:
                rows = tx.all("SELECT id, status, pid FROM runs")
            running = [pid for _i, s, pid in rows if s == "running" and pid]
            most = max(most, len([1 for _i, s, _p in rows if s == "running"]))
            for pid in running:
                if pid not in seen_workers:
                    try:
                        assert PASSWORD.encode() not in _cmdline(pid)
                        seen_workers.add(pid)
                    except FileNotFoundError:
                        pass
            try:
                assert PASSWORD.encode() not in _cmdline(pool_pid)
            except FileNotFoundError:
                pass
            if all(s == "completed" for _i, s, _p in rows):
                break
            assert time.monotonic() < deadline, rows
            time.sleep(0.05)
        assert seen_workers, "no worker seen running"
        assert most <= 2
        with store.sql.read() as tx:
            assert {h for (h,) in tx.all("SELECT host_id FROM runs")} == {host_id()}
        deadline = time.monotonic() + 30
        while process_start(pool_pid) is not None:
            assert time.monotonic() < deadline, "the --drain pool did not stop once the queue was empty"
            time.sleep(0.1)
    finally:
        store.dispose()


# --- logs ----------------------------------------------------------------------------------------
def test_two_stores_in_one_folder_keep_their_own_logs(tmp_path, monkeypatch):
    monkeypatch.setenv("RLTUI_MAX_RUNS", "2")
    logs = {}
    for name in ("a", "b"):
        db = tmp_path / f"{name}.db"
        store = open_store(str(db))
        try:
            run_id = launch.submit(store, probe(f"store-{name}", steps=3))
            assert wait_all_final(store, [run_id])[run_id] == "completed"
            shown = json.loads(rltui_cli("show", str(run_id), "--json", db=db, check=True).stdout)
            logs[name] = (run_id, shown["log_path"], shown["log_tail"], shown["pid"])
        finally:
            store.dispose()
    assert logs["a"][0] == logs["b"][0] == 1  # the same run id in both stores...
    assert logs["a"][1] == str(tmp_path / "a.db-logs" / "run-1.log")  # ...and each its own log
    assert logs["b"][1] == str(tmp_path / "b.db-logs" / "run-1.log")
    for name in ("a", "b"):  # `show` prints the log of its own store's run 1: its worker's lines
        _run_id, path, tail, pid = logs[name]
        assert f"rltui worker {pid} " in tail and Path(path).read_text().count("rltui worker ") == 2
    assert logs["a"][3] != logs["b"][3]
