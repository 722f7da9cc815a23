"""Picking the device and seeding every random source. torch is imported only when a run uses it,
numpy only when a run starts (the launcher needs neither)."""

from __future__ import annotations

import platform
import random
import sys
from typing import Any


class DeviceError(Exception):
    """The asked-for device is not there; raised at launch, never mid-run."""


def resolve_device(requested: str, uses_torch: bool) -> str:
    """'auto' picks cuda, then mps, then cpu. Tabular runs are plain numpy and always use cpu."""
    if not uses_torch:
        if requested not in ("auto", "cpu"):
            raise DeviceError(f"device {requested!r}: this algorithm runs on numpy; use cpu or auto")
        return "cpu"
    import torch

    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda:0"
        return "mps" if has_mps else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {requested!r}: no CUDA device is available here "
                f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); "
                "use device = \"cpu\" or \"auto\""
            )
        index = int(requested.split(":")[1]) if ":" in requested else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {requested!r}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
        return f"cuda:{index}"
    if requested == "mps" and not has_mps:
        raise DeviceError("device 'mps': Apple's Metal backend is not available here; use cpu")
    return requested


def seed_everything(seed: int, uses_torch: bool) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if uses_torch:
        import torch

        torch.manual_seed(seed)
        # Same config and seed on CPU give identical results.
        torch.use_deterministic_algorithms(True, warn_only=True)


def versions(uses_torch: bool) -> dict[str, Any]:
    import numpy as np

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    if uses_torch:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _main(argv: list[str]) -> int:
    """`python -m rltui.runner.devices DEVICE`: check a torch device in a throwaway process and print
    {"device": resolved} or {"error": message} as JSON (the launcher uses it to stay torch-free)."""
    import json

    try:
        print(json.dumps({"device": resolve_device(argv[0], uses_torch=True)}))
    except DeviceError as exc:
        print(json.dumps({"error": str(exc)}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
