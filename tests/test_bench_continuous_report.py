"""bench/bench_continuous.py's report: the issue's goal (every seed of ours solves; ours' median time to
solve within 0.7x SB3's) on each block of five seeds of a larger run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from bench_continuous import five_seed_blocks  # noqa: E402


def rows(ours: list[float | None], sb3: list[float]) -> dict[str, list[dict]]:
    return {"ours": [{"seed": s, "solved_cpu": t} for s, t in enumerate(ours)],
            "sb3": [{"seed": s, "solved_cpu": t} for s, t in enumerate(sb3)]}


def test_each_block_of_five_seeds_is_judged_on_its_own():
    sb3 = [10.0] * 10
    ours = [5.0, 5.0, 6.0, 9.0, 9.0,   # median 6.0 -> 0.6x
            5.0, 8.0, 8.0, 8.0, 5.0]   # median 8.0 -> 0.8x
    assert five_seed_blocks(rows(ours, sb3)) == "seeds 0-4 0.600x MET; seeds 5-9 0.800x NOT MET"


def test_a_seed_that_never_solves_fails_its_block_whatever_the_median():
    ours = [5.0, 5.0, 5.0, 5.0, None, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert five_seed_blocks(rows(ours, [10.0] * 10)) == "seeds 0-4 0.500x NOT MET; seeds 5-9 0.500x MET"


def test_under_ten_seeds_or_a_partial_block_adds_nothing():
    assert five_seed_blocks(rows([5.0] * 9, [10.0] * 9)) == ""
    assert five_seed_blocks(rows([5.0] * 12, [10.0] * 12)).count("seeds") == 2  # 10-11 is not a block
