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

A worker that finds the queue empty is about to leave, still holding its slot, and a run queued in
that moment would find every slot held and nobody left to start it (a lost wake-up). So a leaving
worker first marks its slot `leaving`, then looks at the queue once more:

    worker:   claim → nothing;  mark_leaving(slot);  claim → a run? mark_slot(slot) and run it : exit
    launcher: queue a run;      take_slot(...)       — a held slot marked leaving: wait for it

A launcher that read the mark before it was written queued its run before the worker's second look,
which therefore sees that run; one that reads `leaving` waits until that worker has gone (and takes
its slot) or has marked the slot its own again (it stays, and drains the queue).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

from rltui.runner.hosts import host_id, process_start

EXIT_WAIT = 0.5  # s: how long a free slot waits for its last worker to finish exiting
LEAVE_WAIT = 10.0  # s: how long a launcher waits for a worker that marked its slot leaving
LEAVING = "leaving"


def slot_folder(logs: Path) -> Path:
    return logs / "slots"


def _prefix() -> str:
    return hashlib.blake2b(host_id().encode(), digest_size=6).hexdigest()


def take_slot(folder: Path, n: int, wait_for_leaving: bool = True) -> int | None:
    """Lock one of this host's `n` slot files; its descriptor, or None if all are held. A held slot
    whose worker is leaving is waited for (up to LEAVE_WAIT) unless `wait_for_leaving` is False."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    prefix = _prefix()
    leaving = []
    for k in range(max(0, n)):
        fd = os.open(folder / f"{prefix}-{k}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if _try_lock(fd):
            return fd
        if _is_leaving(fd):
            leaving.append(fd)
        else:
            os.close(fd)
    deadline = time.monotonic() + LEAVE_WAIT
    try:
        while leaving and wait_for_leaving and time.monotonic() < deadline:
            time.sleep(0.005)
            for fd in list(leaving):
                if _try_lock(fd):
                    leaving.remove(fd)
                    return fd
                if not _is_leaving(fd):  # it took a run after all: it stays and drains the queue
                    leaving.remove(fd)
                    os.close(fd)
        return None
    finally:
        for fd in leaving:
            os.close(fd)


def _try_lock(fd: int) -> bool:
    """Lock a slot file without waiting, if its last worker has gone (a free lock whose worker is
    still exiting is let go again)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    if _last_worker_gone(fd):
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def mark_slot(fd: int, pid: int) -> None:
    """Name the worker that holds this slot (see _last_worker_gone)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid} {process_start(pid) or 0}\n".encode(), 0)


def mark_leaving(fd: int, pid: int) -> None:
    """The worker holding this slot found nothing to claim and looks once more before it exits."""
    os.pwrite(fd, f"{pid} {process_start(pid) or 0} {LEAVING}\n".encode(), 0)  # one write: never seen half done


def _is_leaving(fd: int) -> bool:
    return os.pread(fd, 64, 0).split()[2:3] == [LEAVING.encode()]


def _last_worker_gone(fd: int) -> bool:
    try:
        pid, start = (int(v) for v in os.pread(fd, 64, 0).split()[:2])
    except ValueError:
        return True  # never marked
    deadline = time.monotonic() + EXIT_WAIT
    while process_start(pid) == start:  # still exiting (a zombie counts as gone)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True
