"""The lab's Sweeps screens with real Textual pilots over a store holding a real (tiny) sweep: the
list, a sweep's trials ranked by objective, a plot per parameter, the best config, and Compare."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from rltui.store import open_store
from rltui.sweeps.driver import Driver
from rltui.sweeps.spec import load_sweep_file
from rltui.sweeps.trials import create_sweep
from test_tui_common import settle
from tests.conftest import REPO

BASE = """name = "maze q"
seed = 0
[env]
id = "maze"
gamma = 0.9
[algo]
id = "q_learning"
episodes = 30
epsilon = 0.3
max_steps = 100
eval_every = 10
"""

SWEEP = """name = "maze alpha <b>[red]x[/red]</b>"
base = "base.toml"
method = "grid"
seeds = [0, 1]
objective = { metric = "eval_return", mode = "max", use = "best" }
[parameters]
"algo.alpha" = [0.02, 0.9]
"algo.q_init" = [0.0]
"""


@pytest.fixture
def sweep_store(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "sweep.toml").write_text(SWEEP)
    store = open_store(str(tmp_path / "s.db"))
    sweep_id = create_sweep(store, load_sweep_file(tmp_path / "sweep.toml"))
    assert Driver(store, sweep_id).run() == "completed"
    yield store
    store.dispose()


async def _until(pilot, condition, tries: int = 60) -> None:
    for _ in range(tries):
        await pilot.pause(0.1)
        if condition():
            return


async def test_sweeps_screen_lists_ranks_plots_and_compares(sweep_store):
    from rltui.tui.app import RlTuiApp
    from rltui.tui.screens.compare import CompareScreen
    from rltui.tui.screens.sweeps import SweepScreen, SweepsScreen
    from rltui.tui.widgets.plot import PlotView

    app = RlTuiApp(store=sweep_store, poll_interval=0.3)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert "Sweeps" in [c.title for c in app.get_system_commands(app.screen)]  # in the palette
        await pilot.press("w")  # from the runs screen
        await _until(pilot, lambda: isinstance(app.screen, SweepsScreen) and app.screen.rows)
        assert isinstance(app.screen, SweepsScreen)
        (row,) = app.screen.rows
        assert row["status"] == "completed" and row["trials"] == "2/2"
        # The name is shown as text, never read as markup.
        cell = app.screen.query_one("#sweeps-table").get_row_at(0)[1]
        assert cell.plain == "maze alpha <b>[red]x[/red]</b>"

        await pilot.press("enter")
        await _until(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.trials)
        screen = app.screen
        assert isinstance(screen, SweepScreen)
        values = [t.value for t in screen.trials]
        assert values == sorted(values, reverse=True) and len(values) == 2  # ranked, best first
        best = screen.trials[0]
        best_text = str(screen.query_one("#best-config").content)
        assert f"best: trial {best.trial}" in best_text and f"alpha = {best.params['algo.alpha']}" in best_text
        await _until(pilot, lambda: len(screen.query(PlotView)) == 2)
        plots = list(screen.query(PlotView))
        assert [p.data.xlabel for p in plots] == ["algo.alpha", "algo.q_init"]
        assert sorted(plots[0].data.series[0].xs) == [0.02, 0.9]

        await pilot.press("space", "down", "space", "m")
        await _until(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert isinstance(app.screen, CompareScreen)
        assert sorted(app.screen.run_ids) == sorted(r for t in screen.trials for r in t.run_ids)


def test_the_sweeps_screens_import_neither_optuna_ray_nor_torch(sweep_store):
    script = textwrap.dedent(f"""
        import asyncio, sys
        from rltui.tui.app import RlTuiApp
        from rltui.tui.screens.sweeps import SweepScreen, SweepsScreen

        async def main():
            app = RlTuiApp(db={str(sweep_store.path)!r}, poll_interval=0.2)
            async with app.run_test(size=(140, 40)) as pilot:
                app.action_sweeps()
                for _ in range(100):
                    await pilot.pause(0.05)
                    if isinstance(app.screen, SweepsScreen) and app.screen.rows:
                        break
                app.push_screen(SweepScreen(1))
                for _ in range(100):
                    await pilot.pause(0.05)
                    if app.screen.trials:
                        break
                return len(app.screen.trials)

        assert asyncio.run(main()) == 2
        bad = [m for m in ("optuna", "ray", "torch", "gymnasium") if m in sys.modules]
        assert not bad, bad
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
