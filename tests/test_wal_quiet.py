"""A WAL checkpoint past WAL_URGENT asks the store's workers to keep off for its attempt: their
bounded writes wait (within their own bound) while the quiet file is fresh, and a stale one (a
checkpoint that died half way) holds nobody back. Real SQLite files, a real second process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rltui.runner import wal
from rltui.store import quiet
from rltui.runner.execute import worker_writes
from rltui.store import open_store
from rltui.store.sql import WriteLockBusy
from tests.conftest import REPO


@pytest.fixture
def store(tmp_path):
    s = open_store(str(tmp_path / "lab.db"))
    (tmp_path / "lab.db-logs").mkdir(exist_ok=True)
    yield s
    s.dispose()


def test_workers_keep_off_while_a_checkpoint_asks_and_go_on_once_it_is_done_or_stale(store):
    writes = worker_writes(store, run_id=1)
    quiet.ask(store.path, quiet.CHECKPOINT, True)
    assert quiet.held_back(store.path)
    started = time.monotonic()
    with pytest.raises(WriteLockBusy):
        with writes.attempt(200) as tx:
            tx.run("UPDATE runs SET name = 'x' WHERE id = -1")
    assert 0.18 <= time.monotonic() - started < 1.0  # it waited its own bound, no more
    assert writes.busy_since is not None

    quiet.ask(store.path, quiet.CHECKPOINT, False)  # the checkpoint is over
    with writes.attempt(200) as tx:
        tx.run("UPDATE runs SET name = 'x' WHERE id = -1")

    quiet.ask(store.path, quiet.CHECKPOINT, True)
    old = time.time() - quiet.STALE_S - 1  # a checkpointer that died half way, seconds ago
    os.utime(quiet.request_path(store.path, quiet.CHECKPOINT), (old, old))
    assert not quiet.held_back(store.path)
    with writes.attempt(200) as tx:
        tx.run("UPDATE runs SET name = 'x' WHERE id = -1")


def test_an_urgent_checkpoint_truncates_the_wal_and_lets_writers_go(store, tmp_path):
    # Grow the WAL past WAL_URGENT while a reader in another process pins it, then let go.
    with store.sql.write() as tx:
        tx.run("CREATE TABLE filler (b BLOB)")
    reader = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(store.path)!r}, isolation_level=None)\n"
         "c.execute('BEGIN'); c.execute('SELECT count(*) FROM runs').fetchone()\n"
         "print('pinned', flush=True); sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert reader.stdout.readline().strip() == "pinned"
    chunk = os.urandom(1 << 20)
    for _ in range(wal.WAL_URGENT // (1 << 20) + 4):
        with store.sql.write() as tx:
            tx.run("INSERT INTO filler VALUES (:b)", b=chunk)
    assert wal.wal_size(store.path) > wal.WAL_URGENT
    reader.stdin.write("\n")
    reader.stdin.flush()
    reader.wait(timeout=10)
    turn = tmp_path / "lab.db-logs" / "wal-checkpoint.turn"
    turn.touch()
    os.utime(turn, (0, 0))  # nobody tried lately: this process's turn
    wal._last_look = 0.0
    wal.keep_wal_small(store)
    assert wal.wal_size(store.path) == 0
    assert not quiet.held_back(store.path)  # the quiet request ended with the checkpoint


def _hold_write_lock(path):
    """A second process in BEGIN IMMEDIATE until a line comes on its stdin."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE'); print('holding', flush=True); sys.stdin.readline(); c.execute('COMMIT')\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def _release(holder):
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=10)


def test_a_write_someone_waits_for_asks_the_workers_to_keep_off_until_it_has_the_lock(store):
    """`rltui cancel`, a new run, a note: such a write that finds the lock taken asks the workers to keep
    off while it waits (renewing the request past STALE_S), so it goes next; once it has the lock the
    request ends. A worker's bounded write meanwhile holds back even between the holders' transactions."""
    import threading

    holder = _hold_write_lock(store.path)
    done = threading.Event()

    def cancel_like():
        with store.sql.write() as tx:
            tx.run("UPDATE runs SET name = 'asked' WHERE id = -1")
        done.set()

    thread = threading.Thread(target=cancel_like)
    thread.start()
    try:
        deadline = time.monotonic() + 3
        while not quiet.held_back(store.path) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert quiet.held_back(store.path) and not done.is_set()
        time.sleep(quiet.STALE_S + 0.5)  # a long wait renews its request
        assert quiet.held_back(store.path) and not done.is_set()
        writes = worker_writes(store, run_id=1)
        with pytest.raises(WriteLockBusy):  # a worker keeps off
            with writes.attempt(100) as tx:
                tx.run("UPDATE runs SET name = 'x' WHERE id = -1")
    finally:
        _release(holder)
    thread.join(timeout=5)
    assert done.is_set() and not quiet.held_back(store.path)
    with writes.attempt(200) as tx:  # and goes on once it is done
        tx.run("UPDATE runs SET name = 'x' WHERE id = -1")


def test_a_write_someone_waits_for_still_fails_as_locked_after_the_busy_timeout(store, monkeypatch):
    import sqlite3

    from rltui.store import sql

    monkeypatch.setattr(sql, "SQLITE_TIMEOUT", 2.0)  # the store's 15 s, shortened for the test
    holder = _hold_write_lock(store.path)
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="database is locked") as raised:
            with store.sql.write() as tx:
                tx.run("UPDATE runs SET name = 'x' WHERE id = -1")
        assert not isinstance(raised.value, WriteLockBusy)  # SQLite's own error, as before: callers say it in one line
        assert 1.8 <= time.monotonic() - started < 4.0
        assert not quiet.held_back(store.path)
    finally:
        _release(holder)


def test_an_orm_write_asks_the_workers_to_keep_off_while_it_lasts(store):
    from rltui.store.models import Run

    with store.write() as session:
        assert quiet.held_back(store.path)
        session.get(Run, 1)
    assert not quiet.held_back(store.path)
