"""Compare runs: return curves overlaid; runs that differ only in seed become one mean line with a
min–max or standard-error band; a table of the hyperparameters that differ between the runs."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Header, Static

from rltui.store.models import Run
from rltui.store.queries import episode_returns
from rltui.tui import format as fmt
from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter
from rltui.tui.widgets.plot import PALETTE, PlotData, PlotView, Series, downsample_xy, ema_debiased

IGNORED_FOR_GROUPING = {"seed", "name"}


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def group_key(config: dict[str, Any]) -> str:
    """Runs with the same key differ only in seed (and name)."""
    flat = {k: v for k, v in flatten(config).items() if k not in IGNORED_FOR_GROUPING and not k.startswith("record.")}
    return json.dumps(flat, sort_keys=True, default=str)


def differing(configs: list[dict[str, Any]]) -> list[str]:
    flats = [flatten(c) for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    return [k for k in keys if k != "name" and len({json.dumps(f.get(k), default=str) for f in flats}) > 1]


def seed_band(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray, band: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds on a common x grid, with min–max or ± standard error of the mean."""
    ys = np.stack([np.interp(grid, x, y) for x, y in curves])
    mean = ys.mean(axis=0)
    if band == "minmax":
        return mean, ys.min(axis=0), ys.max(axis=0)
    se = ys.std(axis=0, ddof=1) / np.sqrt(len(curves)) if len(curves) > 1 else np.zeros_like(mean)
    return mean, mean - se, mean + se


class CompareScreen(LabScreen):
    HELP_TITLE = "Compare"
    HELP_ABOUT = ("Return curves of the selected runs, smoothed with a debiased EMA. Runs whose configs differ "
                  "only in seed are drawn as one mean line with a band (min–max or ± standard error). The table "
                  "lists the hyperparameters that differ.")
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("b", "band", "Band"),
        Binding("g", "group", "Group seeds"),
        Binding("x", "cycle_x", "X axis"),
        Binding("plus,equals_sign", "smooth(1)", "Smoother", key_display="+"),
        Binding("minus", "smooth(-1)", "Rougher", key_display="-", show=False),
    ]

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.runs: list[dict[str, Any]] = []
        self.band = "minmax"
        self.grouped = True
        self.x_axis = "episode"
        self.alpha = 0.6

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="compare-controls", classes="plot-controls")
        yield PlotView(PlotData(title="episode return G", message="loading…"), id="compare-plot")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)
        yield LabFooter()

    def on_mount(self) -> None:
        self.sub_title = f"comparing {len(self.run_ids)} runs"
        self.load()

    @work(thread=True, exclusive=True, group="compare-load")
    def load(self) -> None:
        runs = []
        with self.lab.store.read() as session:
            for run_id in self.run_ids:
                run = session.get(Run, run_id)
                if run is None:
                    continue
                rets = episode_returns(session, run_id)
                runs.append({
                    "id": run.id, "name": run.name, "config": run.config or {}, "seed": run.seed,
                    "status": run.status,
                    "episode": np.array([r[1] for r in rets], dtype=float),
                    "step": np.array([r[2] if r[2] is not None else r[1] for r in rets], dtype=float),
                    "return": np.array([r[4] for r in rets], dtype=float),
                })
        self.post(self._loaded, runs)

    def _loaded(self, runs: list[dict[str, Any]]) -> None:
        self.runs = runs
        self.draw_table()
        self.draw()

    def groups(self) -> list[list[dict[str, Any]]]:
        if not self.grouped:
            return [[r] for r in self.runs]
        by: dict[str, list[dict[str, Any]]] = {}
        for r in self.runs:
            by.setdefault(group_key(r["config"]), []).append(r)
        return list(by.values())

    def draw(self) -> None:
        self.query_one("#compare-controls", Static).update(
            f"x: {self.x_axis} (x) · EMA α={self.alpha:.2f} (+/-) · seeds {'grouped' if self.grouped else 'apart'} (g)"
            f" · band {'min–max' if self.band == 'minmax' else '± std. error'} (b)")
        plot = self.query_one("#compare-plot", PlotView)
        n = plot.columns
        series = []
        for i, group in enumerate(self.groups()):
            colour = PALETTE[i % len(PALETTE)]
            curves = [(r[self.x_axis], np.array(ema_debiased(list(r["return"]), self.alpha)))
                      for r in group if len(r["return"])]
            if not curves:
                continue
            if len(curves) == 1:
                r = group[0]
                xs, ys = downsample_xy(list(curves[0][0]), list(curves[0][1]), n)
                series.append(Series(f"{r['id']} {r['name']}"[:28], xs, ys, color=colour))
                continue
            lo = max(float(x[0]) for x, _ in curves)
            hi = min(float(x[-1]) for x, _ in curves)
            if hi <= lo:
                hi = max(float(x[-1]) for x, _ in curves)
            grid = np.linspace(lo, hi, max(2, n))
            mean, low, high = seed_band(curves, grid, self.band)
            label = f"{group[0]['name'].rsplit('-s', 1)[0]} ×{len(curves)} seeds"
            series.append(Series(label[:28], list(grid), list(mean), color=colour, lower=list(low), upper=list(high)))
        plot.set_data(PlotData(title="episode return G (smoothed)", xlabel=self.x_axis, series=series,
                               message="these runs recorded no training episodes"))

    def draw_table(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        table.clear(columns=True)
        keys = differing([r["config"] for r in self.runs])
        group_of = {}
        for gi, group in enumerate(self.groups()):
            for r in group:
                group_of[r["id"]] = gi + 1
        table.add_column("ID", key="id")
        table.add_column("Name", key="name")
        table.add_column("Grp", key="group")
        table.add_column("Final G", key="final")
        for k in keys:
            table.add_column(k, key=k)
        for r in self.runs:
            flat = flatten(r["config"])
            final = float(r["return"][-1]) if len(r["return"]) else None
            table.add_row(Text(str(r["id"]), justify="right"), r["name"], str(group_of.get(r["id"], "")),
                          Text(fmt.num(final), justify="right"), *[fmt.num(flat.get(k)) if isinstance(flat.get(k), (int, float)) and not isinstance(flat.get(k), bool) else str(flat.get(k, "–")) for k in keys])
        if not keys:
            self.notify("These runs have identical configs.", timeout=3)

    def action_band(self) -> None:
        self.band = "se" if self.band == "minmax" else "minmax"
        self.draw()

    def action_group(self) -> None:
        self.grouped = not self.grouped
        self.draw_table()
        self.draw()

    def action_cycle_x(self) -> None:
        self.x_axis = "step" if self.x_axis == "episode" else "episode"
        self.draw()

    def action_smooth(self, direction: int) -> None:
        self.alpha = round(min(0.99, max(0.0, self.alpha + 0.05 * direction)), 2)
        self.draw()
