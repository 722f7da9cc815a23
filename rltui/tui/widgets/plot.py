"""A plot widget drawing plotext's output itself (no textual-plotext: it breaks on plotext >= 5.3).

The widget is given series of (x, y) points already downsampled by the store query; it draws them
at its own size in a worker thread, down to the finished lines (Strips), and the UI thread only
hands those lines out until the data or the size changes.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace

import numpy as np
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
    # A band shaded around the series (min–max or ± standard error; for one run, each bucket's min–max).
    lower: list[float] | None = None
    upper: list[float] | None = None
    marker: str = "braille"
    scatter: bool = False  # points alone (a parameter against the objective), not a line
    dashed: bool = False  # a second series of the same run in the same colour (gold beside proxy)
    nan_xs: list[float] = field(default_factory=list)  # where a NaN was logged: marked, never dropped
    mark_peak: bool = False  # mark the highest point (the gold score's peak)
    # Where other series of the same group end (a seed that stopped early): marked on the line.
    dropouts: list[float] = field(default_factory=list)
    role: str = ""  # what the caller drew it as ("proxy", "gold"): for the caller's own titles and tests
    run_id: int | None = None

    @classmethod
    def envelope(cls, label: str, xs: list[float], ys: list[float | None], max_points: int, **kwargs) -> "Series":  # noqa: ANN003
        """A series of raw points shown as bucket means with each bucket's min–max shaded and its
        NaNs marked, so a spike or a best value survives the downsampling."""
        bx, mean, low, high, nans = envelope_buckets(xs, ys, max_points)
        banded = any(lo != hi for lo, hi in zip(low, high) if lo is not None)
        return cls(label, bx, mean, lower=low if banded else None, upper=high if banded else None,
                   nan_xs=nans, **kwargs)


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


def _buckets(n: int, max_points: int) -> list[tuple[int, int]]:
    """[lo, hi) index ranges splitting n points into max_points - 1 buckets plus the last point alone."""
    k = max_points - 1
    out = []
    for b in range(k):
        lo, hi = b * (n - 1) // k, max((b + 1) * (n - 1) // k, b * (n - 1) // k + 1)
        out.append((lo, hi))
    out.append((n - 1, n))
    return out


def downsample_xy(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """Evenly strided points (bucket means), the last point kept, at most max_points of them."""
    n = len(xs)
    if n <= max_points:
        return xs, ys
    out_x, out_y = [], []
    for lo, hi in _buckets(n, max_points):
        out_x.append(xs[hi - 1])
        chunk = ys[lo:hi]
        out_y.append(sum(chunk) / len(chunk))
    return out_x, out_y


def envelope_buckets(xs: list[float], ys: list[float | None], max_points: int
                     ) -> tuple[list[float], list[float | None], list[float | None], list[float | None], list[float]]:
    """(x, mean, min, max) per bucket, and the x of every bucket holding a NaN (None or nan).

    The same buckets as downsample_xy; the mean is over the finite values only, so one NaN neither
    poisons a bucket nor vanishes: it is reported in the last list.
    """
    n = len(xs)
    ranges = [(i, i + 1) for i in range(n)] if n <= max_points else _buckets(n, max(2, max_points))
    bx, mean, low, high, nans = [], [], [], [], []
    for lo, hi in ranges:
        chunk = [y for y in ys[lo:hi] if _finite(y)]
        x = xs[hi - 1]
        if len(chunk) < hi - lo:
            nans.append(x)
        if not chunk:
            continue
        bx.append(x)
        mean.append(sum(chunk) / len(chunk))
        low.append(min(chunk))
        high.append(max(chunk))
    return bx, mean, low, high, nans


# --- axis ticks: round 1-2-5 steps --------------------------------------------------------------
def nice_step(span: float, count: int) -> float:
    """The 1-2-5 step (…, 0.1, 0.2, 0.5, 1, 2, 5, …) giving about `count` intervals over `span`."""
    raw = span / max(1, count)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if raw <= m * mag * (1 + 1e-9):
            return m * mag
    return 10.0 * mag


def nice_ticks(lo: float, hi: float, count: int = 4, snap: bool = True) -> tuple[float, float, list[float], list[str]]:
    """Axis limits snapped outwards to a 1-2-5 step (or kept, `snap=False`), the round ticks between
    them and their labels.

    A constant (hi == lo up to rounding noise: 0.1 logged as 0.09999999999999999) gets a range of
    one step around it, so it draws as a flat line in the middle, labelled with its short value.
    """
    scale = max(abs(lo), abs(hi), 1e-300)
    if hi - lo <= 1e-9 * scale:
        centre = float(f"{(lo + hi) / 2:.12g}")
        step = nice_step(abs(centre) if centre else 1.0, 5)
        ticks = [centre - step, centre, centre + step]
        return ticks[0], ticks[-1], ticks, _labels(ticks, step)
    step = nice_step(hi - lo, count)
    if snap:
        first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    else:
        first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
    ticks = [i * step for i in range(first, last + 1)]
    start, stop = (ticks[0], ticks[-1]) if snap else (lo, hi)
    return start, stop, ticks, _labels(ticks, step)


def tick_label(value: float, step: float, top: float | None = None) -> str:
    """A tick's label with no more digits than the step needs: 0.1, not 0.0999999999999999917.

    Big numbers take one suffix for the whole axis, chosen by its largest tick (`top`): 200k … 1000k.
    """
    if abs(value) < step * 1e-6:
        return "0"
    top = abs(value) if top is None else top
    if top >= 10_000 and step >= 1000:
        for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if top >= div:
                decimals = max(0, -math.floor(math.log10(step / div) + 1e-9))
                return f"{value / div:.{decimals}f}{suffix}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{value:.{decimals}f}"


def _labels(ticks: list[float], step: float) -> list[str]:
    top = max(abs(t) for t in ticks)
    return [tick_label(t, step, top) for t in ticks]


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
    width, height = max(20, width), max(6, height)
    plt.plotsize(width, height)
    plt.theme("clear")
    plt.frame(True)
    if data.title:
        plt.title(data.title)
    if data.xlabel:
        plt.xlabel(data.xlabel)
    columns = max(20, width - 8)
    drawn: list[tuple[Series, str, list[float], list[float]]] = []
    nan_xs: list[float] = []
    for i, s in enumerate(data.series):
        if s.lower is None and len(s.xs) > columns:
            # More points than columns and no band given: draw bucket means with their min–max
            # shaded, so what the averaging smooths away (a spike, a best value) still shows.
            env = Series.envelope(s.label, s.xs, s.ys, columns)
            s = replace(env, color=s.color, marker=s.marker, dashed=s.dashed, mark_peak=s.mark_peak,
                        dropouts=s.dropouts, nan_xs=s.nan_xs + env.nan_xs)
        nan_xs += [x for x in s.nan_xs if _finite(x)]
        nan_xs += [x for x, y in zip(s.xs, s.ys) if _finite(x) and not _finite(y)]  # a raw NaN point
        pts = [(x, y) for x, y in zip(s.xs, s.ys) if _finite(x) and _finite(y)]
        if not pts:
            continue
        # Never more points than columns, whatever the caller sent (the last point is kept).
        xs, ys = downsample_xy([p[0] for p in pts], [p[1] for p in pts], columns)
        drawn.append((s, s.color or PALETTE[i % len(PALETTE)], xs, ys))
    if not drawn:
        plt.text(data.message or "no data yet", 0.5, 0.5, alignment="center")
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plt.xticks([])  # no made-up 0.17, 0.33, … ticks around a message
        plt.yticks([])
        return plt.build()
    # Limits over everything drawn (bands included), snapped to round 1-2-5 ticks.
    all_x = [x for _, _, xs, _ in drawn for x in xs] + nan_xs
    all_y = [y for _, _, _, ys in drawn for y in ys]
    for s, *_ in drawn:
        all_y += [v for v in (s.lower or []) + (s.upper or []) if _finite(v)]
    y0, y1, yt, yl = nice_ticks(min(all_y), max(all_y), max(2, min(5, (height - 4) // 3)))
    x0, x1, xt, xl = nice_ticks(min(all_x), max(all_x), max(2, min(8, width // 14)), snap=False)
    plt.ylim(y0, y1)
    plt.yticks(yt, yl)
    plt.xlim(x0, x1)
    plt.xticks(xt, xl)
    for s, colour, xs, ys in drawn:
        if s.lower is not None and s.upper is not None:
            _draw_band(s, colour, columns)
    for s, colour, xs, ys in drawn:
        if s.scatter:
            plt.scatter(xs, ys, label=s.label or None, color=colour, marker=s.marker)
        elif s.dashed:
            _draw_dashed(xs, ys, colour, s.label, columns)
        else:
            plt.plot(xs, ys, label=s.label or None, color=colour, marker=s.marker)
        if s.dropouts:
            marks = [(x, float(np.interp(x, xs, ys))) for x in s.dropouts if xs[0] <= x <= xs[-1]]
            if marks:
                plt.scatter([m[0] for m in marks], [m[1] for m in marks], color=colour, marker="┃",
                            label="a seed ends")
    # Peaks: each marked, only the highest named in the legend (one entry, not one per run).
    peaks = [(max(ys), xs[ys.index(max(ys))], colour) for s, colour, xs, ys in drawn if s.mark_peak]
    for y, x, colour in sorted(peaks):
        top = (y, x, colour) == max(peaks)
        plt.scatter([x], [y], color=colour, marker="▲",
                    label=f"peak {tick_label(y, nice_step(abs(y) or 1.0, 100))}" if top else None)
    if nan_xs:
        plt.scatter(sorted(set(nan_xs)), [y1] * len(set(nan_xs)), color="red", marker="×",
                    label=f"NaN ×{len(nan_xs)}")
    return plt.build()


def _draw_dashed(xs: list[float], ys: list[float], colour: str, label: str, columns: int) -> None:
    """plotext has no dashed lines: the line sampled twice per column, every other pair of dots kept."""
    if len(xs) < 2:
        plt.scatter(xs, ys, color=colour, marker="braille", label=label or None)
        return
    dense = np.linspace(xs[0], xs[-1], 2 * columns)
    keep = (np.arange(dense.size) // 2) % 2 == 0
    plt.scatter(dense[keep].tolist(), np.interp(dense, xs, ys)[keep].tolist(), color=colour, marker="braille",
                label=label or None)


def _draw_band(s: Series, colour: str, columns: int) -> None:
    """The band as a light shade filling each column from `lower` up to `upper`, under the line.

    plotext has no fill-between; a scatter holding both edges at the same x values, filled
    "internal"ly, shades every column from its lowest point to its highest, which is the band.
    """
    pts = [(x, lo, hi) for x, lo, hi in zip(s.xs, s.lower or [], s.upper or [])
           if _finite(x) and _finite(lo) and _finite(hi)]
    if not pts:
        return
    # Each column keeps the lowest low and the highest high of the points it takes (not their mean):
    # the envelope of a spike stays as tall as the spike.
    xs, lows, highs = _column_envelope(pts, columns)
    plt.scatter(xs + xs, lows + highs, color=colour, marker="░", fillx="internal")


def _column_envelope(pts: list[tuple[float, float, float]], columns: int
                     ) -> tuple[list[float], list[float], list[float]]:
    if len(pts) <= columns:
        return [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]
    xs, lows, highs = [], [], []
    for lo, hi in _buckets(len(pts), columns):
        chunk = pts[lo:hi]
        xs.append(chunk[-1][0])
        lows.append(min(p[1] for p in chunk))
        highs.append(max(p[2] for p in chunk))
    return xs, lows, highs


def _finite(v: float | None) -> bool:
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
