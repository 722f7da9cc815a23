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
    wal._set_quiet(store.path, True)
    assert wal.hold_back(store.path)
    started = time.monotonic()
    with pytest.raises(WriteLockBusy):
        with writes.attempt(200) as tx:
            tx.run("UPDATE runs SET name = 'x' WHERE id = -1")
    assert 0.18 <= time.monotonic() - started < 1.0  # it waited its own bound, no more
    assert writes.busy_since is not None

    wal._set_quiet(store.path, False)  # the checkpoint is over
    with writes.attempt(200) as tx:
        tx.run("UPDATE runs SET name = 'x' WHERE id = -1")

    wal._set_quiet(store.path, True)
    old = time.time() - wal.QUIET_S - 1  # a checkpointer that died half way, seconds ago
    os.utime(wal._quiet_path(store.path), (old, old))
    assert not wal.hold_back(store.path)
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
    assert not wal.hold_back(store.path)  # the quiet request ended with the checkpoint
