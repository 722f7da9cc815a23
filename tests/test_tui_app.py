"""Textual pilots over a real store: every screen and every flow of the lab."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from rltui.config import load_config_file, validate_config
from rltui.recorder import StoreRecorder
from rltui.store.models import Run
from rltui.tui.demo import add_run
from test_tui_common import demo_store, live_store, make_app, settle, test_registry, text_of  # noqa: F401 — fixtures

REPO = Path(__file__).resolve().parents[1]


def table_ids(app) -> list[int]:
    table = app.screen.query_one("#runs-table")
    return [int(k.value) for k in table.rows]


async def wait_until(pilot, condition, tries: int = 20) -> None:
    """Let polls run until `condition()` holds (or the tries run out; the caller asserts)."""
    for _ in range(tries):
        await pilot.pause(0.15)
        await settle(pilot, 1)
        if condition():
            return


async def open_run_screen(app, pilot, run_id: int):
    from rltui.tui.screens.run import RunScreen

    await settle(pilot)
    app.push_screen(RunScreen(run_id))
    await settle(pilot, 3)
    return app.screen


def cursor_to(app, run_id: int) -> None:
    table = app.screen.query_one("#runs-table")
    table.move_cursor(row=table.get_row_index(str(run_id)), animate=False)


# --- the process never imports torch or gymnasium ------------------------------------------------
def test_tui_import_is_torch_free():
    code = "import rltui.tui.app, sys; assert 'torch' not in sys.modules and 'gymnasium' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_every_screen_opened_stays_torch_free(tmp_path):
    """Open every screen in a pilot in a fresh process, then look at sys.modules."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from rltui.store import open_store
        from rltui.tui.demo import populate
        from test_tui_common import make_app, settle
        store = open_store({str(tmp_path / 'x.db')!r})
        ids = populate(store)

        async def main():
            from rltui.tui.screens.compare import CompareScreen
            from rltui.tui.screens.new_run import NewRunScreen
            from rltui.tui.screens.replay import ReplayScreen
            from rltui.tui.screens.run import RunScreen
            app = make_app(store)
            async with app.run_test(size=(80, 24)) as pilot:
                await settle(pilot)
                for rid in (ids["vi"], ids["ppo"], ids["lm"]):
                    app.push_screen(RunScreen(rid)); await settle(pilot)
                    await pilot.press("R"); await settle(pilot)
                    assert isinstance(app.screen, ReplayScreen), app.screen
                    await pilot.press("right", "escape", "escape"); await settle(pilot)
                await pilot.press("n"); await settle(pilot)
                assert isinstance(app.screen, NewRunScreen)
                await pilot.press("escape"); await settle(pilot)
                app.push_screen(CompareScreen([ids["q0"], ids["q1"]])); await settle(pilot)
                await pilot.press("question_mark"); await settle(pilot)
        asyncio.run(main())
        bad = [m for m in ("torch", "gymnasium") if m in sys.modules]
        assert not bad, bad
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


# --- runs screen -----------------------------------------------------------------------------------
async def test_runs_table_sort_filter_select(demo_store):
    ids = demo_store.demo_ids
    app = make_app(demo_store)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        assert table_ids(app) == sorted(ids.values(), reverse=True)
        status = text_of(app.screen.query_one("#runs-status"))
        assert f"{len(ids)} runs" in status and "1 failed" in status
        table = app.screen.query_one("#runs-table")
        row = table.get_row(str(ids["q0"]))
        assert str(row[2]) == "maze-q-s0" and "completed" in str(row[3])
        assert float(str(row[5])) == pytest.approx(0.95)  # last return of the greedy maze episode: 5×(-0.01)+1
        # sort by best return (s cycles the sort column)
        while app.screen.sort_key != "best":
            await pilot.press("s")
        await settle(pilot)
        assert table_ids(app)[0] in (ids["ppo"],)  # 500 is the best G in the store
        # filter over name/env/algo/tag/status
        await pilot.press("slash", *"q_learning")
        await settle(pilot)
        assert set(table_ids(app)) == {ids["q0"], ids["q1"], ids["q2"], ids["q_fast"]}
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("slash", *"failed", "enter")
        await settle(pilot)
        assert table_ids(app) == [ids["failed"]]
        await pilot.press("escape")
        await pilot.press("slash", *"dp")  # a tag
        await settle(pilot)
        assert table_ids(app) == [ids["vi"]]
        await pilot.press("escape")
        await settle(pilot)
        # multi-select with space
        app.screen.sort_key, app.screen.sort_reverse = "id", True
        app.screen.rebuild()
        cursor_to(app, ids["q2"])
        await pilot.press("space", "space")
        assert app.screen.selected == {ids["q2"], ids["q1"]}
        assert "2 selected" in text_of(app.screen.query_one("#runs-status"))


