"""rltui's Textual app: runs → run → replay, new run, compare, over the experiment store.

The TUI reads the store (incrementally, downsampled, in worker threads) and writes only run requests
and edits (names, tags, notes, cancel, delete). It never imports torch or gymnasium.

Start-up paints first: given a database path or URL rather than an open store, the app draws the runs
screen in its loading state, and the store (SQLAlchemy, the schema check) is opened by the runs
screen's first worker thread, after that first frame.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.theme import BUILTIN_THEMES, Theme

from rltui.text import printable
from rltui.tui.commands import LabCommands
from rltui.tui.contrast import readable
from rltui.tui.format import Clock, utc_clock

if TYPE_CHECKING:
    from rltui.store import Store
    from rltui.store.runs_table import ReturnsReader


class RlTuiApp(App):
    TITLE = "rltui"
    SUB_TITLE = "a terminal laboratory for reinforcement learning"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit", show=False),  # not a priority: a text box takes its q first
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+t", "toggle_theme", "Dark/light", show=False),
    ]
    COMMANDS = App.COMMANDS | {LabCommands}

    def __init__(self, store: Store | None = None, *, db: str | None = None, clock: Clock = utc_clock,
                 poll_interval: float = 1.0) -> None:
        super().__init__()
        self._store = store
        self._returns: ReturnsReader | None = None  # made on first use (the store's modules load late)
        self._store_lock = threading.Lock()
        self.db = db
        self.store_error: Exception | None = None  # why the store could not be opened; run_app raises it
        self.clock = clock
        self.poll_interval = poll_interval
        self._heap_frozen = False
        for theme in lab_themes():
            self.register_theme(theme)
        self.theme = "rltui-dark"

    @property
    def returns(self) -> ReturnsReader:
        """The runs' last/best returns and episode counts, read incrementally by every screen's poll."""
        if self._returns is None:
            from rltui.store.runs_table import ReturnsReader

            self._returns = ReturnsReader()
        return self._returns

    @property
    def store(self) -> Store:
        """The open store, opening it on first use (a worker thread does, once the first frame is up)."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    from rltui.store import open_store

                    self._store = open_store(self.db)
        return self._store

    @property
    def store_is_open(self) -> bool:
        return self._store is not None

    def freeze_startup_heap(self) -> None:
        """Hide what start-up built (modules, widgets, the runs read) from the cyclic garbage collector.

        Those objects live as long as the app, yet every full collection walked them all with the GIL
        held: measured at 640-680 ms per gen-2 pass while four runs wrote, the lab's worst UI stalls.
        Frozen objects are never scanned again (nor freed: they are not garbage). Done once.
        """
        if not self._heap_frozen:
            self._heap_frozen = True
            gc.freeze()

    def fail_to_open(self, error: Exception) -> None:
        """The store cannot be opened (a newer schema, not a store, no permission): leave with its message."""
        self.store_error = error
        self.exit(return_code=2)

    def on_mount(self) -> None:
        # Worker threads (store reads, plotext drawings) hold the GIL in pure Python; the UI thread,
        # which gives it up at every select(), waited up to the 5 ms default to get it back each time.
        # 1 ms halved the p99 UI stall in bench_tui.py while four runs wrote. Restored on unmount.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(0.001)
        from rltui.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())

    def on_unmount(self) -> None:
        sys.setswitchinterval(getattr(self, "_switch_interval", 0.005))

    def action_help(self) -> None:
        from rltui.tui.screens.dialogs import HelpScreen

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        keys = list(_describe(getattr(screen, "BINDINGS", [])))
        keys += [k for k in _describe(self.BINDINGS) if k not in keys]
        keys.append(("ctrl+p", "command palette: new run, open run #N or by name, compare, cancel, resume, tabs, theme, screenshot"))
        title = getattr(screen, "HELP_TITLE", type(screen).__name__)
        self.push_screen(HelpScreen(title, getattr(screen, "HELP_ABOUT", ""), keys))

    def action_sweeps(self) -> None:
        from rltui.tui.screens.sweeps import SweepsScreen

        if not isinstance(self.screen, SweepsScreen):
            self.push_screen(SweepsScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "rltui-light" if self.current_theme.dark else "rltui-dark"

    def notify(self, message: str, *, title: str = "", severity: Any = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """A toast, never read as markup: messages carry run names, paths and error text from the store
        ("see [record] in the config" lost its "[record]" as markup)."""
        super().notify(printable(message, lines=True), title=title, severity=severity, timeout=timeout,
                       markup=markup)

    def format_title(self, title: str, sub_title: str) -> Content:
        """Title — sub-title as plain text (a run's name), at full contrast (Textual dims the sub-title)."""
        title, sub_title = printable(title), printable(sub_title)
        return Content(f"{title} — {sub_title}" if sub_title else title)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, with Screenshot saving into the current directory (Textual's default,
        the desktop's downloads folder, is often not there: "Failed to save screenshot")."""
        for command in super().get_system_commands(screen):
            if command.title == "Screenshot":
                yield SystemCommand("Screenshot", f"Save an SVG screenshot of this screen in {printable(os.getcwd())}",
                                    self.action_save_screenshot)
            else:
                yield command
        yield SystemCommand("Sweeps", "Every sweep in the store, and its trials ranked by objective", self.action_sweeps)

    def action_save_screenshot(self) -> None:
        try:
            path = self.save_screenshot(path=os.getcwd())
        except OSError as exc:
            self.notify(f"Screenshot not saved: {exc}", title="Screenshot", severity="error")
            return
        self.notify(f"Saved {path}", title="Screenshot")

    # --- actions the palette and every screen share -------------------------------------------------
    def _runs(self) -> Any:
        from rltui.tui.commands import _runs_screen

        return _runs_screen(self)

    def action_go_runs(self) -> None:
        runs = self._runs()
        while runs is not None and len(self.screen_stack) > 1 and self.screen is not runs:
            self.pop_screen()

    def action_new_run(self) -> None:
        runs = self._runs()
        if runs is not None:
            self.action_go_runs()
            runs.action_new()

    def action_launch_samples(self) -> None:
        runs = self._runs()
        if runs is not None:
            self.action_go_runs()
            runs.action_launch_samples()

    def open_run(self, run_id: int) -> None:
        from rltui.tui.screens.run import RunScreen

        runs = self._runs()
        if runs is not None and runs._loaded and run_id not in runs.rows:
            self.notify(f"There is no run {run_id} in this store.", severity="warning")
            return
        self.push_screen(RunScreen(run_id))


# One hue per status, so a running run never looks cancelled (nor a crash a failure); each is then
# darkened or lightened until it reads at AA on the theme's grounds.
STATUS_COLOURS = {
    "rltui-dark": {"queued": "#9aa9b5", "running": "#4fb3ff", "completed": "#4ebf71", "failed": "#ff5c5c",
                   "cancelled": "#ffa62b", "crashed": "#d78cff"},
    "rltui-light": {"queued": "#56636e", "running": "#0059b3", "completed": "#1d7a3a", "failed": "#c4162a",
                    "cancelled": "#8f5200", "crashed": "#8a2be2"},
}


def lab_themes() -> list[Theme]:
    """Textual's dark and light themes with every text colour the lab draws at WCAG AA (4.5:1) on
    the backgrounds it draws them on (tests/test_tui_contrast.py measures each pair).

    The light theme's status colours (warning, success) and footer keys are pastel on light grey;
    both themes' table cursor is a mid blue that no status colour reads on, so it is a selection blue.
    """
    themes = []
    for base_name, name, cursor in (("textual-dark", "rltui-dark", "#264f78"), ("textual-light", "rltui-light", "#add6ff")):
        base = BUILTIN_THEMES[base_name]
        generated = base.to_color_system().generate()
        grounds = [generated[k] for k in ("background", "surface", "panel")] + [cursor]
        variables = dict(base.variables)
        for key in ("text-success", "text-warning", "text-error", "text-accent", "text-primary", "text-secondary"):
            variables[key] = readable(generated[key], grounds)
        variables["footer-key-foreground"] = readable(generated["footer-key-foreground"],
                                                      [generated["footer-background"], generated["panel"]])
        variables["block-cursor-background"] = cursor
        for status, colour in STATUS_COLOURS[name].items():
            variables[f"status-{status}"] = readable(colour, grounds)
        variables["block-cursor-foreground"] = generated["foreground"]
        themes.append(Theme(
            name=name, primary=base.primary, secondary=base.secondary, warning=base.warning, error=base.error,
            success=base.success, accent=base.accent, foreground=base.foreground, background=base.background,
            surface=base.surface, panel=base.panel, boost=base.boost, dark=base.dark,
            luminosity_spread=base.luminosity_spread, text_alpha=base.text_alpha, variables=variables))
    return themes


def _describe(bindings: Iterable) -> Iterable[tuple[str, str]]:
    for b in bindings:
        if isinstance(b, Binding):
            keys, description, display = b.key, b.description, b.key_display
        else:
            keys, description, display = b[0], (b[2] if len(b) > 2 else b[1]), None
        if not description:
            continue
        shown = display or " / ".join(_pretty(k) for k in keys.split(","))
        yield shown, description


def _pretty(key: str) -> str:
    return {"question_mark": "?", "slash": "/", "space": "space", "escape": "esc", "enter": "enter",
            "plus": "+", "minus": "-", "left_square_bracket": "[", "right_square_bracket": "]"}.get(key, key)


def run_app(db: str | None = None) -> int:
    app = RlTuiApp(db=db)
    try:
        app.run()
    finally:
        if app.store_is_open:
            app.store.dispose()
    if app.store_error is not None:
        raise app.store_error  # the CLI prints StoreError as "rltui: <message>", exit status 2
    return 0
