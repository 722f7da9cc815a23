"""A grid of metric plots that uses the terminal's width, filtered with `/` (as W&B's LEET does).

One PlotView per metric key, laid out in as many columns as fit (one at 80 columns, two at 160,
three from 210), in key order. A filter of words or globs keeps the metrics matching any of them
(`eval/ loss sys/*`), so a run with thirty SB3 metrics shows the four a user cares about.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Input, Static

from rltui.tui import format as fmt
from rltui.tui.widgets.plot import PALETTE, PlotData, PlotView, Series

MIN_CELL_WIDTH = 70  # a plot narrower than this squeezes its tick labels into the curve
MAX_COLUMNS = 3


def grid_columns(width: int) -> int:
    """Columns for a grid `width` cells wide: 1 at 80, 2 at 160, 3 from 210."""
    return max(1, min(MAX_COLUMNS, width // MIN_CELL_WIDTH))


def matches(key: str, pattern: str) -> bool:
    """Whether `key` matches any word of `pattern` (a case-insensitive substring, or a glob)."""
    words = pattern.lower().split()
    if not words:
        return True
    key = key.lower()
    return any(fnmatch.fnmatchcase(key, w) if any(c in w for c in "*?[") else w in key for w in words)


def metric_plot_data(key: str, points: Sequence[Any], xlabel: str, columns: int, colour: str) -> PlotData:
    """One metric's plot from the store's downsampled points (rltui.store.queries.MetricPoint rows:
    x, mean, min, max, NaN count): the mean as the line, each bucket's min–max shaded, NaNs marked."""
    xs = [float(p[0]) for p in points if p[1] is not None]
    ys = [float(p[1]) for p in points if p[1] is not None]
    lows = [float(p[2]) for p in points if p[1] is not None]
    highs = [float(p[3]) for p in points if p[1] is not None]
    nan_xs = [float(p[0]) for p in points if p[4]]
    nans = sum(int(p[4]) for p in points)
    banded = any(lo != hi for lo, hi in zip(lows, highs))
    series = Series("", xs, ys, color=colour, lower=lows if banded else None, upper=highs if banded else None,
                    nan_xs=nan_xs)
    if len(xs) > columns:  # the terminal got narrower since the query: the plot merges buckets
        series = Series.envelope("", xs, ys, columns, color=colour, nan_xs=nan_xs)
        if banded:
            series.lower, series.upper = _merge_envelope(xs, lows, highs, series.xs)
    last = next((p[1] for p in reversed(points) if p[1] is not None), None)
    title = f"{key} (last {fmt.num(last) if last is not None else 'NaN'}"
    title += f", {nans} NaN)" if nans else ")"
    return PlotData(title=title, xlabel=xlabel, series=[series])


def _merge_envelope(xs: list[float], lows: list[float], highs: list[float], edges: list[float]
                    ) -> tuple[list[float], list[float]]:
    """The lowest low and highest high of the points up to each merged bucket's last x."""
    out_lo, out_hi, i = [], [], 0
    for edge in edges:
        lo, hi = float("inf"), float("-inf")
        while i < len(xs) and xs[i] <= edge:
            lo, hi = min(lo, lows[i]), max(hi, highs[i])
            i += 1
        out_lo.append(lo if lo != float("inf") else out_lo[-1] if out_lo else 0.0)
        out_hi.append(hi if hi != float("-inf") else out_hi[-1] if out_hi else 0.0)
    return out_lo, out_hi


def system_line(metric_points: dict[str, Sequence[Any]]) -> str:
    """The run header's system figures from the latest `sys/*` points ("" for a run without them)."""
    from rltui.runner.sysmetrics import header_text

    latest = {k: pts[-1][1] for k, pts in metric_points.items() if k.startswith("sys/") and pts and pts[-1][1] is not None}
    text = header_text(latest)
    return f" · {text}" if text else ""


def plot_id(key: str, prefix: str = "metric-") -> str:
    return prefix + "".join(ch if ch.isalnum() else "_" for ch in key)


