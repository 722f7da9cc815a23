"""Pilots for what a newcomer hit in the lab (issue 13): hostile names, the runs table at 80 columns,
hidden tabs, the log, the sweep slider, samples, palette, cancel/resume, themes' contrast, the CLI."""

from __future__ import annotations

import itertools

import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import rltui_cli
from rltui.store.models import Artifact, Run
from rltui.tui.demo import add_run, mark
from test_tui_app import open_run_screen, wait_until
from test_tui_common import demo_store, live_store, make_app, settle, test_registry, text_of  # noqa: F401 — fixtures

REPO = Path(__file__).resolve().parents[1]
MAZE = {"id": "maze", "gamma": 0.9}
QL = {"id": "q_learning", "alpha": 0.5, "episodes": 300}
HOSTILE = [
    "[/bold]",  # crashed the lab at first paint (a closing tag with nothing open)
    "[@click=app.quit]click me",  # became a live action
    "\x1b]0;pwned\x07\x1b[2Jclear\x9b31m",  # OSC title, clear screen, a C1 CSI
    "[b]not bold[/b] [red]not red",
    "n" * 10_000,  # a 10 kB name
]


def screen_text(app) -> str:
    """What the terminal shows, as plain text (the rendered screen, not the widgets' data)."""
    import html
    import re

    svg = app.export_screenshot()
    text = re.sub(r"<[^>]+>", "", svg)
    return html.unescape(text).replace("\xa0", " ")


# --- 19: names are text, never markup or terminal control ------------------------------------------
async def test_a_store_of_hostile_names_opens_and_shows_them_as_text(demo_store):
    ids = [add_run(demo_store, name, MAZE, QL, tags=["[/]", "\x1b[31mred"], notes="[@click=app.quit]note\x07")
           for name in HOSTILE]
    app = make_app(demo_store)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        assert app.is_running and app.return_code is None  # "[/bold]" used to end it at first paint
        table = app.screen.query_one("#runs-table")
        names = {int(k.value): str(table.get_row(k)[table.get_column_index("name")]) for k in table.rows}
        assert names[ids[0]] == "[/bold]" and names[ids[1]] == "[@click=app.quit]click me"
        assert names[ids[2]].startswith("\\x1b]0;pwned\\x07\\x1b[2Jclear")  # escapes shown, not sent
        assert len(names[ids[4]]) <= 32 and names[ids[4]].endswith("…")  # the column is capped
        shown = screen_text(app)
        assert "[/bold]" in shown and "[b]not bold[/b]" in shown and "\x1b" not in shown
        cell = table.get_row(str(ids[1]))[table.get_column_index("name")]
        assert not cell.spans and not cell.style  # no @click meta, no style
        for run_id in (ids[0], ids[2], ids[4]):  # a closing tag, escapes, 10 kB
            screen = await open_run_screen(app, pilot, run_id)
            assert app.is_running
            header = text_of(screen.query_one("#run-header"))
            assert header.startswith(f"run {run_id} ") and "\x1b" not in header
            await pilot.press("4")  # tags and notes, as text
            await settle(pilot)
            config = text_of(screen.config_text)
            assert "[@click=app.quit]note\\x07" in config and "\\x1b[31mred" in config
            await pilot.press("escape")
            await settle(pilot)
        assert app.is_running and app.return_code is None


def test_cli_prints_store_text_with_control_characters_escaped(store, db_path):
    run_id = add_run(store, HOSTILE[2], MAZE, QL, tags=["t\x1b[1m"], notes="first\nsecond \x1b]52;c;AAAA\x07")
    for verb in (["ls"], ["show", str(run_id)]):
        proc = rltui_cli(*verb, db=db_path, check=True)
        assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout and "\x9b" not in proc.stdout
        assert "\\x1b]0;pwned" in proc.stdout
    shown = rltui_cli("show", str(run_id), db=db_path, check=True).stdout
    assert "t\\x1b[1m" in shown  # tags are shown (bug 7) ...
    assert "first\n" in shown and "second \\x1b]52;c;AAAA\\x07" in shown  # ... and notes, line by line


