"""Snapshots of every screen at 80x24 and 160x48 (pytest-textual-snapshot).

The store is the deterministic demo store (fixed timestamps, simulated wall clock), the app's clock
is frozen and polling is off, so the pictures only change when the UI does. Update them with
`pytest tests/test_tui_snapshots.py --snapshot-update` and look at snapshot_report.html.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rltui.store.models import Episode
from test_tui_common import demo_store, make_app, settle, test_registry  # noqa: F401 — fixtures

SIZES = [(80, 24), (160, 48)]


def _app(store):
    return make_app(store, poll_interval=3600)


def _episode(store, run_id: int, phase: str = "eval") -> int:
    with store.read() as s:
        return s.scalar(select(Episode.id).where(Episode.run_id == run_id, Episode.phase == phase))


async def _open(pilot, screen) -> None:
    await settle(pilot)
    pilot.app.push_screen(screen)
    await settle_fully(pilot)


async def settle_fully(pilot, most: int = 20) -> None:
    """Settle until no worker is left: loading data starts draw workers, and a draw can start a redraw
    (a resize), so a fixed number of rounds is not enough on a busy machine."""
    await settle(pilot, 3)
    for _ in range(most):
        if not any(w.is_running for w in pilot.app.workers):
            await pilot.pause()
            if not any(w.is_running for w in pilot.app.workers):
                return
        await settle(pilot)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_runs(snap_compare, demo_store, size):
    async def before(pilot):
        await settle(pilot, 2)

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_run_plots(snap_compare, demo_store, size):
    from rltui.tui.screens.run import RunScreen

    async def before(pilot):
        await _open(pilot, RunScreen(demo_store.demo_ids["q0"]))

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_run_values(snap_compare, demo_store, size):
    from rltui.tui.screens.run import RunScreen

    async def before(pilot):
        await _open(pilot, RunScreen(demo_store.demo_ids["vi"]))
        await pilot.press("2", "left_square_bracket", "left_square_bracket")
        await settle_fully(pilot)

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_new_run(snap_compare, demo_store, test_registry, size):
    from rltui.tui.screens.new_run import NewRunScreen

    async def before(pilot):
        await _open(pilot, NewRunScreen(initial={"env": {"id": "maze"}, "algo": {"id": "q_learning", "alpha": 1.5}}))

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_compare(snap_compare, demo_store, size):
    from rltui.tui.screens.compare import CompareScreen

    ids = demo_store.demo_ids

    async def before(pilot):
        await _open(pilot, CompareScreen([ids["q0"], ids["q1"], ids["q2"], ids["q_fast"]]))

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_replay_grid(snap_compare, demo_store, size):
    from rltui.tui.screens.replay import ReplayScreen

    ids = demo_store.demo_ids

    async def before(pilot):
        await _open(pilot, ReplayScreen(ids["vi"], _episode(demo_store, ids["vi"])))
        await pilot.press("right", "right")
        await settle_fully(pilot)

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_replay_cartpole(snap_compare, demo_store, size):
    from rltui.tui.screens.replay import ReplayScreen

    ids = demo_store.demo_ids

    async def before(pilot):
        await _open(pilot, ReplayScreen(ids["ppo"], _episode(demo_store, ids["ppo"])))
        await pilot.press(*["right"] * 30)
        await settle_fully(pilot)

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_replay_tokens(snap_compare, demo_store, size):
    from rltui.tui.screens.replay import ReplayScreen

    ids = demo_store.demo_ids

    async def before(pilot):
        await _open(pilot, ReplayScreen(ids["lm"], _episode(demo_store, ids["lm"])))
        await pilot.press(*["right"] * 5)
        await settle_fully(pilot)

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_snapshot_help(snap_compare, demo_store, size):
    async def before(pilot):
        await settle_fully(pilot)
        await pilot.press("question_mark")
        await settle_fully(pilot)

    assert snap_compare(_app(demo_store), terminal_size=size, run_before=before)
