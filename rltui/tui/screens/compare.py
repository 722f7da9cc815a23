"""Compare runs: the return G and any metric overlaid; runs that differ only in seed become one mean
line with a min–max or standard-error band; for language-model runs an x axis of KL to the reference
(and √KL) with the proxy reward (solid) and the gold score (dashed) of each run in one colour; a table
of the hyperparameters that differ between the runs."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Header, Static

from rltui.store.models import Run
from rltui.store.queries import episode_returns, metric_downsampled, metric_keys
from rltui.text import printable
from rltui.tui import format as fmt
from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter
from rltui.tui.widgets.metric_grid import MetricGrid
from rltui.tui.widgets.plot import PALETTE, PlotData, PlotView, Series, ema_debiased

IGNORED_FOR_GROUPING = {"seed", "name"}
# The language-model runs' evaluation (rltui.algos.lm_common.evaluate): the reward model's score of
# sampled responses (the proxy the policy is trained on), the scripted oracle's (the gold), and the
# KL from the reference policy, all at the same step.
PROXY, GOLD, KL = "eval/reward_mean", "eval/oracle_score", "eval/kl"
X_LABEL = {"episode": "episode", "step": "step", "kl": "KL(π ‖ π_ref)", "sqrt_kl": "√KL(π ‖ π_ref)"}
METRIC_POINTS = 600  # per run and metric: enough for a 3-column grid at 200 columns, cheap to read


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
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean over the seeds present at each x of `grid`, with their min–max or ± standard error of the
    mean, and how many seeds there are at each x.

    A seed counts from its first x to its last: one that stopped early (cancelled at 12k of 50k
    steps) leaves the average where it ends, instead of cutting every other seed there.
    """
    ys = np.full((len(curves), grid.size), np.nan)
    for i, (x, y) in enumerate(curves):
        inside = (grid >= x[0]) & (grid <= x[-1])
        ys[i, inside] = np.interp(grid[inside], x, y)
    count = np.sum(~np.isnan(ys), axis=0)
    with warnings.catch_warnings():  # an x where no seed is (a gap between seeds) is a NaN, not a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(ys, axis=0)
        if band == "minmax":
            return mean, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), count
        sd = np.where(count > 1, np.nanstd(ys, axis=0, ddof=1), 0.0) if len(curves) > 1 else np.zeros_like(mean)
    se = np.where(count > 1, np.nan_to_num(sd) / np.sqrt(np.maximum(count, 1)), 0.0)
    return mean, mean - se, mean + se, count


def x_values(run: dict[str, Any], steps: np.ndarray, axis: str) -> np.ndarray | None:
    """The x of each step of a run on `axis` (None where the run has no such axis).

    episode: the episode index that ended at that step; kl / sqrt_kl: the run's eval/kl at that step
    (interpolated between evaluations).
    """
    if axis == "step":
        return steps
    if axis == "episode":
        if not len(run["episode"]):
            return None
        return np.interp(steps, run["step"], run["episode"])
    kl = run["metrics"].get(KL)
    if kl is None or not len(kl[0]):
        return None
    x = np.maximum(np.interp(steps, kl[0], kl[1]), 0.0)
    return np.sqrt(x) if axis == "sqrt_kl" else x


def _gold_peak_text(series: list[Series]) -> str:
    """" · gold peak 0.99 at √KL 2.0 (run 11)": the highest gold score drawn, where and whose."""
    peaks = [(max(s.ys), s.xs[s.ys.index(max(s.ys))], s.run_id) for s in series if s.role == "gold" and s.ys]
    if not peaks:
        return ""
    best, at, run_id = max(peaks)
    return f" · gold peak {fmt.num(best)} at {fmt.num(at)} (run {run_id})"


