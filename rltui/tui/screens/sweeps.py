"""Sweeps in the lab: every sweep in the store, and one sweep's trials ranked live by objective, each
parameter drawn against the objective, and the best trial's config. Selected trials go to Compare.

The store is read through rltui.sweeps.trials (plain SQL) in worker threads; nothing here imports
Optuna, Ray or torch. Only the screen in front polls.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Header, Static

from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter
from rltui.tui.widgets.plot import PlotData, PlotView, Series


def _value(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"


def _param(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class SweepsScreen(LabScreen):
    HELP_TITLE = "Sweeps"
    HELP_ABOUT = "Every sweep in the store, updated live. Enter opens a sweep's trials, ranked by objective."
    CSS_PATH = "sweeps.tcss"
    AUTO_FOCUS = "#sweeps-table"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "open", "Open", show=False),
        Binding("k", "cancel_sweep", "Cancel"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="sweeps-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="sweeps-status", classes="statusline")
        yield LabFooter()

    def on_mount(self) -> None:
        self.sub_title = "sweeps"
        table = self.query_one("#sweeps-table", DataTable)
        for key, label in (("id", "ID"), ("name", "Name"), ("method", "Method"), ("engine", "Engine"),
                           ("status", "Status"), ("trials", "Trials"), ("best", "Best"), ("objective", "Objective")):
            table.add_column(label, key=key)
        self.load()
        self.set_interval(self.lab.poll_interval, self.poll)

    def poll(self) -> None:
        if self.is_on_top:
            self.load()

    def on_screen_resume(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="sweeps-load")
    def load(self) -> None:
        from rltui.sweeps.trials import best_trial, list_sweeps, load_trials, refresh_sweeps

        store = self.lab.store
        refresh_sweeps(store)
        rows = []
        for sweep in list_sweeps(store):
            trials = load_trials(store, sweep)
            objective = sweep.spec["objective"]
            best = best_trial(trials, objective["mode"])
            done = sum(t.status in ("completed", "pruned", "failed") for t in trials)
            rows.append({"id": sweep.id, "name": sweep.name, "method": sweep.spec["method"],
                         "engine": sweep.spec["engine"], "status": sweep.status,
                         "trials": f"{done}/{sweep.spec['trials']}",
                         "best": "" if best is None else f"{_value(best.value)} (#{best.trial})",
                         "objective": f"{objective['mode']} {objective['use']} {objective['metric']}"})
        self.post(self._show, rows)

    def _show(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#sweeps-table", DataTable)
        cursor = self.cursor_id()
        self.rows = rows
        table.clear()
        for r in rows:
            table.add_row(*(Text(str(r[k])) for k in ("id", "name", "method", "engine", "status", "trials", "best",
                                                       "objective")), key=str(r["id"]))
        ids = [r["id"] for r in rows]
        if cursor in ids:
            table.move_cursor(row=ids.index(cursor))
        self.query_one("#sweeps-status", Static).update(
            Text(f"{len(rows)} sweeps" if rows else "no sweeps yet: rltui sweep SWEEP.toml (see sample_runs/sweeps/)"))

    def cursor_id(self) -> int | None:
        table = self.query_one("#sweeps-table", DataTable)
        if not self.rows or table.cursor_row is None or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]["id"]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        sweep_id = self.cursor_id()
        if sweep_id is not None:
            self.lab.push_screen(SweepScreen(sweep_id))

    def action_cancel_sweep(self) -> None:
        sweep_id = self.cursor_id()
        if sweep_id is not None:
            cancel_sweep(self, sweep_id)


def cancel_sweep(screen: LabScreen, sweep_id: int) -> None:
    """Ask the sweep's driver to stop (it cancels the trials' runs and records `cancelled`)."""
    from rltui.sweeps.trials import SWEEP_RUNNING, get_sweep, update_sweep

    sweep = get_sweep(screen.lab.store, sweep_id)
    if sweep is None or sweep.status != SWEEP_RUNNING:
        screen.notify(f"sweep {sweep_id} is not running", severity="warning")
        return
    update_sweep(screen.lab.store, sweep_id, cancel_requested=True)
    screen.notify(f"sweep {sweep_id}: cancelling (its driver stops the trials' runs)")


class SweepScreen(LabScreen):
    HELP_TITLE = "Sweep"
    HELP_ABOUT = ("A sweep's trials ranked live by objective (the mean over seeds), each parameter drawn against "
                  "the objective, and the best trial's config. Select trials with space and press m to compare "
                  "their runs; enter opens a trial's first run.")
    CSS_PATH = "sweeps.tcss"
    AUTO_FOCUS = "#trials-table"
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "open", "Open", show=False),
        Binding("space", "toggle_select", "Select", show=False),
        Binding("m", "compare", "Compare"),
        Binding("k", "cancel_sweep", "Cancel"),
    ]

    def __init__(self, sweep_id: int) -> None:
        super().__init__()
        self.sweep_id = sweep_id
        self.trials: list[Any] = []
        self.keys: list[str] = []
        self.selected: set[int] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="sweep-header")
        with Horizontal(id="sweep-body"):
            with Vertical(id="sweep-left"):
                yield DataTable(id="trials-table", cursor_type="row", zebra_stripes=True)
                yield Static("", id="best-config")
            yield VerticalScroll(id="param-plots")
        yield LabFooter()

    def on_mount(self) -> None:
        self.sub_title = f"sweep {self.sweep_id}"
        self.load()
        self.set_interval(self.lab.poll_interval, self.poll)

    def poll(self) -> None:
        if self.is_on_top:
            self.load()

    def on_screen_resume(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="sweep-load")
    def load(self) -> None:
        from rltui.sweeps.trials import best_config_toml, best_trial, get_sweep, load_trials, ranked

        store = self.lab.store
        sweep = get_sweep(store, self.sweep_id)
        if sweep is None:
            self.post(self.notify, f"no sweep {self.sweep_id}", severity="error")
            return
        objective = sweep.spec["objective"]
        trials = ranked(load_trials(store, sweep), objective["mode"])
        best = best_trial(trials, objective["mode"])
        config = best_config_toml(sweep, best) if best is not None else ""
        self.post(self._show, sweep, trials, best, config)

    def _show(self, sweep: Any, trials: list[Any], best: Any, config: str) -> None:
        objective = sweep.spec["objective"]
        keys = [p["key"] for p in sweep.spec["parameters"]]
        self.query_one("#sweep-header", Static).update(Text(
            f"{sweep.name} · {sweep.status} · {sweep.spec['method']} on {sweep.spec['engine']} · "
            f"{objective['mode']} {objective['use']} {objective['metric']} over seeds {sweep.spec['seeds']} · "
            f"{len(trials)}/{sweep.spec['trials']} trials"))
        table = self.query_one("#trials-table", DataTable)
        cursor = self.cursor_trial()
        if keys != self.keys:
            self.keys = keys
            table.clear(columns=True)
            for key, label in [("sel", " "), ("rank", "#"), ("trial", "Trial"), ("status", "Status"),
                               ("value", "Value")] + [(k, k.split(".", 1)[1]) for k in keys] + [("runs", "Runs")]:
                table.add_column(label, key=key)
        else:
            table.clear()
        self.trials = trials
        for rank, t in enumerate(trials, 1):
            ranked_ = t.value is not None and t.status in ("completed", "running", "pruned")
            table.add_row(
                Text("●" if t.trial in self.selected else " "), Text(str(rank) if ranked_ else ""), Text(str(t.trial)),
                Text(t.status), Text(_value(t.value)), *(Text(_param(t.params.get(k))) for k in keys),
                Text(",".join(map(str, t.run_ids))), key=str(t.trial))
        numbers = [t.trial for t in trials]
        if cursor in numbers:
            table.move_cursor(row=numbers.index(cursor))
        best_text = (f"best: trial {best.trial}, {_value(best.value)} — its config "
                     f"(rltui sweep show {sweep.id} --json gives it as best.config_toml):\n{config}"
                     if best is not None else "no completed trial yet")
        self.query_one("#best-config", Static).update(Text(best_text))
        self.draw_params(sweep, trials, keys)

    def draw_params(self, sweep: Any, trials: list[Any], keys: list[str]) -> None:
        """One scatter per parameter: its value (x) against the trial's objective (y)."""
        box = self.query_one("#param-plots", VerticalScroll)
        plots = list(box.query(PlotView))
        if len(plots) != len(keys):
            box.remove_children()
            plots = [PlotView(PlotData(title=k), classes="param-plot") for k in keys]
            box.mount_all(plots)
        metric = sweep.spec["objective"]["metric"]
        for key, plot in zip(keys, plots):
            choice = next(p for p in sweep.spec["parameters"] if p["key"] == key)
            xs, ys, labels = [], [], None
            for t in trials:
                v = t.params.get(key)
                if t.value is None or v is None:
                    continue
                if choice["kind"] == "choice" and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    # Categorical values sit at their index among the choices.
                    labels = [str(c) for c in choice["choices"]]
                    v = labels.index(str(v)) if str(v) in labels else None
                    if v is None:
                        continue
                xs.append(float(v))
                ys.append(float(t.value))
            title = f"{metric} vs {key}" + (f"  (x: {', '.join(f'{i}={c}' for i, c in enumerate(labels))})"
                                             if labels else "")
            log = choice["kind"] == "log_uniform"
            if log:
                import math

                xs = [math.log10(x) for x in xs]
                title += "  (x: log10)"
            plot.set_data(PlotData(title=title, xlabel=key, message="no values yet",
                                   series=[Series("trials", xs, ys, marker="dot", scatter=True)]))

    def cursor_trial(self) -> int | None:
        table = self.query_one("#trials-table", DataTable)
        if not self.trials or table.cursor_row is None or table.cursor_row >= len(self.trials):
            return None
        return self.trials[table.cursor_row].trial

    def action_toggle_select(self) -> None:
        number = self.cursor_trial()
        if number is None:
            return
        self.selected ^= {number}
        table = self.query_one("#trials-table", DataTable)
        table.update_cell(str(number), "sel", Text("●" if number in self.selected else " "))

    def action_compare(self) -> None:
        chosen = [t for t in self.trials if t.trial in self.selected]
        if not chosen:
            number = self.cursor_trial()
            chosen = [t for t in self.trials if t.trial == number]
        run_ids = sorted(r for t in chosen for r in t.run_ids)
        if len(run_ids) < 2:
            self.notify("Select trials with space (two or more runs in all), then press m.", severity="warning")
            return
        from rltui.tui.screens.compare import CompareScreen

        self.lab.push_screen(CompareScreen(run_ids))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        number = self.cursor_trial()
        trial = next((t for t in self.trials if t.trial == number), None)
        if trial is None:
            return
        from rltui.tui.screens.run import RunScreen

        self.lab.push_screen(RunScreen(trial.run_ids[0]))

    def action_cancel_sweep(self) -> None:
        cancel_sweep(self, self.sweep_id)
