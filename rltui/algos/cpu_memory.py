"""Keep a training process's freed memory for its next update instead of handing it back to the kernel.

An update allocates the same large tensors every time (SAC's and TD3's activations and gradients:
256 × 400 floats, 400 KB, and their stacked pairs). glibc's malloc serves blocks that size with a fresh
mmap or returns the top of its heap to the kernel once freed, so every update faults the same pages in
again, zeroed by the kernel: ~240 page faults per TD3 update on Pendulum under autograd, ~0.5–0.8 ms
of its 7–9 ms, and ~100 with the gradients written out (rltui/algos/backprop.py). With a higher mmap
threshold and trim threshold the blocks are reused from the heap (0–7 faults per update). The price is
that a process keeps its peak heap until it exits: TD3's peak resident memory on Pendulum rose by 1–2 MB
(332 → 333–334 MB).

Linux with glibc only; elsewhere (musl, macOS, Windows) the allocator is left as it is.
"""

from __future__ import annotations

import ctypes
import functools
import sys

# mallopt's parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 64 * 2**20   # blocks above this (a replay buffer) still get their own mapping
TRIM_THRESHOLD = 256 * 2**20  # free heap kept before any is returned to the kernel
TOP_PAD = 16 * 2**20          # grow the heap in steps of this much, not page by page


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc's malloc for a training loop (see the module's docstring), once per process.
    Returns whether it was applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library already loaded into this process
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in
               ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