class CompareScreen(LabScreen):
    HELP_TITLE = "Compare"
    HELP_ABOUT = ("The return G and every metric of the selected runs, smoothed with a debiased EMA (/ picks "
                  "the metrics). Runs whose configs differ only in seed are drawn as one mean line over the "
                  "seeds present at each x, with a band (min–max or ± standard error); a mark shows where a "
                  "seed ends. For language-model runs the x axis can be the KL to the reference or √KL: the "
                  "proxy reward (solid) and the gold score (dashed) of each run in one colour, the gold "
                  "score's peak marked. The table lists the hyperparameters that differ.")
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("b", "band", "Band"),
        Binding("a", "group", "Group seeds"),  # a: aggregate (g is "first row" everywhere else)
        Binding("x", "cycle_x", "X axis"),
        Binding("slash", "filter", "Filter", key_display="/"),
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
        with VerticalScroll(id="compare-scroll"):
            yield PlotView(PlotData(title="episode return G", message="loading…"), id="compare-plot")
            yield MetricGrid(prefix="compare-metric-", id="compare-grid")
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
                metrics = {}
                for key in metric_keys(session, run_id):
                    pts = [p for p in metric_downsampled(session, run_id, key, METRIC_POINTS) if p.value is not None]
                    metrics[key] = (np.array([p.x for p in pts], dtype=float), np.array([p.value for p in pts], dtype=float))
                runs.append({
                    # the name shown as text: control characters escaped
                    "id": run.id, "name": printable(run.name), "config": run.config or {}, "seed": run.seed,
                    "status": run.status,
                    "episode": np.array([r[1] for r in rets], dtype=float),
                    "step": np.array([r[2] if r[2] is not None else r[1] for r in rets], dtype=float),
                    "return": np.array([r[4] for r in rets], dtype=float),
                    "metrics": metrics,
                })
        self.post(self._loaded, runs)

    def _loaded(self, runs: list[dict[str, Any]]) -> None:
        self.runs = runs
        if not any(len(r["episode"]) for r in runs):
            self.x_axis = "step"  # no training episodes (language models, dynamic programming): steps
        grid = self.query_one(MetricGrid)
        grid.ensure(sorted({k for r in runs for k in r["metrics"]}))
        self.draw_table()
        self.draw()

    @property
    def x_axes(self) -> list[str]:
        """episode and step always; KL and √KL once a run has logged eval/kl (language-model runs)."""
        axes = ["episode", "step"]
        if any(KL in r["metrics"] for r in self.runs):
            axes += ["kl", "sqrt_kl"]
        return axes

    def groups(self) -> list[list[dict[str, Any]]]:
        if not self.grouped:
            return [[r] for r in self.runs]
        by: dict[str, list[dict[str, Any]]] = {}
        for r in self.runs:
            by.setdefault(group_key(r["config"]), []).append(r)
        return list(by.values())

    def draw(self) -> None:
        kl_axis = self.x_axis in ("kl", "sqrt_kl")
        seeds = "apart on a KL axis" if kl_axis else ("grouped" if self.grouped else "apart") + " (g)"
        self.query_one("#compare-controls", Static).update(Text(
            f"x: {X_LABEL[self.x_axis]} (x) · EMA α={self.alpha:.2f} (+/-) · seeds {seeds}"
            f" · band {'min–max' if self.band == 'minmax' else '± std. error'} (b) · / metrics"), layout=False)
        plot = self.query_one("#compare-plot", PlotView)
        if kl_axis:
            series = self.proxy_gold_series(plot.columns)
            plot.set_data(PlotData(
                title="proxy reward (solid) and gold score (dashed)" + _gold_peak_text(series),
                xlabel=X_LABEL[self.x_axis], series=series,
                message=f"no run logged {PROXY} and {GOLD} with {KL}"))
        else:
            series = self.curve_series(lambda r: (r[self.x_axis], r["return"]), plot.columns)
            plot.set_data(PlotData(title="episode return G (smoothed)", xlabel=self.x_axis, series=series,
                                   message="these runs recorded no training episodes"))
        grid = self.query_one(MetricGrid)
        for key in grid.keys:
            grid.draw(key, lambda columns, key=key: self.metric_plot(key, columns))

    def metric_plot(self, key: str, columns: int) -> PlotData:
        def curve(run: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
            found = run["metrics"].get(key)
            if found is None or not len(found[0]):
                return None
            xs = x_values(run, found[0], self.x_axis)
            return None if xs is None else (xs, found[1])

        series = self.curve_series(curve, columns, apart=self.x_axis in ("kl", "sqrt_kl"))
        return PlotData(title=key, xlabel=X_LABEL[self.x_axis], series=series,
                        message=f"no run has {key} against {X_LABEL[self.x_axis]}")

    def curve_series(self, curve, columns: int, apart: bool = False) -> list[Series]:  # noqa: ANN001
        """One series per group: a run's smoothed curve, or the seeds' mean with its band."""
        series = []
        groups = [[r] for r in self.runs] if apart else self.groups()
        for i, group in enumerate(groups):
            colour = PALETTE[i % len(PALETTE)]
            curves = []
            for r in group:
                found = curve(r)
                if found is not None and len(found[1]):
                    curves.append((np.asarray(found[0], dtype=float),
                                   np.array(ema_debiased(list(found[1]), self.alpha))))
            if not curves:
                continue
            if len(curves) == 1:  # drawn whole: the plot keeps each column's min–max around its mean
                series.append(Series(f"{group[0]['id']} {group[0]['name']}"[:28], list(curves[0][0]),
                                     list(curves[0][1]), color=colour))
                continue
            lo = min(float(x[0]) for x, _ in curves)
            hi = max(float(x[-1]) for x, _ in curves)
            grid = np.linspace(lo, hi, max(2, columns))
            mean, low, high, count = seed_band(curves, grid, self.band)
            ends = sorted(float(x[-1]) for x, _ in curves if float(x[-1]) < hi)
            label = f"{group[0]['name'].rsplit('-s', 1)[0]} ×{len(curves)} seeds"
            if ends:
                label += f" ({int(count[-1])} to the end)"
            series.append(Series(label[:36], list(grid), list(mean), color=colour, lower=list(low),
                                 upper=list(high), dropouts=ends))
        return series

    def proxy_gold_series(self, columns: int) -> list[Series]:
        """For each run with a proxy and a gold score: both against KL (or √KL), one colour per run,
        the proxy solid, the gold dashed with its peak marked (Gao et al. 2022's picture of reward
        model over-optimisation: the proxy keeps rising while the gold peaks and falls)."""
        series = []
        for i, r in enumerate(self.runs):
            m = r["metrics"]
            if PROXY not in m or GOLD not in m or KL not in m:
                continue
            colour = PALETTE[i % len(PALETTE)]
            name = f"{r['id']} {r['name']}"[:22]
            for key, dashed in ((PROXY, False), (GOLD, True)):
                steps, values = m[key]
                xs = x_values(r, steps, self.x_axis)
                if xs is None or not len(xs):
                    continue
                ys = ema_debiased(list(values), self.alpha)
                # One legend entry per run (its proxy); the title says which line is which.
                series.append(Series("" if dashed else name, list(xs), ys, color=colour, dashed=dashed,
                                     mark_peak=dashed, role="gold" if dashed else "proxy", run_id=r["id"]))
        return series

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
            # Names and config values are shown as text, never as markup.
            table.add_row(Text(str(r["id"]), justify="right"), Text(r["name"]), str(group_of.get(r["id"], "")),
                          Text(fmt.num(final), justify="right"), *[Text(fmt.num(flat.get(k)) if isinstance(flat.get(k), (int, float)) and not isinstance(flat.get(k), bool) else str(flat.get(k, "–"))) for k in keys])
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
        axes = self.x_axes
        self.x_axis = axes[(axes.index(self.x_axis) + 1) % len(axes)] if self.x_axis in axes else axes[0]
        self.draw()

    def action_filter(self) -> None:
        """`/`: pick the metrics to compare by name (words or globs)."""
        self.query_one(MetricGrid).open_filter()

    def action_smooth(self, direction: int) -> None:
        self.alpha = round(min(0.99, max(0.0, self.alpha + 0.05 * direction)), 2)
        self.draw()
