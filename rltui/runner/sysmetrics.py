"""System metrics of a run's own process, sampled on the worker's heartbeat as `sys/*` metrics.

Read from /proc (Linux; elsewhere nothing is logged), so no psutil: two small files per beat.
- `sys/cpu_percent`: CPU time used since the last beat over the wall time elapsed, in percent of
  one core (as top shows it: 400 is four busy cores);
- `sys/rss_mb`: resident memory in MiB;
- on cuda, and only when the run already loaded torch and initialised CUDA: `sys/gpu_util_percent`
  (torch.cuda.utilization, when NVML is there to answer), `sys/gpu_mem_mb` (memory allocated by
  tensors) and `sys/gpu_reserved_mb` (held by the caching allocator).

The step of a sample is the whole seconds since the run started, so `sys/*` plots read as time.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from typing import Any

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MIB = 1024 * 1024


def cpu_seconds(pid: int | str = "self") -> float | None:
    """User + system CPU seconds of a process, from /proc/PID/stat (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime (fields 14 and 15)


def rss_bytes(pid: int | str = "self") -> int | None:
    """Resident set size, from /proc/PID/statm (its second field, in pages)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def cuda_figures(cuda: Any = None) -> dict[str, float]:
    """GPU figures for this process, only if it already uses torch on cuda (never imports torch).

    `cuda` is the torch.cuda to read: by default that of the torch this process loaded (tests
    hand in a reading of their own where no GPU is)."""
    if cuda is None:
        torch = sys.modules.get("torch")
        if torch is None:
            return {}
        cuda = torch.cuda
    if not cuda.is_available() or not cuda.is_initialized():
        return {}
    out: dict[str, float] = {}
    try:
        device = cuda.current_device()
        out["sys/gpu_mem_mb"] = cuda.memory_allocated(device) / MIB
        out["sys/gpu_reserved_mb"] = cuda.memory_reserved(device) / MIB
    except Exception:  # noqa: BLE001 — a sampler must never break a run
        return out
    try:
        out["sys/gpu_util_percent"] = float(cuda.utilization(device))
    except Exception:  # noqa: BLE001 — NVML (pynvml) missing or not answering: no utilisation figure
        pass
    return out


class SystemSampler:
    """Samples this process at each call; the first call only sets the CPU clock going."""

    def __init__(self, cuda: Any = None) -> None:
        self._last: tuple[float, float] | None = None  # (monotonic wall, cpu seconds)
        self.cuda = cuda  # the torch.cuda to read (None: the run's own, if it loaded torch)

    def sample(self) -> dict[str, float]:
        now, cpu = time.monotonic(), cpu_seconds()
        out: dict[str, float] = {}
        if cpu is not None:
            if self._last is not None and now > self._last[0]:
                out["sys/cpu_percent"] = 100.0 * (cpu - self._last[1]) / (now - self._last[0])
            self._last = (now, cpu)
        rss = rss_bytes()
        if rss is not None:
            out["sys/rss_mb"] = rss / MIB
        out.update(cuda_figures(self.cuda))
        return out

    def log_to(self, recorder: Any) -> None:
        """One sample into the run's metrics (what the heartbeat calls); never raises."""
        try:
            figures = self.sample()
            if figures:
                recorder.log(int(recorder.wall_time()), **figures)
        except Exception as exc:  # noqa: BLE001 — a missed sample must not kill the heartbeat
            print(f"rltui worker: system sample failed: {exc}", file=sys.stderr, flush=True)


_SAMPLERS: "weakref.WeakKeyDictionary[Any, SystemSampler]" = weakref.WeakKeyDictionary()


def log_sample(recorder: Any) -> None:
    """The heartbeat's one call: a sample of this process into `recorder`'s run (a sampler per run)."""
    sampler = _SAMPLERS.get(recorder)
    if sampler is None:
        sampler = _SAMPLERS[recorder] = SystemSampler()
    sampler.log_to(recorder)


def header_text(latest: dict[str, float]) -> str:
    """The run header's system line from the latest `sys/*` values: "CPU 98% · RSS 412 MB · GPU 40% 1.2 GB"."""
    parts = []
    if "sys/cpu_percent" in latest:
        parts.append(f"CPU {latest['sys/cpu_percent']:.0f}%")
    if "sys/rss_mb" in latest:
        parts.append(f"RSS {_mb(latest['sys/rss_mb'])}")
    gpu = []
    if "sys/gpu_util_percent" in latest:
        gpu.append(f"{latest['sys/gpu_util_percent']:.0f}%")
    if "sys/gpu_mem_mb" in latest:
        gpu.append(_mb(latest["sys/gpu_mem_mb"]))
    if gpu:
        parts.append("GPU " + " ".join(gpu))
    return " · ".join(parts)


def _mb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"
