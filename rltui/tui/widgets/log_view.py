"""The Log tab's view: Textual's Log (plain lines, follows the end) that highlights a search's
matches inside their lines, the current one reversed, the others underlined.

Lines stay text: each is a rich Text built from the line as it is (Log never reads markup), and the
highlight only styles spans of it, so a log line holding `[bold]` shows those characters.
"""

from __future__ import annotations

from rich.highlighter import Highlighter
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widgets import Log

CURRENT = Style(reverse=True, bold=True)
OTHER = Style(underline=True, bold=True)


class MatchHighlighter(Highlighter):
    """Styles every case-insensitive occurrence of `needle` in a line."""

    def __init__(self) -> None:
        self.needle = ""
        self.current = False  # the line being styled is the current match's

    def highlight(self, text: Text) -> None:
        if not self.needle:
            return
        haystack, n, style = text.plain.lower(), len(self.needle), CURRENT if self.current else OTHER
        at = haystack.find(self.needle)
        while at >= 0:
            text.stylize(style, at, at + n)
            at = haystack.find(self.needle, at + n)


class LogView(Log):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 — Log's own
        super().__init__(*args, highlight=True, **kwargs)
        self.highlighter = MatchHighlighter()
        self.current_line: int | None = None

    def show_matches(self, needle: str, current_line: int | None) -> None:
        """Highlight `needle` (any case) in every line, the one at `current_line` as the current match."""
        self.highlighter.needle = needle.lower()
        self.current_line = current_line
        self._render_line_cache.clear()  # lines render once and are kept: redo them with the highlight
        self.refresh()

    def _render_line_strip(self, y: int, rich_style: Style) -> Strip:
        self.highlighter.current = y == self.current_line
        return super()._render_line_strip(y, rich_style)