# --- the runs table at 80 columns ----------------------------------------------------------------------
async def test_runs_table_compact_at_80_columns_chooser_and_first_last(demo_store):
    long = add_run(demo_store, "a-rather-long-run-name-of-forty-characters", MAZE, QL, notes="keep\nthis")
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert screen.compact and screen.shown_columns[:3] == ["id", "name", "status"]
        table = screen.query_one("#runs-table")
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80  # everything shown fits
        assert str(table.get_row(str(long))[1]).endswith("…") and len(str(table.get_row(str(long))[1])) <= 18
        await pilot.press("G")
        assert screen.cursor_id() == min(screen.rows)
        await pilot.press("g")
        assert screen.cursor_id() == max(screen.rows)
        await pilot.press("space")  # compact: the selection mark sits in the ID cell
        await settle(pilot)
        assert str(table.get_row(str(long))[0]).startswith("●")
        await pilot.press("v")  # the column chooser: untick Algo, tick Notes
        await settle(pilot)
        chooser = app.screen.query_one("#columns")
        chooser.deselect("algo")
        chooser.select("notes")
        await pilot.press("enter")
        await settle(pilot)
        assert "algo" not in screen.shown_columns and "notes" in screen.shown_columns
        assert str(table.get_row(str(long))[screen.shown_columns.index("notes")]) == "keep …"
        await pilot.press("z")  # wide: every chosen column stays, names get longer
        await settle(pilot)
        assert not screen.compact and "sel" not in screen.shown_columns


