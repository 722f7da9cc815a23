"""Asking a SQLite store's workers to keep off its write lock for a moment.

SQLite's busy handler polls rather than queues: a writer that finds the lock taken sleeps (up to
100 ms) and looks again, and with eight workers writing all the time the lock is almost always taken
when it looks. Two kinds of writer must not wait their turn like that:

  * a WAL checkpoint (runner/wal.py), which needs the store to itself for a moment;
  * a write a person is waiting for: a cancel, a new run, a note (store/sql.SQLiteDatabase.write
    without a bound). Eight cancels under eight writers took 6-26 s to send before this.

Such a writer touches a request file in the store's log folder while it waits; a worker's bounded
write (store/sql.BoundedWrites) sees a fresh request and waits as if the lock were taken, within its
own bound. A request older than STALE_S holds nobody back, so one whose writer died half way costs
the workers a few seconds at most; a writer that waits longer renews its request.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Callable, Iterator

STALE_S = 4.0  # seconds a request holds workers back at most, unless renewed
CHECKPOINT, PERSON = "wal-checkpoint", "person"  # who asks: each has its own file, so one's end leaves the other's


def request_path(path: os.PathLike | str, who: str) -> str:
    return os.path.join(f"{os.fspath(path)}-logs", f"{who}.quiet")  # the store's log folder (launch.log_dir)


def ask(path: os.PathLike | str, who: str, on: bool) -> None:
    """Ask the store's workers to keep off (on: the file's mtime now) or let them go (off: mtime 0)."""
    request = request_path(path, who)
    try:
        if on:
            with open(request, "a"):
                pass
            os.utime(request)
        else:
            os.utime(request, (0, 0))
    except OSError:
        pass  # a log folder we cannot write (a read-only store has no writers to ask): compete for the lock


@contextmanager
def keep_off(path: os.PathLike | str, who: str) -> Iterator[Callable[[], None]]:
    """Workers keep off while inside; yields `renew`, for a wait that may outlast STALE_S."""
    ask(path, who, True)
    try:
        yield lambda: ask(path, who, True)
    finally:
        ask(path, who, False)


def held_back(path: os.PathLike | str | None) -> bool:
    """Whether a fresh request asks the store's workers to keep off right now."""
    if path is None:
        return False
    now = time.time()
    for who in (CHECKPOINT, PERSON):
        try:
            if now - os.stat(request_path(path, who)).st_mtime < STALE_S:
                return True
        except OSError:
            pass
    return False
