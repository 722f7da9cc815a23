"""The lab's own commands in the command palette (ctrl+p), beside Textual's (theme, keys, quit).

Every command is an action of the screen the palette was opened on, or of the app, so the palette and
the keys do the same thing: "new" finds New run, "open 12" (or "12", or part of a run's name) opens
run 12, and the Runs and run screens add compare, cancel, resume, their tabs and plot axes.
Run names are store text: they are matched and shown as plain text, never as markup.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterator

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

Command = tuple[str, str, Callable[[], Any]]  # name, help, what it does
RUNS_OFFERED = 400  # runs offered by name (the newest first); any id can be typed


class LabCommands(Provider):
    def commands(self) -> Iterator[Command]:
        screen: Any = self.screen
        app: Any = self.app
        from rltui.tui.screens.run import RunScreen
        from rltui.tui.screens.runs import RunsScreen

        runs = _runs_screen(app)
        yield "New run", "configure and launch a run (n)", partial(app.run_action, "new_run")
        yield "Launch the sample runs", "queue every sample config, cheapest first (L; asks first)", \
            partial(app.run_action, "launch_samples")
        if isinstance(screen, RunsScreen):
            yield "Compare selected runs", "overlay the selected runs' curves (m)", partial(screen.run_action, "compare")
            yield "Cancel run", "stop the selected runs or the one under the cursor (k)", \
                partial(screen.run_action, "cancel_run")
            yield "Resume run", "continue a crashed, cancelled or failed run (u)", partial(screen.run_action, "resume_run")
            yield "Filter runs", "by name, env, algo, tag, note or status (/)", partial(screen.run_action, "filter")
            yield "Choose columns", "which columns the runs table shows (v)", partial(screen.run_action, "choose_columns")
            yield "Compact or wide table", "switch the runs table's layout (z)", partial(screen.run_action, "toggle_compact")
        if isinstance(screen, RunScreen):
            for tab, key in screen.visible_tabs():
                yield f"Go to tab {tab.title()}", f"show the {tab} tab ({key})", partial(screen.run_action, f"tab('{tab}')")
            yield "Switch plots' x axis", f"step → episode → wall time; now {screen.x_axis} (x)", \
                partial(screen.run_action, "cycle_x")
            yield "Smoother return curve", "raise the EMA's α (+)", partial(screen.run_action, "smooth(1)")
            yield "Rougher return curve", "lower the EMA's α (-)", partial(screen.run_action, "smooth(-1)")
            yield "Replay an episode", "the one under the cursor, else the latest recorded (R)", \
                partial(screen.run_action, "replay")
            yield "Cancel this run", "stop it: graceful, then forced (k)", partial(screen.run_action, "cancel_run")
            yield "Resume this run", "continue it if it crashed, was cancelled or failed (u)", \
                partial(screen.run_action, "resume_run")
            yield "Search the log", "find text in the Log tab (/)", partial(screen.run_action, "search_log")
        if runs is not None and not isinstance(screen, RunsScreen):
            yield "Go to the runs table", "back to the list of runs", partial(app.run_action, "go_runs")

    def run_hits(self) -> Iterator[tuple[str, Callable[[], Any]]]:
        """("run 12 NAME", open it) for the runs the Runs screen holds, newest first."""
        runs = _runs_screen(self.app)
        if runs is None:
            return
        from rltui.text import clip

        for run_id in sorted(runs.rows, reverse=True)[:RUNS_OFFERED]:
            row = runs.rows[run_id]
            yield f"Open run {run_id} {clip(row['name'], 60)}", partial(self.app.open_run, run_id)

    async def discover(self) -> Hits:
        for name, help_text, command in self.commands():
            yield DiscoveryHit(Content(name), command, text=name, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, command in self.commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, _highlight(matcher, name), command, text=name, help=help_text)
        words = query.replace("#", " ").split()
        typed_id = next((int(w) for w in words if w.isdigit()), None)
        if typed_id is not None:
            yield Hit(1.0, Content(f"Open run {typed_id}"), partial(self.app.open_run, typed_id),
                      text=f"Open run {typed_id}", help="open the run with this id")
        for name, command in self.run_hits():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score * 0.9, _highlight(matcher, name), command, text=name, help="open this run")


def _highlight(matcher: Any, candidate: str) -> Content:
    """Textual's Matcher.highlight reads its candidate as markup; this styles plain text."""
    content = Content(candidate)
    score, offsets = matcher.fuzzy_search.match(matcher.query, candidate)
    if not score:
        return content
    for offset in offsets:
        if not candidate[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


def _runs_screen(app: Any) -> Any:
    from rltui.tui.screens.runs import RunsScreen

    for screen in app.screen_stack:
        if isinstance(screen, RunsScreen):
            return screen
    return None
