"""Who is running where: this host's identity and a process's identity (both cheap, nothing imported).

A host is its machine id plus its boot id, not its hostname: cloud images often share a hostname,
and after a reboot no process of the previous boot is alive, whatever pid it had. A process is its
pid plus its start time (field 22 of /proc/PID/stat, clock ticks since boot), since pids are reused.
"""

from __future__ import annotations

import os
import socket
from functools import cache

MACHINE_ID_FILES = ("/etc/machine-id", "/var/lib/dbus/machine-id")
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def _first_line(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.readline().strip() or None
    except OSError:
        return None


@cache
def host_id() -> str:
    """"MACHINE_ID:BOOT_ID"; the hostname stands in for a part this system does not expose."""
    machine = next((m for m in map(_first_line, MACHINE_ID_FILES) if m), None) or socket.gethostname()
    boot = _first_line(BOOT_ID_FILE) or "no-boot-id"
    return f"{machine}:{boot}"[:100]


def same_machine_other_boot(other: str | None) -> bool:
    """Whether `other` is this machine before a reboot (then none of its processes can be alive)."""
    if not other or ":" not in other:
        return False
    machine, _, boot = other.partition(":")
    mine_machine, _, mine_boot = host_id().partition(":")
    return machine == mine_machine and boot != mine_boot


def hostname() -> str:
    return socket.gethostname()


def process_start(pid: int | None) -> int | None:
    """The start time of process `pid` (clock ticks since boot), or None when there is no such process."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: field 3 (state) is fields[0], so field 22 (starttime) is fields[19].
    try:
        if fields[0] in ("Z", "X"):  # a zombie is dead: it only waits to be reaped
            return None
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_state(pid: int | None) -> str | None:
    """The state letter of `pid` (R, S, D, T for stopped, ...), or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError, TypeError):
        return None


def process_alive(pid: int | None, start: int | None = None) -> bool:
    """Whether `pid` is alive on this host and, when `start` is known, is still the same process."""
    if not pid:
        return False
    if os.path.isdir("/proc/self"):
        now = process_start(pid)
        return now is not None and (start is None or now == start)
    try:  # no /proc (macOS): the pid alone
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
