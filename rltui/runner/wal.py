"""Keeping a SQLite store's write-ahead log small while many runs write (workers call this).

SQLite's automatic checkpoints are PASSIVE: they copy what they can, but the log file restarts from
its beginning only once no reader still uses an old snapshot. With eight writers and readers polling
all the time, that moment may never come by chance and the WAL grows for as long as the runs last
(706 MB in 5 minutes). So a worker now and then, when the file has grown past WAL_LIMIT, asks for a
TRUNCATE checkpoint: it waits a moment (CHECKPOINT_WAIT_MS, not the store's busy timeout; longer
past WAL_URGENT) for the readers of old snapshots to finish, copies every frame back and empties the
log. If it cannot, it simply tries again a second later; it never fails a run.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any

WAL_LIMIT = 32 * 1024 * 1024  # bytes: past this a worker truncates the log
WAL_URGENT = 96 * 1024 * 1024  # past this it waits longer for the readers, holding writers back a moment
CHECK_EVERY = 1.0  # seconds between looks, per process
CHECKPOINT_WAIT_MS = 250
URGENT_WAIT_MS = 4000

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
    if size > WAL_LIMIT:
        result = checkpoint(path, wait_ms=URGENT_WAIT_MS if size > WAL_URGENT else CHECKPOINT_WAIT_MS)
        if os.environ.get("RLTUI_DEBUG_WAL"):
            print(f"rltui wal: {size / 2**20:.0f} MB, checkpoint {result}, now {wal_size(path) / 2**20:.0f} MB", flush=True)