class MetricGrid(Vertical):
    """Metric plots in a width-filling grid, with a filter box opened by `open_filter()` (`/`)."""

    DEFAULT_CSS = """
    MetricGrid { height: auto; }
    MetricGrid > #metric-filter { display: none; }
    MetricGrid > #metric-filter.visible { display: block; }
    MetricGrid > .metric-grid-status { height: 1; padding: 0 1; color: $text-muted; }
    MetricGrid > Grid { height: auto; grid-size: 1; grid-rows: 12; grid-gutter: 0 1; }
    MetricGrid > Grid > PlotView { height: 12; }
    """

    def __init__(self, *, prefix: str = "metric-", id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self.prefix = prefix
        self.filter_text = ""
        self.keys: list[str] = []
        # key -> what to draw it with; redrawn on resize and when the filter shows it again.
        self._drawers: dict[str, Callable[[int], PlotData]] = {}

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter metrics: words or globs, any of them (eval/ loss sys/*) — enter keeps, "
                                "escape clears", id="metric-filter")
        yield Static("", classes="metric-grid-status")
        yield Grid()

    @property
    def grid(self) -> Grid:
        return self.query_one(Grid)

    def on_resize(self, event: events.Resize) -> None:
        self.grid.styles.grid_size_columns = grid_columns(event.size.width)

    def on_mount(self) -> None:
        self.grid.styles.grid_size_columns = grid_columns(self.app.size.width)
        self._show_status()

    # --- metrics ---------------------------------------------------------------------------------
    def ensure(self, keys: Iterable[str]) -> None:
        """A plot for every key (new keys mounted in order; the filter decides which show)."""
        new = [k for k in keys if k not in self.keys]
        if not new:
            return
        self.keys = sorted(set(self.keys) | set(new))
        grid = self.grid
        for key in new:
            plot = PlotView(PlotData(title=key, message="loading…"), id=plot_id(key, self.prefix))
            plot.display = matches(key, self.filter_text)
            after = [k for k in self.keys if k > key and grid.query(f"#{plot_id(k, self.prefix)}")]
            if after:
                grid.mount(plot, before=grid.query_one(f"#{plot_id(after[0], self.prefix)}"))
            else:
                grid.mount(plot)
        self._show_status()

    def colour(self, key: str) -> str:
        """A colour per metric that stays put as keys arrive (by name, not by position)."""
        return PALETTE[1 + sum(map(ord, key)) % (len(PALETTE) - 2)]

    def draw(self, key: str, make: Callable[[int], PlotData]) -> None:
        """Draw `key` with `make(columns)` (now if its plot shows, else when the filter brings it back)."""
        self._drawers[key] = make
        self._redraw(key)

    def show_series(self, key: str, title: str, xlabel: str, series: Sequence[Series]) -> None:
        self.draw(key, lambda _columns: PlotData(title=title, xlabel=xlabel, series=list(series)))

    def _redraw(self, key: str) -> None:
        found = self.grid.query(f"#{plot_id(key, self.prefix)}")
        make = self._drawers.get(key)
        if not found or make is None:
            return
        plot = found.first(PlotView)
        if plot.display:
            plot.set_data(make(plot.columns))

    def on_plot_view_resized(self, message: PlotView.Resized) -> None:
        message.stop()  # ours: the screen's own resize handling is for its other plots
        for key in self.keys:
            if plot_id(key, self.prefix) == message.plot.id:
                self._redraw(key)

    @property
    def shown(self) -> list[str]:
        return [k for k in self.keys if matches(k, self.filter_text)]

    # --- the filter ------------------------------------------------------------------------------
    def open_filter(self) -> None:
        box = self.query_one("#metric-filter", Input)
        box.add_class("visible")
        box.value = self.filter_text
        box.focus()

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        for key in self.keys:
            found = self.grid.query(f"#{plot_id(key, self.prefix)}")
            if found:
                show = matches(key, self.filter_text)
                plot = found.first(PlotView)
                was = plot.display
                plot.display = show
                if show and not was:
                    self._redraw(key)
        self._show_status()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "metric-filter":
            event.stop()
            self.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "metric-filter":
            event.stop()
            self._close_filter(keep=True)

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape" and self.query_one("#metric-filter", Input).has_focus:
            event.stop()
            event.prevent_default()
            self._close_filter(keep=False)

    def _close_filter(self, keep: bool) -> None:
        box = self.query_one("#metric-filter", Input)
        if not keep:
            self.set_filter("")
        box.remove_class("visible")
        self.screen.set_focus(None)

    def _show_status(self) -> None:
        status = self.query_one(".metric-grid-status", Static)
        if not self.keys:
            status.update("")
            status.display = False
            return
        status.display = True
        shown = len(self.shown)
        text = f"{len(self.keys)} metrics"
        if self.filter_text:
            text = f"filter '{self.filter_text}': {shown} of {len(self.keys)} metrics"
        status.update(Text(f"{text} · / to filter"), layout=False)
