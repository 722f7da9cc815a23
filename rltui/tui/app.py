"""rltui's Textual app: runs → run → replay, new run, compare, over the experiment store.

The TUI reads the store (incrementally, downsampled, in worker threads) and writes only run requests
and edits (names, tags, notes, cancel, delete). It never imports torch or gymnasium.
"""

from __future__ import annotations

from typing import Iterable

from textual.app import App
from textual.binding import Binding

from rltui.store import Store, open_store
from rltui.tui.format import Clock, utc_clock


class RlTuiApp(App):
    TITLE = "rltui"
    SUB_TITLE = "a terminal laboratory for reinforcement learning"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("ctrl+t", "toggle_theme", "Dark/light", show=False),
    ]

    def __init__(self, store: Store, *, clock: Clock = utc_clock, poll_interval: float = 1.0) -> None:
        super().__init__()
        self.store = store
        self.clock = clock
        self.poll_interval = poll_interval

    def on_mount(self) -> None:
        from rltui.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())

    def action_help(self) -> None:
        from rltui.tui.screens.dialogs import HelpScreen

        screen = self.screen
        if isinstance(screen, HelpScreen):
            return
        keys = list(_describe(getattr(screen, "BINDINGS", [])))
        keys += [k for k in _describe(self.BINDINGS) if k not in keys]
        keys.append(("ctrl+p", "command palette (themes, screens, quit)"))
        title = getattr(screen, "HELP_TITLE", type(screen).__name__)
        self.push_screen(HelpScreen(title, getattr(screen, "HELP_ABOUT", ""), keys))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"


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
    RlTuiApp(open_store(db)).run()
    return 0