async def test_runs_go_live_incrementally(live_store):
    """A worker writes while the lab is open: progress, returns and new rows appear without reload."""
    ids = live_store.demo_ids
    app = make_app(live_store, poll_interval=0.1)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        screen = app.screen
        before = dict(screen.rows[ids["live"]])
        assert before["status"] == "running" and before["episodes"] == 20
        loads = []
        original = screen.load_all
        screen.load_all = lambda: (loads.append(1), original())[1]
        # the "worker": more episodes and progress for the live run, and a brand-new run
        rec = StoreRecorder(live_store, ids["live"], flush_every=1e9)
        for i in range(20, 30):
            rec.episode(i, 0.9, 6, step=800 + i)
        rec.progress(0.5)
        rec.close()
        new_id = add_run(live_store, "fresh-run", {"id": "maze"}, {"id": "q_learning"}, status="running", progress=0.1)
        await wait_until(pilot, lambda: screen.rows.get(ids["live"], {}).get("episodes") == 30 and new_id in screen.rows)
        row = screen.rows[ids["live"]]
        assert row["episodes"] == 30 and row["progress"] == 0.5 and row["last_return"] == 0.9
        assert new_id in table_ids(app)
        cells = app.screen.query_one("#runs-table").get_row(str(ids["live"]))
        assert "50%" in cells[4] and str(cells[5]) == "0.9"
        assert loads == []  # incremental: no full reload was needed


async def test_run_screen_plots_go_live(live_store):
    ids = live_store.demo_ids
    app = make_app(live_store, poll_interval=0.1)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_run_screen(app, pilot, ids["live"])
        assert len(screen.returns) == 20
        plot = screen.query_one("#plot-return")
        assert "20 episodes" in plot.data.title
        assert {"epsilon", "td_error"} <= set(screen.metric_points)
        rec = StoreRecorder(live_store, ids["live"], flush_every=1e9)
        for i in range(20, 25):
            rec.episode(i, 0.95, 6, step=900 + i)
        rec.log(925, td_error=0.01, epsilon=0.2, loss=1.5)
        rec.close()
        await wait_until(pilot, lambda: len(screen.returns) == 25 and "loss" in screen.metric_points)
        assert len(screen.returns) == 25
        assert "25 episodes" in plot.data.title
        assert screen.metric_points["td_error"][-1][:2] == (925.0, 0.01)
        assert screen.query("#metric-loss")  # a new metric gets its own plot
        # x axis and smoothing
        await pilot.press("x")
        assert screen.x_axis == "episode"
        await pilot.press("plus")
        assert screen.alpha == pytest.approx(0.65)
        assert "α=0.65" in plot.data.series[-1].label


async def test_run_screen_plot_is_downsampled_to_its_columns(store):
    run_id = add_run(store, "long", {"id": "cartpole"}, {"id": "ppo"})
    rec = StoreRecorder(store, run_id, flush_every=1e9)
    rec.log_many("loss", range(0, 50_000), [float(i % 97) for i in range(50_000)])
    for i in range(3000):
        rec.episode(i, float(i % 50), 10, step=i * 10)
    rec.close()
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_run_screen(app, pilot, run_id)
        screen = app.screen
        loss = screen.query_one("#metric-loss")
        pts = screen.metric_points["loss"]
        assert len(pts) <= loss.columns <= 80
        assert pts[-1][:2] == (49_999.0, float(49_999 % 97))
        ret = screen.query_one("#plot-return")
        for series in ret.data.series:
            assert len(series.xs) <= ret.columns
            assert series.xs[-1] == 29_990.0


