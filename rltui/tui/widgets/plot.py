"""A plot widget drawing plotext's output itself (no textual-plotext: it breaks on plotext >= 5.3).

The widget is given series of (x, y) points already downsampled by the store query; it draws them
at its own size in a worker thread, down to the finished lines (Strips), and the UI thread only
hands those lines out until the data or the size changes.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import plotext as plt
from rich.console import Console
from rich.style import Style
from rich.text import Text
from textual import events, work
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

# plotext keeps one global figure: one drawing at a time, whichever thread draws.
_PLOTEXT_LOCK = threading.Lock()

# Colours that read on dark and light backgrounds alike (plotext names).
PALETTE = ["blue", "orange", "green", "magenta", "cyan", "red", "yellow", "gray"]


@dataclass
class Series:
    label: str
    xs: list[float]
    ys: list[float]
    color: str | None = None
    # A band shaded around the series (min–max or ± standard error).
    lower: list[float] | None = None
    upper: list[float] | None = None
    marker: str = "braille"
    scatter: bool = False  # points alone (a parameter against the objective), not a line


@dataclass
class PlotData:
    title: str = ""
    xlabel: str = ""
    series: list[Series] = field(default_factory=list)
    message: str = ""


def ema_debiased(values: list[float], alpha: float) -> list[float]:
    """TensorBoard-style smoothing: s_t = α s_{t-1} + (1-α) x_t, divided by (1 - α^t) to debias."""
    out, s, weight = [], 0.0, 0.0
    for v in values:
        s = alpha * s + (1 - alpha) * v
        weight = alpha * weight + (1 - alpha)
        out.append(s / weight if weight > 0 else v)
    return out


def downsample_xy(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """Evenly strided points (bucket means), the last point kept, at most max_points of them."""
    n = len(xs)
    if n <= max_points:
        return xs, ys
    k = max_points - 1
    out_x, out_y = [], []
    for b in range(k):
        lo, hi = b * (n - 1) // k, max((b + 1) * (n - 1) // k, b * (n - 1) // k + 1)
        out_x.append(xs[hi - 1])
        chunk = ys[lo:hi]
        out_y.append(sum(chunk) / len(chunk))
    out_x.append(xs[-1])
    out_y.append(ys[-1])
    return out_x, out_y


def plot_lines(data: PlotData, width: int, height: int) -> list[Strip]:
    """`data` drawn at width x height, as the lines a widget hands to Textual (safe off the UI thread).

    A Static given the same text turns it into Textual content and lays it out on the UI thread
    (22 ms per plot redraw, measured under cProfile); these Strips are built here, off the UI thread.
    """
    with _PLOTEXT_LOCK:
        text = Text.from_ansi(_render_plot(data, width, height), no_wrap=True)
        lines = text.split("\n", allow_blank=True)
        return [Strip(line.render(_LINE_CONSOLE), line.cell_len).simplify() for line in lines]


# Renders Text into segments for plot_lines (only ever under _PLOTEXT_LOCK); never writes anywhere.
_LINE_CONSOLE = Console(width=1000, color_system="truecolor", force_terminal=True, legacy_windows=False)


def _render_plot(data: PlotData, width: int, height: int) -> str:
    """plotext's build() string for `data` at width x height cells (hold _PLOTEXT_LOCK)."""
    plt.clf()
    plt.limitsize(False, False)  # plotext would cap the size at the terminal's (80 columns when headless)
    plt.plotsize(max(20, width), max(6, height))
    plt.theme("clear")
    plt.frame(True)
    if data.title:
        plt.title(data.title)
    if data.xlabel:
        plt.xlabel(data.xlabel)
    drawn = False
    for i, s in enumerate(data.series):
        pts = [(x, y) for x, y in zip(s.xs, s.ys) if _finite(x) and _finite(y)]
        if not pts:
            continue
        colour = s.color or PALETTE[i % len(PALETTE)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        if s.scatter:
            plt.scatter(xs, ys, label=s.label or None, color=colour, marker=s.marker)
            drawn = True
            continue
        # Never more points than columns, whatever the caller sent (the last point is kept).
        xs, ys = downsample_xy(xs, ys, max(20, width - 8))
        if s.lower is not None and s.upper is not None:
            _draw_band(s, colour, max(20, width - 8))
        plt.plot(xs, ys, label=s.label or None, color=colour, marker=s.marker)
        drawn = True
    if not drawn:
        plt.text(data.message or "no data yet", 0.5, 0.5, alignment="center")
        plt.xlim(0, 1)
        plt.ylim(0, 1)
    return plt.build()


def _draw_band(s: Series, colour: str, columns: int) -> None:
    """The band as a light shade filling each column from `lower` up to `upper`, under the line.

    plotext has no fill-between; a scatter holding both edges at the same x values, filled
    "internal"ly, shades every column from its lowest point to its highest, which is the band.
    """
    pts = [(x, lo, hi) for x, lo, hi in zip(s.xs, s.lower or [], s.upper or [])
           if _finite(x) and _finite(lo) and _finite(hi)]
    if not pts:
        return
    xs, lows = downsample_xy([p[0] for p in pts], [p[1] for p in pts], columns)
    _, highs = downsample_xy([p[0] for p in pts], [p[2] for p in pts], columns)
    plt.scatter(xs + xs, lows + highs, color=colour, marker="░", fillx="internal")


def _finite(v: float) -> bool:
    return v is not None and not (isinstance(v, float) and (math.isnan(v) or math.isinf(v)))


class PlotView(Widget):
    """Draws a PlotData with plotext at the widget's size.

    plotext takes tens of milliseconds per plot, so drawing happens in a worker thread and the
    widget shows the finished text; the UI thread never waits for plotext.
    """

    DEFAULT_CSS = """
    PlotView { height: 12; min-height: 6; }
    """

    class Resized(Message):
        """The plot's width changed: its owner may want to send points for the new width."""

        def __init__(self, plot: "PlotView") -> None:
            super().__init__()
            self.plot = plot

    def __init__(self, data: PlotData | None = None, **kwargs) -> None:  # noqa: ANN003
        super().__init__(**kwargs)
        self._data = data or PlotData()
        self._lines: list[Strip] = []
        self._line_cache: dict[tuple[int, int, Style], Strip] = {}
        self._drawn: tuple[int, int, int] | None = None
        self._version = 0

    @property
    def data(self) -> PlotData:
        return self._data

    def set_data(self, data: PlotData) -> None:
        self._data = data
        self._version += 1
        self._schedule()

    @property
    def columns(self) -> int:
        """How many points are worth drawing: one per character column of the plot area.

        Taken from the terminal's width, not this widget's: the terminal's is known before layout, so
        the query that downsamples (often run before the widget is laid out) and every redraw agree.
        """
        width = self.app.size.width if self.is_attached else 80
        return max(20, width - 10)

    def on_mount(self) -> None:
        self._schedule()

    def on_resize(self, event: events.Resize) -> None:
        self._schedule()
        self.post_message(self.Resized(self))

    def _schedule(self) -> None:
        w, h = self.content_size.width, self.content_size.height
        if not self.is_mounted or w <= 0 or h <= 0 or self._drawn == (w, h, self._version):
            return
        self._draw(self.app, self._data, w, h, self._version)

    @work(thread=True, exclusive=True, group="plot-draw")
    def _draw(self, app, data: PlotData, w: int, h: int, version: int) -> None:  # noqa: ANN001
        lines = plot_lines(data, w, h)
        try:
            app.call_from_thread(self._show, lines, (w, h, version))
        except RuntimeError:  # the app has closed
            pass

    def _show(self, lines: list[Strip], key: tuple[int, int, int]) -> None:
        if key[2] < self._version and self._drawn is not None and self._drawn[2] > key[2]:
            return  # an older drawing finishing late
        self._lines, self._drawn = lines, key
        self._line_cache.clear()
        self.refresh()

    @property
    def text(self) -> str:
        """What the plot shows, as plain text (for tests and the curious)."""
        return "\n".join(line.text for line in self._lines)

    def render_line(self, y: int) -> Strip:
        width, style = self.size.width, self.rich_style
        key = (y, width, style)
        strip = self._line_cache.get(key)
        if strip is None:
            if y >= len(self._lines):
                strip = Strip.blank(width, style)
            else:  # the widget's colours beneath the plot's own, cropped or padded to the width
                strip = self._lines[y].apply_style(style).crop_extend(0, width, style)
            self._line_cache[key] = strip
        return strip