async def test_wide_table_shows_notes_and_filters_on_them(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert not screen.compact and "notes" in screen.shown_columns
        table = screen.query_one("#runs-table")
        vi = demo_store.demo_ids["vi"]
        assert str(table.get_row(str(vi))[screen.shown_columns.index("notes")]) == "Exact Bellman optimality sweeps."
        await pilot.press("slash", *"bellman")
        await settle(pilot)
        assert [int(k.value) for k in table.rows] == [vi]


# --- the run screen ----------------------------------------------------------------------------------
async def test_hidden_tabs_are_not_selected_and_a_failed_run_opens_on_its_traceback(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_screen(app, pilot, demo_store.demo_ids["ppo"])
        tabs = screen.query_one("#run-tabs")
        for key in ("2", "6"):  # a deep run that did not fail: no Values, no Traceback
            await pilot.press(key)
            await settle(pilot)
            assert tabs.active == "plots"
        assert [t for t, _ in screen.visible_tabs()] == ["plots", "episodes", "config", "log"]
        await pilot.press("escape")
        screen = await open_run_screen(app, pilot, demo_store.demo_ids["failed"])
        assert screen.query_one("#run-tabs").active == "traceback"
        assert "FloatingPointError" in text_of(screen.traceback_text)


async def test_q_quits_from_the_run_screen(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_run_screen(app, pilot, demo_store.demo_ids["vi"])
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_header_never_wraps_and_labels_its_episode_count(demo_store):
    rid = demo_store.demo_ids["q0"]
    mark(demo_store, rid, name="maze q-learning with a name far too long for any header line")
    app = make_app(demo_store)
    async with app.run_test(size=(60, 20)) as pilot:
        screen = await open_run_screen(app, pilot, rid)
        lines = text_of(screen.query_one("#run-header")).split("\n")
        assert len(lines) == 2 and all(len(line) <= 58 for line in lines)
        assert "✔ completed" in lines[0] and lines[0].startswith(f"run {rid} maze q-lear")
    app = make_app(demo_store)
    async with app.run_test(size=(200, 30)) as pilot:
        screen = await open_run_screen(app, pilot, rid)
        header = text_of(screen.query_one("#run-header"))
        assert "train episodes 300" in header
        await pilot.press("3")
        await settle(pilot)
        assert "300 episodes (300 train, 0 eval)" in text_of(screen.episodes_status)


async def test_sweep_slider_moves_one_sweep_per_key(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_run_screen(app, pilot, demo_store.demo_ids["vi"])
        assert screen.sweeps >= 8
        await pilot.press("2", "left_curly_bracket")
        await settle(pilot)
        await pilot.press(*["right_square_bracket"] * 6)  # fast: each press lands while the last reads
        await settle(pilot, 3)
        assert screen.sweep == 6 and f"Bellman sweep 6/{screen.sweeps - 1}" in text_of(screen.sweep_slider)


async def test_config_tab_resolves_defaults_and_clone_takes_the_current_name(demo_store, test_registry):
    rid = demo_store.demo_ids["q0"]
    mark(demo_store, rid, name="renamed since")
    app = make_app(demo_store)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_run_screen(app, pilot, rid)
        await pilot.press("4")
        await settle(pilot)
        config = text_of(screen.config_text)
        assert "epsilon = 0.1" in config and 'schedule = "constant"' in config  # defaults, not only what was given
        await pilot.press("escape")
        await settle(pilot)
        table = app.screen.query_one("#runs-table")
        table.move_cursor(row=table.get_row_index(str(rid)), animate=False)
        await pilot.press("c")
        await settle(pilot, 3)
        assert app.screen.query_one("#f-name").value == "renamed since"


async def test_log_opens_at_the_end_follows_and_searches(live_store, tmp_path):
    log = tmp_path / "run.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    rid = live_store.demo_ids["live"]
    mark(live_store, rid, log_path=str(log))
    app = make_app(live_store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_screen(app, pilot, rid)
        await pilot.press("5")
        await settle(pilot, 3)
        view = screen.log_view
        assert view.line_count == 1000 and view.is_vertical_scroll_end  # opens on the end
        with log.open("a") as fh:
            fh.write("".join(f"line {i}\n" for i in range(1000, 1040)) + "\x1b]0;title\x07 escaped\n")
        await wait_until(pilot, lambda: view.line_count == 1041)
        assert view.line_count == 1041 and view.is_vertical_scroll_end  # followed, like tail -f
        assert view.lines[-1] == "\\x1b]0;title\\x07 escaped"
        await pilot.press("slash", *"line 17", "enter")
        await settle(pilot)
        assert view.scroll_y <= 17 and "line 17" in view.lines[int(view.scroll_y) + 2]
        assert "match 1 of" in text_of(screen.log_status)
        await pilot.press("escape")  # closes the search, then back
        assert app.screen is screen


async def test_log_search_highlights_the_match_as_text_and_n_and_N_step_through(live_store, tmp_path):
    lines = [f"step {i} ok" for i in range(300)]
    lines[50] = "[bold]loss[/bold] diverged: NaN"  # markup in a log line stays text
    lines[120] = "LOSS spiked at [@click=app.quit]step[/]"
    lines[250] = "loss recovered, loss down"
    log = tmp_path / "run.log"
    log.write_text("\n".join(lines) + "\n")
    rid = live_store.demo_ids["live"]
    mark(live_store, rid, log_path=str(log))
    app = make_app(live_store)
    async with app.run_test(size=(100, 24)) as pilot:
        screen = await open_run_screen(app, pilot, rid)
        await pilot.press("5")
        await settle(pilot, 3)
        view = screen.log_view
        assert not screen.check_action("log_match", (1,))  # no search yet: n and N are not bound

        def shown(line: int) -> tuple[str, list[str], list[str]]:
            """The line as drawn: its text, the reversed (current) and underlined (other) matches."""
            strip = view.render_line(line - int(view.scroll_y))
            text = "".join(seg.text for seg in strip).rstrip()
            current = [seg.text for seg in strip if seg.style and seg.style.reverse]
            other = [seg.text for seg in strip if seg.style and seg.style.underline and not seg.style.reverse]
            return text, current, other

        await pilot.press("slash", *"loss", "enter")
        await settle(pilot)
        assert view.current_line == 50 and app.focused is view
        assert shown(50) == (lines[50], ["loss"], [])  # literal brackets, the match reversed inside
        await pilot.press("n")
        await settle(pilot)
        assert view.current_line == 120 and shown(120) == (lines[120], ["LOSS"], [])  # any case, kept as typed
        await pilot.press("n")
        await settle(pilot)
        assert shown(250) == (lines[250], ["loss", "loss"], [])
        await pilot.press("n")  # wraps to the first
        await settle(pilot)
        assert view.current_line == 50
        await pilot.press("N")  # and back past the start to the last
        await settle(pilot)
        assert view.current_line == 250 and "match 3 of 3" in text_of(screen.log_status)
        await pilot.press("N")
        await settle(pilot)
        assert view.current_line == 120 and shown(250)[1:] == ([], ["loss", "loss"])  # no longer current
        assert app.is_running  # the [@click] in a line did nothing


async def test_a_damaged_artifact_shows_a_message_in_its_place(demo_store):
    rid = demo_store.demo_ids["vi"]
    with demo_store.write() as s:
        for row in s.scalars(select(Artifact).where(Artifact.run_id == rid, Artifact.name.in_(["tabular", "layout"]))):
            row.data = b"\x00not what its kind says"
    app = make_app(demo_store)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_run_screen(app, pilot, rid)
        await pilot.press("2")
        await settle(pilot)
        assert app.is_running and "damaged artifacts" in text_of(screen.sweep_slider)


async def test_grids_fit_the_pane_and_draw_the_cliff():
    from rltui.tui.widgets.values import fit_cell_width, value_grid

    layout = {"kind": "grid", "rows": 2, "cols": 12, "map": ["." * 12, "SCCCCCCCCCCG"],
              "positions": [(0, c) for c in range(12)] + [(1, 0), (1, 11)]}
    V = [-14.0 + c for c in range(12)] + [-13.0, 0.0]
    width = fit_cell_width(layout, 76)
    text = value_grid(layout, V, cell_width=width).plain.split("\n")
    assert width == 6 and all(len(line) <= 76 for line in text)
    assert "-14.0 -13.0" in text[1]  # a space between neighbours, never -14.00-13.00
    assert "C░░░░░" in text[2] and "░" * 6 in text[3]  # the cliff is drawn, not blank


# --- L: ask, then cheap runs first, chains in order -----------------------------------------------------
def test_samples_are_planned_cheapest_first_with_chains_in_order():
    from rltui.tui.launching import plan_samples

    plan = plan_samples(REPO / "sample_runs")
    tiers = [tier for _, tier in plan]
    assert tiers == sorted(tiers) and tiers[0] == 0 and tiers[-1] == 2
    names = [p.stem for p, _ in plan]
    assert names.index("maze_value_iteration") < names.index("cartpole_ppo") < names.index("lm_arith_1_pretrain")
    for chain in ("lm_arith", "lm_reviews"):
        stages = [n for n in names if n.startswith(chain)]
        assert stages == sorted(stages) and len(stages) >= 3


async def test_launch_samples_asks_first_and_says_how_many(demo_store, tmp_path, monkeypatch):
    from rltui.tui import launching
    from rltui.tui.screens.dialogs import ConfirmDialog

    folder = tmp_path / "sample_runs"
    folder.mkdir()
    for name in ("maze_value_iteration", "chain_value_iteration"):
        shutil.copy(REPO / "sample_runs" / f"{name}.toml", folder)
    monkeypatch.setattr(launching, "sample_runs_dir", lambda: folder)
    app = make_app(demo_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        before = len(app.screen.rows)
        await pilot.press("L")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and "Launch the 2 sample runs" in app.screen.question
        assert "2 tabular" in app.screen.question and f"already holds {before} runs" in app.screen.question
        await pilot.press("n")
        await settle(pilot)
        with demo_store.read() as s:
            assert len(s.scalars(select(Run.id)).all()) == before  # no: nothing queued
        await pilot.press("L")
        await settle(pilot)
        await pilot.press("y")
        await wait_until(pilot, lambda: len(app.screen.rows) == before + 2)
        with demo_store.read() as s:
            new = s.scalars(select(Run.name).order_by(Run.id.desc()).limit(2)).all()
        assert len(new) == 2


# --- the palette ---------------------------------------------------------------------------------------
async def test_palette_finds_the_labs_commands_and_runs(demo_store, test_registry):
    from textual.command import CommandPalette

    from rltui.tui.screens.new_run import NewRunScreen
    from rltui.tui.screens.run import RunScreen

    app = make_app(demo_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+p")
        await settle(pilot)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"new")
        await wait_until(pilot, lambda: "New run" in screen_text(app))
        await pilot.press("enter")
        await settle(pilot, 3)
        assert isinstance(app.screen, NewRunScreen)
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*f"open {demo_store.demo_ids['vi']}")
        await wait_until(pilot, lambda: "Open run" in screen_text(app))
        await pilot.press("enter")
        await settle(pilot, 3)
        assert isinstance(app.screen, RunScreen) and app.screen.run_id == demo_store.demo_ids["vi"]


# --- cancel and resume from the run screen -------------------------------------------------------------
async def test_cancel_and_resume_from_the_run_screen(demo_store):
    from rltui.tui.screens.dialogs import ConfirmDialog

    queued = demo_store.demo_ids["queued"]
    app = make_app(demo_store)
    async with app.run_test(size=(100, 30)) as pilot:
        screen = await open_run_screen(app, pilot, queued)
        await pilot.press("u")  # a queued run cannot be resumed: it says so
        await settle(pilot)
        assert app.screen is screen
        await pilot.press("k")
        await wait_until(pilot, lambda: screen.row.get("status") == "cancelled")
        assert screen.row["status"] == "cancelled"
        await pilot.press("u")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmDialog) and f"Resume run {queued}" in app.screen.question
        await pilot.press("y")
        await settle(pilot, 3)
        with demo_store.read() as s:
            assert s.get(Run, queued).status != "cancelled"  # queued again (or already picked up)


# --- 12: contrast ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("theme", ["rltui-dark", "rltui-light"])
def test_every_text_colour_reads_at_wcag_aa_on_both_themes(theme):
    from textual.color import Color

    from rltui.tui import format as fmt
    from rltui.tui.app import lab_themes
    from rltui.tui.contrast import AA, ratio

    found = {t.name: t for t in lab_themes()}[theme]
    v = {**found.to_color_system().generate(), **found.variables}  # as App.get_css_variables combines them

    def colour(fg: str, bg: str) -> Color:
        if fg.startswith("auto"):  # Textual's auto colour: its contrast text at that alpha
            return Color.parse(bg).get_contrast_text(float(fg.split()[1].rstrip("%")) / 100)
        return Color.parse(fg)

    pairs = [("footer-key-foreground", "footer-background"), ("footer-description-foreground", "footer-background"),
             ("footer-foreground", "footer-background"), ("block-cursor-foreground", "block-cursor-background")]
    for ground in ("background", "surface", "panel"):
        pairs += [(k, ground) for k in ("foreground", "text", "text-muted", "text-accent", "text-error",
                                          "text-success", "text-warning")]
    for fg, bg in pairs:
        assert ratio(colour(v[fg], v[bg]), v[bg]) >= AA, (theme, fg, bg, ratio(colour(v[fg], v[bg]), v[bg]))
    for status in fmt.STATUS_VARS:  # every status, on every ground a runs table draws it on
        c = fmt.status_colour(status, v)
        for bg in fmt.backgrounds(v):
            assert ratio(c, bg) >= AA, (theme, status, bg, ratio(c, bg))
    # Each status its own colour (running and cancelled once shared the accent): no two closer than
    # 40 in RGB, after the nudging towards AA.
    shades = {status: Color.parse(fmt.status_colour(status, v)) for status in fmt.STATUS_VARS}
    for (a, ca), (b, cb) in itertools.combinations(shades.items(), 2):
        distance = ((ca.r - cb.r) ** 2 + (ca.g - cb.g) ** 2 + (ca.b - cb.b) ** 2) ** 0.5
        assert distance >= 40, (theme, a, ca.hex, b, cb.hex, distance)


# --- 8, 13, 15: toasts and options as text, list defaults on one line, screenshots -----------------------
async def test_toasts_keep_their_brackets(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await open_run_screen(app, pilot, demo_store.demo_ids["q_fast"])
        train = next(ep for ep in screen.episodes if not ep["has_trajectory"])
        screen.open_replay(train["id"])
        await settle(pilot)
        messages = [n.message for n in app._notifications]
        assert any("(see [record] in the config)" in m for m in messages), messages


async def test_env_options_and_list_defaults_read_as_typed(demo_store, monkeypatch):
    """A registry whose summary holds brackets and whose algo has a list default (net_arch), as
    LunarLander-v3 and PPO do; a small fixed one, so the form builds in a pilot's time."""
    from pydantic import Field
    from rich.text import Text
    from textual.widgets import Select

    from rltui import registry
    from rltui.config import Params
    from rltui.registry import AlgoSpec, EnvSpec
    from rltui.tui.screens.new_run import NewRunScreen
    from test_tui_common import TEST_ALGOS, TEST_ENVS, CartPoleParams

    class NetParams(Params):
        net_arch: list[int] = Field([64, 64], description="hidden layer widths of the MLP(s)")

    envs = {**TEST_ENVS, "LunarLander-v3": EnvSpec("LunarLander-v3", CartPoleParams, "x:y", "control",
                                                   "land a craft; needs the Box2D extra: pip install 'rltui[box2d]'")}
    algos = {**TEST_ALGOS, "ppo": AlgoSpec("ppo", NetParams, "x:y", frozenset({"control"}), "clipped policy gradient")}
    monkeypatch.setattr(registry, "_gather", lambda: (envs, algos))
    app = make_app(demo_store)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        app.push_screen(NewRunScreen(initial={"env": {"id": "LunarLander-v3"}, "algo": {"id": "ppo"}}))
        await settle(pilot, 3)
        prompts = [prompt for prompt, _ in app.screen.env_options()]
        assert all(isinstance(p, Text) for p in prompts)  # a str prompt is read as markup by Select
        app.screen.query_one("#f-env-id", Select).expanded = True
        await settle(pilot)
        assert "'rltui[box2d]'" in screen_text(app)  # markup ate "[box2d]"
        assert app.screen.query_one("#f-algo-net_arch").placeholder == "[64, 64]"  # one line, not "["


def test_form_values_are_one_line_of_toml():
    from rltui.tui.screens.new_run import format_value, parse_value

    for value in ([64, 64], ["a", "b"], {"x": 1, "y": [1.5]}, 0.5, True, "plain"):
        text = format_value(value)
        assert "\n" not in text and parse_value(text) == value


async def test_screenshot_command_saves_into_the_current_directory(demo_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        commands["Screenshot"].callback()
        await settle(pilot)
        saved = list(tmp_path.glob("*.svg"))
        assert len(saved) == 1 and "maze-vi" in saved[0].read_text()
        assert any(f"Saved {saved[0]}" in n.message for n in app._notifications)


async def test_scrolling_the_q_table_keeps_the_slider_and_heatmap_in_view(demo_store):
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_screen(app, pilot, demo_store.demo_ids["vi"])
        await pilot.press("2")
        await settle(pilot)
        slider, grid = screen.sweep_slider, screen.values_grid
        before = (slider.region.y, grid.region.y)
        box = screen.query_one("#q-table-box")
        box.focus()
        await pilot.press("end", "pagedown")
        await settle(pilot)
        assert box.scroll_y > 0  # the Q table scrolled ...
        assert (slider.region.y, grid.region.y) == before and slider.region.height == 1  # ... they did not
