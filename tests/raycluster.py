"""A real two-node Ray cluster on this machine, for tests and bench_sweep.py.

`ray start --head` and `ray start --address` on 127.0.0.1, each in its own session and temp dir, with
token authentication (Ray 2.60 wants RAY_AUTH_MODE=token on every node of a multi-node cluster) and
usage stats off. A node is stopped by killing its own process group (its raylet and agents; its
task workers exit with their raylet), so teardown ends exactly the processes started here, never
another cluster's (`ray stop` would stop every Ray process on the machine).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_bin() -> str:
    return str(Path(sys.executable).with_name("ray"))


class TwoNodeRay:
    def __init__(self, cpus_per_node: int = 2) -> None:
        self.cpus = cpus_per_node
        self.root = Path(tempfile.mkdtemp(prefix="rltui-ray-"))
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(32),
            # Notice a dead node in seconds, not the default half minute.
            "RAY_health_check_period_ms": "2000",
            "RAY_health_check_timeout_ms": "2000",
            "RAY_health_check_failure_threshold": "5",
        }
        self.groups: dict[str, int] = {}  # node name → its process group

    def _start(self, name: str, *args: str, attempts: int = 3) -> None:
        """`ray start` for one node, in its own session. Ray gives a node 30 s to register with the
        GCS; on a loaded machine that can run out, so a failed attempt's processes are killed and it
        is tried again."""
        for attempt in range(1, attempts + 1):
            temp = self.root / f"{name}-{attempt}"
            temp.mkdir()
            proc = subprocess.Popen(
                [_ray_bin(), "start", *args, "--node-ip-address", "127.0.0.1", "--num-cpus", str(self.cpus),
                 "--temp-dir", str(temp), "--disable-usage-stats"],
                env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True,
            )
            out, _ = proc.communicate(timeout=180)
            if proc.returncode == 0:
                self.groups[name] = proc.pid  # the node's daemons stay in the group `ray start` led
                return
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if attempt == attempts:
                raise RuntimeError(f"ray start {name} failed {attempts} times; the last:\n{out[-3000:]}")

    def start(self) -> TwoNodeRay:
        try:
            self._start("head", "--head", "--port", str(self.port), "--include-dashboard", "false")
            self._start("worker", "--address", self.address)
        except BaseException:
            self.stop()
            raise
        return self

    def members(self, name: str) -> list[int]:
        group = self.groups.get(name)
        out = []
        for pid in _pids():
            try:
                if os.getpgid(pid) == group:
                    out.append(pid)
            except (ProcessLookupError, PermissionError):
                continue
        return out

    def raylet_pid(self, name: str) -> int | None:
        for pid in self.members(name):
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
            except OSError:
                continue
        return None

    def kill_node(self, name: str) -> None:
        group = self.groups.pop(name, None)
        if group is None:
            return
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for name in ("worker", "head"):
            self.kill_node(name)
        time.sleep(0.5)


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
