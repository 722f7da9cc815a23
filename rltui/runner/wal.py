"""Keeping a SQLite store's write-ahead log small while many runs write (workers call this).

SQLite's automatic checkpoints are PASSIVE: they copy what they can, but the log file restarts from
its beginning only once no reader still uses an old snapshot. With eight writers and readers polling
all the time, that moment may never come by chance and the WAL grows for as long as the runs last
(706 MB in 5 minutes). So a worker now and then, when the file has grown past WAL_LIMIT, asks for a
TRUNCATE checkpoint: it waits a moment (CHECKPOINT_WAIT_MS, not the store's busy timeout; longer
past WAL_URGENT) for the readers of old snapshots to finish, copies every frame back and empties the
log. If it cannot, it simply tries again half a second later; it never fails a run.

While a TRUNCATE checkpoint waits for readers it holds writers back, so only one process of a
store tries at a time, and GAP_S apart (a lock file in the store's log folder): a writer waits for
at most one attempt (its own waits are bounded too: runner/execute.py).

Past WAL_URGENT the checkpoint also asks the store's workers to keep off for that attempt
(store/quiet.py): with eight writers queued for the lock all the time, SQLite's busy handler, which
polls rather than queues, would otherwise rarely hand it to the checkpoint (the WAL reached 456 MB in
5 minutes of bench_load).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from typing import Any

from rltui.store import quiet

WAL_LIMIT = 16 * 1024 * 1024  # bytes: past this a worker truncates the log
WAL_URGENT = 48 * 1024 * 1024  # past this it waits longer for the readers
CHECK_EVERY = 0.5  # seconds between looks, per process
GAP_S = 0.5  # seconds between two processes' attempts on one store
WAL_CRITICAL = 96 * 1024 * 1024  # past this it waits longer still: readers starved of CPU hold old snapshots
CHECKPOINT_WAIT_MS = 250
URGENT_WAIT_MS = 1000
CRITICAL_WAIT_MS = 3000

_last_look = 0.0
_lock = threading.Lock()


def wal_size(path: os.PathLike | str) -> int:
    try:
        return os.stat(f"{os.fspath(path)}-wal").st_size
    except OSError:
        return 0


def checkpoint(path: os.PathLike | str, mode: str = "TRUNCATE", wait_ms: int = CHECKPOINT_WAIT_MS) -> tuple[int, int, int] | None:
    """PRAGMA wal_checkpoint(mode) on a connection of its own: (busy, log frames, checkpointed), or
    None if the store was too busy to even start."""
    conn = sqlite3.connect(os.fspath(path), timeout=wait_ms / 1000, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout={int(wait_ms)}")
        return tuple(conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone())  # type: ignore[return-value]
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()


def keep_wal_small(store: Any) -> None:
    """Truncate the store's WAL if it has grown past WAL_LIMIT (looks at most every CHECK_EVERY s)."""
    global _last_look
    path = getattr(store, "path", None)
    if path is None:
        return
    now = time.monotonic()
    with _lock:
        if now - _last_look < CHECK_EVERY:
            return
        _last_look = now
    size = wal_size(path)
    if size <= WAL_LIMIT:
        return
    turn = _take_turn(path)
    if turn is None:
        return  # another process of this store is trying, or just tried
    urgent = size > WAL_URGENT
    watch = _LockWatch(path) if os.environ.get("RLTUI_DEBUG_WAL") else None
    try:
        started = time.monotonic()
        if urgent:
            quiet.ask(path, quiet.CHECKPOINT, True)
        wait_ms = CHECKPOINT_WAIT_MS if not urgent else URGENT_WAIT_MS if size <= WAL_CRITICAL else CRITICAL_WAIT_MS
        result = checkpoint(path, wait_ms=wait_ms)
        os.utime(turn)
    finally:
        if urgent:
            quiet.ask(path, quiet.CHECKPOINT, False)
        os.close(turn)
    if watch is not None:
        held = watch.stop()
        held = held if result is None or result[0] else ""
        print(f"rltui wal: {time.time():.1f} pid {os.getpid()} {size / 2**20:.0f} MB, checkpoint {result} in {time.monotonic() - started:.2f} s, "
              f"now {wal_size(path) / 2**20:.0f} MB{held}", flush=True)


class _LockWatch:
    """RLTUI_DEBUG_WAL only: who holds the WAL's write lock or a read mark while a checkpoint waits.

    SQLite's unix VFS takes them as POSIX locks on bytes of the -shm file (120: the write lock,
    123 + i: read mark i), which /proc/locks lists with the holder's pid. Read mark 0 (a reader of the
    database file alone) never holds a checkpoint up, so it is not listed."""

    NAMES = {120: "write", 121: "ckpt", 122: "recover", 124: "read1", 125: "read2", 126: "read3", 127: "read4"}

    def __init__(self, path: os.PathLike | str) -> None:
        try:
            self.inode = f":{os.stat(f'{os.fspath(path)}-shm').st_ino} "
        except OSError:
            self.inode = None
        self.seen: dict[tuple[int, str], int] = {}  # (pid, lock) -> samples held
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        me = os.getpid()
        while self.inode and not self.done.wait(0.02):
            try:
                lines = open("/proc/locks").read().splitlines()
            except OSError:
                return
            for line in lines:
                if self.inode not in line + " ":
                    continue
                parts = line.split()
                if parts[1] == "->":  # a waiter
                    continue
                pid, start, end = int(parts[4]), int(parts[6]), parts[7]
                last = 127 if end == "EOF" else int(end)
                for byte in range(start, last + 1):
                    name = self.NAMES.get(byte)
                    if name and pid != me:
                        self.seen[(pid, name)] = self.seen.get((pid, name), 0) + 1

    def stop(self) -> str:
        self.done.set()
        self.thread.join()
        out = []
        for (pid, name), n in sorted(self.seen.items(), key=lambda kv: -kv[1]):
            try:
                cmd = open(f"/proc/{pid}/cmdline").read().replace("\0", " ").strip()[-60:]
            except OSError:
                cmd = "gone"
            out.append(f"{pid}:{name}x{n}({cmd})")
        return "; held: " + ", ".join(out[:8]) if out else "; held: nothing seen"


def _take_turn(path: os.PathLike | str) -> int | None:
    """A locked descriptor of the store's checkpoint turn file, if it is this process's turn: nobody
    else holds it and the last attempt ended GAP_S ago or more; else None."""
    folder = f"{os.fspath(path)}-logs"  # the store's log folder (launch.log_dir)
    try:
        fd = os.open(os.path.join(folder, "wal-checkpoint.turn"), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if time.time() - os.fstat(fd).st_mtime >= GAP_S:
            return fd
    except OSError:
        pass
    os.close(fd)
    return None
