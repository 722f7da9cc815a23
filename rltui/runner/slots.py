"""Worker slots on this host, as flock'ed files: a worker process exists only while it holds one.

The store's own count (running runs per host) bounds runs; these files bound *processes*, those
still starting included: a launcher takes a free slot file before it spawns a worker and hands the
locked file to the child (an inherited descriptor keeps the lock), so however many launchers spawn
at once, this host never has more workers for a store than slot files. The kernel drops the lock
when the worker exits, however it exits.

    slot = take_slot(folder, n)     # an fd holding slot-K's lock, or None when all n are taken
    spawn(..., pass_fds=(slot,)); os.close(slot)
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path

from rltui.runner.hosts import host_id


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
        return fd
    return None


def slots_held(folder: Path, n: int) -> int:
    """How many of this host's `n` slot files are held right now (by live workers)."""
    fd = take_slot(folder, n)
    held = 0
    taken = []
    while fd is not None:
        taken.append(fd)
        fd = take_slot(folder, n)
    held = n - len(taken)
    for fd in taken:
        os.close(fd)
    return held
