"""Worker slots on this host, as flock'ed files: a worker process exists only while it holds one.

The store's own count (running runs per host) bounds runs; these files bound *processes*, those
still starting included: a launcher takes a free slot file before it spawns a worker and hands the
locked file to the child (an inherited descriptor keeps the lock), so however many launchers spawn
at once, this host never has more workers for a store than slot files. The kernel drops the lock
when the worker exits, however it exits.

    slot = take_slot(folder, n)     # an fd holding slot-K's lock, or None when all n are taken
    proc = spawn(..., pass_fds=(slot,)); mark_slot(slot, proc.pid); os.close(slot)

The kernel releases a dying process's locks a moment before the process is gone (it closes its
files first), so each slot file names its worker's pid: a slot whose last worker is still exiting
is taken only once that process has gone.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

from rltui.runner.hosts import host_id, process_start

EXIT_WAIT = 0.5  # s: how long a free slot waits for its last worker to finish exiting


def slot_folder(logs: Path) -> Path:
    return logs / "slots"


def _prefix() -> str:
    return hashlib.blake2b(host_id().encode(), digest_size=6).hexdigest()


def take_slot(folder: Path, n: int) -> int | None:
    """Lock one of this host's `n` slot files without waiting; its descriptor, or None if all are held."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    prefix = _prefix()
    for k in range(max(0, n)):
        fd = os.open(folder / f"{prefix}-{k}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if _last_worker_gone(fd):
            return fd
        os.close(fd)
    return None


def mark_slot(fd: int, pid: int) -> None:
    """Name the worker that holds this slot (see _last_worker_gone)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid} {process_start(pid) or 0}\n".encode(), 0)


def _last_worker_gone(fd: int) -> bool:
    try:
        pid, start = (int(v) for v in os.pread(fd, 64, 0).split())
    except ValueError:
        return True  # never marked
    deadline = time.monotonic() + EXIT_WAIT
    while process_start(pid) == start:  # still exiting (a zombie counts as gone)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