async def test_run_plots_fill_a_wide_terminal(demo_store):
    """plotext caps a plot at the terminal's size (80 columns headless); ours are drawn at the widget's."""
    app = make_app(demo_store)
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_run_screen(app, pilot, demo_store.demo_ids["q_fast"])
        plot = screen.query_one("#plot-return")
        lines = plot.text.splitlines()
        assert len(lines) == plot.size.height
        assert max(len(line) for line in lines) == plot.size.width > 140
        assert "episode return G (300 episodes)" in lines[0]


async def test_episodes_tab_holds_the_newest_page_and_pages_in_older_ones(demo_store):
    from rltui.tui.screens.run import EPISODE_PAGE

    app = make_app(demo_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_run_screen(app, pilot, demo_store.demo_ids["q_fast"])
        table = screen.episodes_table
        assert len(screen.episodes) == 300 and table.row_count == 0  # nothing drawn while the tab is closed
        await pilot.press("3")
        await settle(pilot)
        assert table.row_count == EPISODE_PAGE
        assert screen._episode_under_cursor() == screen.episodes[-1]["id"]  # on the newest, like tail -f
        oldest_shown = screen.episodes[300 - EPISODE_PAGE]["id"]
        assert "300 episodes (300 train, 0 eval) · showing 200 (up at the top" in text_of(screen.episodes_status)
        table.move_cursor(row=0, animate=False)  # the top: a page of older ones comes in above
        await settle(pilot)
        assert table.row_count == 300
        assert screen._episode_under_cursor() == oldest_shown  # the cursor stays on its episode
        assert [int(k.value) for k in table.rows] == [e["id"] for e in screen.episodes]
        assert "showing 300 ·" in text_of(screen.episodes_status)


async def test_live_episodes_append_below_and_the_cursor_follows(live_store):
    ids = live_store.demo_ids
    app = make_app(live_store, poll_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_run_screen(app, pilot, ids["live"])
        await pilot.press("3")
        await settle(pilot)
        table = screen.episodes_table
        assert table.row_count == 20 and table.cursor_row == 19
        rec = StoreRecorder(live_store, ids["live"], flush_every=1e9)
        for i in range(20, 25):
            rec.episode(i, 0.95, 6, step=900 + i)
        rec.close()
        await wait_until(pilot, lambda: table.row_count == 25)
        assert table.row_count == 25 and table.cursor_row == 24
        assert screen._episode_under_cursor() == screen.episodes[-1]["id"]


async def test_only_the_screen_in_front_polls(live_store):
    """A screen under another keeps still: Textual repaints the screen in front whenever one beneath
    changes, so a table updating under the run screen cost a full repaint per poll."""
    ids = live_store.demo_ids
    app = make_app(live_store, poll_interval=0.1)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        runs = app.screen
        reads = {"runs": 0, "run": 0}

        def counting(name, read):
            def wrapper(*args):
                reads[name] += 1
                return read(*args)
            return wrapper

        run = await open_run_screen(app, pilot, ids["live"])
        runs.poll_worker = counting("runs", runs.poll_worker)
        run.poll_worker = counting("run", run.poll_worker)
        await pilot.pause(0.5)
        assert reads["runs"] == 0 and reads["run"] >= 2  # the runs screen is under the run screen
        await pilot.press("question_mark")  # help, in front of the run screen
        await settle(pilot)
        before = dict(reads)
        await pilot.pause(0.5)
        assert reads == before
        await pilot.press("escape")  # the run screen is in front again: it catches up and polls on
        await settle(pilot)
        await pilot.pause(0.5)
        assert reads["run"] >= before["run"] + 2 and reads["runs"] == 0
        await pilot.press("escape")  # back to the runs screen: it polls again
        await settle(pilot)
        await pilot.pause(0.5)
        assert reads["runs"] >= 2


async def test_footer_rebuilds_only_when_its_keys_change(demo_store):
    from textual.widgets._footer import FooterKey

    app = make_app(demo_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)

        def footer_keys() -> list[str]:
            return [k.description for k in app.screen.query(FooterKey)]

        assert "Compare" in footer_keys()
        await open_run_screen(app, pilot, demo_store.demo_ids["ppo"])
        assert "X axis" in footer_keys() and "Sweep" not in footer_keys()  # no Bellman sweeps here
        footer = app.screen.query_one("LabFooter")
        rebuilds = []
        original = footer.recompose
        footer.recompose = lambda: (rebuilds.append(1), original())[1]
        for _ in range(3):
            app.screen.refresh_bindings()
            await settle(pilot)
        assert rebuilds == []  # announced three times, nothing shown changed
        await pilot.press("escape")
        await open_run_screen(app, pilot, demo_store.demo_ids["vi"])
        assert "Sweep" in footer_keys()  # the sweep keys appear once the run's sweeps are known


async def test_run_screen_tabular_values_and_sweeps(demo_store):
    from rltui.tui.screens.run import RunScreen

    ids = demo_store.demo_ids
    app = make_app(demo_store)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        cursor_to(app, ids["vi"])
        await pilot.press("enter")
        await settle(pilot, 3)
        screen = app.screen
        assert isinstance(screen, RunScreen) and screen.is_tabular
        await pilot.press("2")
        await settle(pilot)
        last = screen.sweep
        assert last == screen.sweeps - 1 and screen.sweeps >= 5
        grid_final = text_of(screen.query_one("#values-grid"))
        assert "→" in grid_final and "+1.00" in grid_final  # greedy arrows; V=1 beside the goal
        assert "Q(s,up)" in text_of(screen.query_one("#q-table"))
        await pilot.press("left_curly_bracket")
        await settle(pilot)
        assert screen.sweep == 0
        assert "+1.00" not in text_of(screen.query_one("#values-grid"))  # V_0 = 0 everywhere
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert screen.sweep == 1
        assert "Bellman sweep 1/" in text_of(screen.query_one("#sweep-slider"))
        # config and episodes tabs
        await pilot.press("4")
        assert "value_iteration" in text_of(screen.query_one("#config-text"))
        await pilot.press("3")
        await settle(pilot)
        assert screen.query_one("#episodes-table").row_count == 1


async def test_failed_run_shows_its_traceback(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await open_run_screen(app, pilot, demo_store.demo_ids["failed"])
        await pilot.press("6")
        text = text_of(app.screen.query_one("#traceback-text"))
        assert "FloatingPointError" in text and "sarsa.py" in text


# --- replay ----------------------------------------------------------------------------------------
async def test_replay_steps_through_a_maze_episode(demo_store):
    from rltui.tui.screens.replay import ReplayScreen
    ids = demo_store.demo_ids
    app = make_app(demo_store)
    async with app.run_test(size=(100, 36)) as pilot:
        await open_run_screen(app, pilot, ids["vi"])
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("enter")  # the episode under the cursor
        await settle(pilot, 3)
        screen = app.screen
        assert isinstance(screen, ReplayScreen)
        n = len(screen.steps)
        assert n == 6  # the maze's optimal path: 6 moves from (0,0) to (3,3)
        assert screen.t == 0
        extras = text_of(screen.query_one("#replay-extras"))
        assert "Q(s,·)" in extras and "π(·|s)" in extras and "V(s)" in extras
        await pilot.press("right", "right")
        assert screen.t == 2
        assert screen.returns_so_far[2] == pytest.approx(-0.03)
        assert "-0.03" in text_of(screen.query_one("#replay-extras"))
        await pilot.press("end")
        assert screen.t == n - 1
        assert "episode ends" in text_of(screen.query_one("#replay-extras"))
        await pilot.press("home", "left")
        assert screen.t == 0
        # jump to a step through the prompt
        await pilot.press("j")
        await settle(pilot)
        app.screen.query_one("#prompt").value = "4"
        await pilot.press("enter")
        await settle(pilot)
        assert screen.t == 4
        # play slowly (0.5 steps/s), pause, then play at the fastest speed to the end
        await pilot.press("home", "minus", "minus", "minus", "space")
        assert screen.playing and screen.t <= 1
        await pilot.press("space")
        assert not screen.playing
        await pilot.press(*["plus"] * 6, "space")
        for _ in range(40):
            await pilot.pause(0.05)
            if not screen.playing:
                break
        assert screen.t == n - 1 and not screen.playing


async def test_replay_cartpole_and_language_model(demo_store):
    from rltui.tui.screens.replay import ReplayScreen

    ids = demo_store.demo_ids
    app = make_app(demo_store)
    async with app.run_test(size=(100, 36)) as pilot:
        await settle(pilot)
        from rltui.store.models import Episode

        with demo_store.read() as s:
            ep_ppo = s.scalar(select(Episode.id).where(Episode.run_id == ids["ppo"], Episode.phase == "eval"))
            ep_lm = s.scalar(select(Episode.id).where(Episode.run_id == ids["lm"], Episode.phase == "eval"))
        app.push_screen(ReplayScreen(ids["ppo"], ep_ppo))
        await settle(pilot, 3)
        state = text_of(app.screen.query_one("#replay-state"))
        assert "θ=" in state and "███████" in state  # the cart and its readout
        assert "advantage" in text_of(app.screen.query_one("#replay-extras"))
        await pilot.press("escape")
        app.push_screen(ReplayScreen(ids["lm"], ep_lm))
        await settle(pilot, 3)
        screen = app.screen
        await pilot.press("end")
        text = text_of(screen.query_one("#replay-state"))
        assert "capital of France" in text and "Paris" in text
        tokens = text_of(screen.query_one("#replay-tokens"))
        assert "logprob" in tokens and "ref logprob" in tokens and "KL" in tokens and "advantage" in tokens
        await pilot.press("home")
        assert "Paris" not in text_of(screen.query_one("#replay-state"))


# --- compare ---------------------------------------------------------------------------------------
async def test_compare_groups_seeds_and_lists_differing_hyperparameters(demo_store):
    from rltui.tui.screens.compare import CompareScreen

    ids = demo_store.demo_ids
    app = make_app(demo_store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for key in ("q0", "q1", "q2", "q_fast"):
            cursor_to(app, ids[key])
            await pilot.press("space")
        await pilot.press("m")
        await settle(pilot, 3)
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        groups = screen.groups()
        assert sorted(len(g) for g in groups) == [1, 3]
        plot = screen.query_one("#compare-plot")
        labels = [s.label for s in plot.data.series]
        assert any("×3 seeds" in label for label in labels)
        band = next(s for s in plot.data.series if "×3" in s.label)
        assert all(lo <= m <= hi for lo, m, hi in zip(band.lower, band.ys, band.upper))
        table = screen.query_one("#compare-table")
        columns = [str(c.label) for c in table.columns.values()]
        assert "algo.alpha" in columns and "seed" in columns and "env.gamma" not in columns
        await pilot.press("b")
        se = next(s for s in plot.data.series if "×3" in s.label)
        assert screen.band == "se" and (se.upper[-1] - se.lower[-1]) <= (band.upper[-1] - band.lower[-1]) + 1e-12
        await pilot.press("a")  # group seeds
        assert len(screen.groups()) == 4


# --- editing runs ----------------------------------------------------------------------------------
async def test_rename_tag_note_cancel_delete(demo_store):
    ids = demo_store.demo_ids
    app = make_app(demo_store)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        cursor_to(app, ids["q0"])
        await pilot.press("r")
        await settle(pilot)
        app.screen.query_one("#prompt").value = "renamed-run"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("t")
        await settle(pilot)
        app.screen.query_one("#prompt").value = "best, keep"
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("N")
        await settle(pilot)
        app.screen.query_one("#prompt").value = "α=0.5 looks right"
        await pilot.press("enter")
        await settle(pilot)
        with demo_store.read() as s:
            run = s.get(Run, ids["q0"])
            assert (run.name, run.tags, run.notes) == ("renamed-run", ["best", "keep"], "α=0.5 looks right")
        # cancel the queued run
        cursor_to(app, ids["queued"])
        await pilot.press("k")
        await settle(pilot)
        with demo_store.read() as s:
            run = s.get(Run, ids["queued"])
            assert run.status == "cancelled"  # a queued run is cancelled at once
        # delete two runs, answering the confirmation
        cursor_to(app, ids["q1"])
        await pilot.press("space", "space")
        assert app.screen.selected == {ids["q1"], ids["q0"]} or len(app.screen.selected) == 2
        chosen = set(app.screen.selected)
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("n")  # no: nothing happens
        await settle(pilot)
        assert chosen <= set(table_ids(app))
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot, 3)
        assert not chosen & set(table_ids(app))
        with demo_store.read() as s:
            assert not s.scalars(select(Run.id).where(Run.id.in_(chosen))).all()


async def test_help_lists_the_current_screens_keys(demo_store):
    from rltui.tui.screens.dialogs import HelpScreen
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        keys = dict(app.screen.keys)
        assert keys["/"] == "Filter" and keys["space"] == "Select" and keys["m"] == "Compare"
        assert keys["k"] == "Cancel" and keys["u"] == "Resume" and keys["q"] == "Quit"
        await pilot.press("escape")
        await open_run_screen(app, pilot, demo_store.demo_ids["vi"])
        await pilot.press("question_mark")
        await settle(pilot)
        keys = dict(app.screen.keys)
        assert keys["x"] == "X axis" and keys["["] == "Sweep" and "space" not in keys
        assert keys["k"] == "Cancel" and keys["u"] == "Resume"  # one meaning per key on both screens
        assert keys["/"] == "Filter"  # the same key, the same meaning: it filters the plots (in the Log tab: searches it)


async def test_welcome_on_an_empty_store(store):
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        welcome = app.screen.query_one("#welcome")
        assert welcome.has_class("visible")
        text = text_of(welcome)
        assert "no runs yet" in text
        assert ("sample runs" in text) or ("sample_runs/" in text)


# --- new run ---------------------------------------------------------------------------------------
async def test_new_run_form_validates_like_the_loader_and_saves_toml(demo_store, test_registry, tmp_path):
    from rltui.tui.screens.new_run import NewRunScreen

    app = make_app(demo_store)
    async with app.run_test(size=(100, 50)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, NewRunScreen)
        env_select = screen.query_one("#f-env-id")
        env_select.value = "maze"
        await settle(pilot)
        # only algorithms for tabular envs are offered
        algo_ids = [v for _, v in screen.algo_options()]
        assert algo_ids == ["q_learning", "value_iteration"]
        screen.query_one("#f-algo-id").value = "q_learning"
        await settle(pilot)
        assert screen.query("#f-algo-alpha") and screen.query("#f-env-gamma") and screen.query("#f-algo-schedule")
        help_text = " ".join(text_of(w) for w in screen.query(".field-help"))
        assert "step size α" in help_text and "≤ 1.0" in help_text and "default 0.5" in help_text
        # an out-of-range value: the message is the loader's own, under the field
        screen.query_one("#f-algo-alpha").value = "1.5"
        await settle(pilot)
        err = screen.query_one("#err-algo-alpha")
        assert err.has_class("visible")
        loader_message = None
        try:
            validate_config({"env": {"id": "maze"}, "algo": {"id": "q_learning", "alpha": 1.5}}, source="form")
        except Exception as exc:  # noqa: BLE001
            loader_message = exc.message
        assert loader_message and loader_message in text_of(err)
        await pilot.press("ctrl+l")  # refused while invalid
        await settle(pilot)
        assert isinstance(app.screen, NewRunScreen)
        # a wrong type
        screen.query_one("#f-algo-alpha").value = "fast"
        await settle(pilot)
        assert "valid number" in text_of(screen.query_one("#err-algo-alpha"))
        screen.query_one("#f-algo-alpha").value = "0.25"
        screen.query_one("#f-algo-double").value = True
        screen.query_one("#f-algo-schedule").value = "linear"
        screen.query_one("#f-env-gamma").value = "0.95"
        screen.query_one("#f-name").value = "form-run"
        screen.query_one("#f-seeds").value = "0,1,2"
        await settle(pilot)
        assert not screen.query_one("#err-algo-alpha").has_class("visible")
        configs = screen.configs()
        assert [c.seed for c in configs] == [0, 1, 2]
        assert [c.name for c in configs] == ["form-run-s0", "form-run-s1", "form-run-s2"]
        assert configs[0].algo.alpha == 0.25 and configs[0].algo.double and configs[0].env.gamma == 0.95
        # bad seeds
        screen.query_one("#f-seeds").value = "0,x"
        await settle(pilot)
        assert screen.query_one("#err-seeds").has_class("visible")
        screen.query_one("#f-seeds").value = "3"
        await settle(pilot)
        # save to TOML through the dialog; the loader reads it back to the same config
        target = tmp_path / "saved.toml"
        await pilot.press("ctrl+s")
        await settle(pilot)
        app.screen.query_one("#prompt").value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        loaded = load_config_file(target)
        assert (loaded.env_id, loaded.algo_id, loaded.seed, loaded.name) == ("maze", "q_learning", 3, "form-run")
        assert loaded.algo.alpha == 0.25 and loaded.algo.schedule == "linear" and loaded.env.gamma == 0.95
        # load a TOML into a fresh form
        other = tmp_path / "other.toml"
        other.write_text('name = "from-file"\nseed = 7\n[env]\nid = "chain"\nn = 12\n[algo]\nid = "value_iteration"\n'
                         "theta = 0.001\n")
        await screen.load_from(other)
        await settle(pilot)
        assert screen.env_id == "chain" and screen.algo_id == "value_iteration"
        assert screen.query_one("#f-env-n").value == "12" and screen.query_one("#f-algo-theta").value == "0.001"
        assert screen.configs()[0].seed == 7


async def test_clone_prefills_the_form_from_the_stored_config(demo_store, test_registry):
    from rltui.tui.screens.new_run import NewRunScreen

    ids = demo_store.demo_ids
    app = make_app(demo_store)
    async with app.run_test(size=(100, 50)) as pilot:
        await settle(pilot)
        cursor_to(app, ids["q_fast"])
        await pilot.press("c")
        await settle(pilot, 3)
        screen = app.screen
        assert isinstance(screen, NewRunScreen)
        assert (screen.env_id, screen.algo_id) == ("maze", "q_learning")
        assert screen.query_one("#f-algo-alpha").value == "0.9"
        assert screen.query_one("#f-name").value == "maze-q-a0.9"
        config = screen.configs()[0]
        assert config.algo.alpha == 0.9 and config.algo.episodes == 300


async def test_launch_from_the_form(demo_store, tmp_path):
    """Launch through the real path (runner API, else the CLI). With the real registry, if it knows
    maze + value_iteration the run row appears; if this install registers no such env, the form
    refuses it with the loader's message and nothing is stored."""
    from rltui import registry
    from rltui.tui.screens.new_run import NewRunScreen

    app = make_app(demo_store, poll_interval=0.2)
    real = "maze" in registry.envs() and "value_iteration" in registry.algos()
    async with app.run_test(size=(100, 50)) as pilot:
        await settle(pilot)
        before = set(app.screen.rows)
        app.push_screen(NewRunScreen(initial={"name": "from-form", "seed": 0, "env": {"id": "maze"},
                                              "algo": {"id": "value_iteration"}}))
        await settle(pilot, 3)
        screen = app.screen
        if not real:
            assert screen.last_error is not None and "env.id" in str(screen.last_error)
            await pilot.press("ctrl+l")
            await settle(pilot)
            assert isinstance(app.screen, NewRunScreen)
            with demo_store.read() as s:
                assert not s.scalars(select(Run.id).where(Run.name == "from-form")).all()
            return
        await pilot.press("ctrl+l")
        for _ in range(100):
            await pilot.pause(0.2)
            with demo_store.read() as s:
                found = s.scalars(select(Run).where(Run.name == "from-form")).all()
            if found and found[0].status == "completed":
                break
        assert found, "the launched run never reached the store"
        await settle(pilot)
        assert found[0].id in set(app.screen.rows) - before or found[0].id in app.screen.rows


async def test_many_runs_paint_a_page_first_and_page_in_as_the_cursor_moves(store):
    from sqlalchemy import insert

    from rltui.recorder import utcnow

    now = utcnow()
    with store.write_connection() as conn, conn.begin():
        conn.execute(insert(Run), [
            {"name": f"run-{i}", "env_id": "maze", "algo_id": "q_learning", "config_toml": "", "config": {},
             "seed": 0, "device": "cpu", "status": "completed", "created_at": now, "progress": 1.0, "summary": {},
             "tags": [], "notes": "", "versions": {}, "cancel_requested": False}
            for i in range(450)
        ])
    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, 3)
        screen = app.screen
        table = screen.query_one("#runs-table")
        assert len(screen.rows) == 450 and table.row_count == 200
        assert "showing 200" in text_of(screen.query_one("#runs-status"))
        table.move_cursor(row=199)
        await settle(pilot)
        assert table.row_count == 400
        await pilot.press("slash", *"run-12")  # the filter searches all runs, not just the page
        await settle(pilot)
        assert sorted(table_ids(app)) == sorted(
            i for i, r in screen.rows.items() if "run-12" in r["name"])
        assert table.row_count == 11  # run-12, run-120..run-129


async def test_new_run_form_opens_on_the_maze_with_value_iteration(demo_store, test_registry):
    from rltui.tui.screens.new_run import NewRunScreen

    app = make_app(demo_store)
    async with app.run_test(size=(100, 50)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, NewRunScreen)
        assert screen.query_one("#f-env-id").value == "maze"
        assert screen.query_one("#f-algo-id").value == "value_iteration"


async def test_live_table_rerenders_only_the_row_that_changed():
    """DataTable.update_cell re-renders every visible cell; LiveTable.update_row only the changed row's."""
    from textual.app import App

    from rltui.tui.widgets.live_table import LiveTable

    class TableApp(App):
        def compose(self):
            table = LiveTable()
            table.add_column("Name", key="name")
            table.add_column("G", key="g", width=6)
            for i in range(15):
                table.add_row(f"run-{i}", "0.5", key=str(i))
            yield table

    app = TableApp()
    async with app.run_test(size=(40, 20)) as pilot:
        table = app.query_one(LiveTable)
        await pilot.pause()
        rendered = []
        original = table._render_cell
        table._render_cell = lambda row_index, column_index, *a, **k: (
            rendered.append((row_index, column_index)), original(row_index, column_index, *a, **k))[1]

        def line(row: int) -> str:
            return table.render_line(row + 1).text  # below the header

        table.update_row("3", {"name": "run-3", "g": "0.75"})  # the name unchanged: only G is set
        await pilot.pause()
        assert "0.75" in line(3) and table.get_row("3") == ["run-3", "0.75"]
        assert rendered and {r for r, _ in rendered} == {3}  # no other row was drawn again
        rendered.clear()
        table.update_row("3", {"name": "run-3", "g": "0.75"})  # nothing changed: nothing drawn
        await pilot.pause()
        assert rendered == []
        table.update_row("4", {"name": "a-much-longer-name"})  # wider than its column: the table re-lays out
        await pilot.pause()
        assert "a-much-longer-name" in line(4)
        assert len({r for r, _ in rendered}) > 1


async def test_the_full_load_reads_chunks_in_transactions_of_their_own(live_store, monkeypatch):
    """Every run arrives, a few at a time, each chunk in its own read transaction (no WAL snapshot held
    across the pauses between chunks), with each run's returns."""
    from rltui.store import sql
    from rltui.tui.screens import runs

    monkeypatch.setattr(runs, "LOAD_CHUNK", 2)
    ids = live_store.demo_ids
    with live_store.sql.read() as tx:
        total = tx.first("SELECT count(*) FROM runs")[0]
    assert total > 4
    begun = []
    original = sql.SQLiteDatabase.read

    def counting_read(self):
        begun.append(1)
        return original(self)

    monkeypatch.setattr(sql.SQLiteDatabase, "read", counting_read)
    app = make_app(live_store, poll_interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await wait_until(pilot, lambda: len(app.screen.rows) == total)
        assert app.screen.rows[ids["live"]]["episodes"] == 20
    assert len(begun) >= 1 + (total + 1) // 2, (len(begun), total)  # the first page, then a transaction per chunk of two
