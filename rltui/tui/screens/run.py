"""The run screen: status, live plots of returns and every metric, tabular values, episodes, config, log.

Plots are fed by downsampling queries (never more points than the plot has columns; the last point
kept) run in worker threads; while the run is live each tick reads only what is new: episodes after
the last id seen, and a metric again only when its last step moved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.lazy import Lazy
from textual.widgets import DataTable, Header, Static, TabbedContent, TabPane

from rltui.store.models import ACTIVE_STATUSES, Run
from rltui.store.queries import (
    artifact_at,
    artifact_names,
    episode_returns,
    episode_rows,
    latest_artifact,
    metric_downsampled,
    metric_keys,
    metric_last_step,
    run_returns,
    run_rows,
)
from rltui.tui import format as fmt
from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter
from rltui.tui.widgets.metric_grid import MetricGrid, metric_plot_data, system_line
from rltui.tui.widgets.plot import PlotData, PlotView, Series, downsample_xy, ema_debiased
from rltui.tui.widgets.values import chain_strip, q_table, value_grid

X_AXES = ("step", "episode", "wall")
X_LABEL = {"step": "step", "episode": "episode", "wall": "wall time (s)"}
LOG_TAIL_LINES = 400
EPISODE_PAGE = 200  # episodes put in the table at a time


class RunScreen(LabScreen):
    HELP_TITLE = "Run"
    HELP_ABOUT = ("One run: its status and progress, plots of the episode return G (raw and smoothed with a "
                  "debiased EMA) and of every metric it logged, V and Q for tabular runs with a slider "
                  "through the Bellman sweeps, the episodes (enter replays one), its config, log and traceback.")
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("x", "cycle_x", "X axis"),
        Binding("plus,equals_sign", "smooth(1)", "Smoother", key_display="+"),
        Binding("minus", "smooth(-1)", "Rougher", key_display="-", show=False),
        Binding("left_square_bracket", "sweep(-1)", "Sweep", key_display="["),
        Binding("right_square_bracket", "sweep(1)", "Next sweep", key_display="]", show=False),
        Binding("left_curly_bracket", "sweep_to(0)", "First sweep", show=False, key_display="{"),
        Binding("right_curly_bracket", "sweep_to(-1)", "Last sweep", show=False, key_display="}"),
        Binding("R", "replay", "Replay"),
        Binding("slash", "filter_plots", "Filter", key_display="/"),
        Binding("1", "tab('plots')", "Plots", show=False),
        Binding("2", "tab('values')", "Values", show=False),
        Binding("3", "tab('episodes')", "Episodes", show=False),
        Binding("4", "tab('config')", "Config", show=False),
        Binding("5", "tab('log')", "Log", show=False),
        Binding("6", "tab('traceback')", "Traceback", show=False),
    ]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id
        self.row: dict[str, Any] = {}
        self.x_axis = "step"
        self.alpha = 0.6
        self.returns: list[tuple] = []  # (id, index, step, wall, return, length)
        self.last_episode_id = 0
        self.metric_points: dict[str, list[tuple[float, float]]] = {}
        self.metric_steps: dict[str, int | None] = {}
        self.episode_list_last = 0
        self.episodes: list[dict[str, Any]] = []  # every episode read so far, oldest first
        self._episodes_meta: dict[int, dict[str, Any]] = {}
        self._episodes_window = (0, 0)  # the slice of `episodes` the table holds
        self.state_layout: dict[str, Any] | None = None
        self.tabular: dict[str, Any] | None = None
        self.sweeps = 0
        self.sweep = -1
        self.sweep_values: Any = None
        self.sweep_step: int | None = None
        self.is_tabular = False
        self._log_size = -1
        self._poll_busy = False
        self._poll_pending = False
        # The tabs' widgets, made here so they can be filled before their (lazy) mount.
        self.sweep_slider = Static("", id="sweep-slider")
        self.values_grid = Static("", id="values-grid")
        self.q_table = Static("", id="q-table")
        self.episodes_status = Static("", id="episodes-status", classes="statusline")
        self.episodes_table = DataTable(id="episodes-table", cursor_type="row", zebra_stripes=True)
        for key, label in (("index", "Episode"), ("phase", "Phase"), ("return", "Return G"),
                           ("length", "Length"), ("step", "Step"), ("traj", "Replay")):
            self.episodes_table.add_column(label, key=key)
        self.config_text = Static("", id="config-text", classes="pane")
        self.log_text = Static("", id="log-text", classes="pane")
        self.traceback_text = Static("", id="traceback-text", classes="pane")

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="run-header")
        with TabbedContent(id="run-tabs", initial="plots"):
            with TabPane("Plots", id="plots"):
                yield Static("", classes="plot-controls", id="plot-controls")
                with VerticalScroll(classes="plots", id="plots-scroll"):
                    yield PlotView(PlotData(title="episode return G", message="no episodes yet"),
                                   id="plot-return", classes="main")
                    yield MetricGrid(id="metric-grid")
            # The other tabs mount just after the first frame (Lazy): opening a run composes only
            # the Plots tab at once, and the rest follows a frame later instead of in one block.
            with TabPane("Values", id="values"):
                yield Lazy(VerticalScroll(self.sweep_slider, self.values_grid, self.q_table))
            with TabPane("Episodes", id="episodes"):
                yield Lazy(Vertical(self.episodes_status, self.episodes_table))
            with TabPane("Config", id="config"):
                yield Lazy(VerticalScroll(self.config_text, id="config-view"))
            with TabPane("Log", id="log"):
                yield Lazy(VerticalScroll(self.log_text, id="log-view"))
            with TabPane("Traceback", id="traceback"):
                yield Lazy(VerticalScroll(self.traceback_text, id="traceback-view"))
        yield LabFooter()

    def on_mount(self) -> None:
        self.update_controls()
        # Reads start once the screen is painted: a reader thread beside the first layout and render
        # (tens of ms of CSS and compositing) only takes the GIL from them and lengthens the stall.
        self.call_after_refresh(self.load_static)
        self.set_interval(self.lab.poll_interval, self.poll)

    # --- loading ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="run-static")
    def load_static(self) -> None:
        store = self.lab.store
        with store.read() as session:
            run = session.get(Run, self.run_id)
            if run is None:
                self.post(self.notify, f"run {self.run_id} no longer exists", severity="error")
                return
            info = {"config_toml": run.config_toml, "log_path": run.log_path, "traceback": run.traceback,
                    "error": run.error, "notes": run.notes}
            names = artifact_names(session, self.run_id)
            layout = latest_artifact(session, self.run_id, "layout") if "layout" in names else None
            tabular = latest_artifact(session, self.run_id, "tabular") if "tabular" in names else None
            last_v = artifact_at(session, self.run_id, "V", names["V"] - 1) if names.get("V") else None
        self.post(self._apply_static, info, names, layout, tabular, last_v)
        self.post(self.poll, True)

    def _apply_static(self, info: dict[str, Any], names: dict[str, int], layout: Any, tabular: Any,
                      last_v: Any) -> None:
        self.state_layout = layout if isinstance(layout, dict) else None
        self.tabular = tabular if isinstance(tabular, dict) else None
        self.sweeps = names.get("V", 0)
        self.is_tabular = bool(self.tabular or self.sweeps or (self.state_layout and self.state_layout.get("kind") in
                                                               ("grid", "chain", "tabular")))
        if last_v is not None:
            self.sweep = self.sweeps - 1
            self.sweep_step, self.sweep_values = last_v
        tabs = self.query_one("#run-tabs", TabbedContent)
        if not self.is_tabular:
            tabs.hide_tab("values")
        self.config_text.update(
            Syntax(info["config_toml"] or "", "toml", theme="ansi_dark", background_color="default",
                   word_wrap=True))
        tb = info["traceback"] or ""
        err = info["error"] or ""
        self.traceback_text.update(
            Text(f"{err}\n\n{tb}" if (err or tb) else "No error: this run has no traceback."))
        if not (err or tb):
            tabs.hide_tab("traceback")
        self.log_path = info["log_path"]
        self.update_log()
        self.draw_values()
        if self.sweeps:
            self.refresh_bindings()  # the sweep keys appear (check_action)

    def poll(self, force: bool = False) -> None:
        if not force and (not self.row or self.row.get("status") not in ACTIVE_STATUSES or not self.is_on_top):
            return
        if self._poll_busy:  # one read at a time; a forced one waits for the next tick
            self._poll_pending = self._poll_pending or force
            return
        self._poll_busy = True
        width = self.query_one("#plot-return", PlotView).columns - 2  # room for a scrollbar
        self.poll_worker(width, force)

    def on_screen_resume(self) -> None:
        """Back in front (a replay or dialog closed): catch up on what the run wrote meanwhile."""
        if self.row:
            self.poll()

    def _poll_done(self) -> None:
        self._poll_busy = False
        if self._poll_pending:
            self._poll_pending = False
            self.poll(force=True)

    @work(thread=True, group="run-poll")
    def poll_worker(self, width: int, force: bool) -> None:
        try:
            self._read_poll(width, force)
        finally:
            self.post(self._poll_done)

    def _read_poll(self, width: int, force: bool) -> None:
        store = self.lab.store
        with store.sql.read() as tx:
            rows = run_rows(tx, ids=[self.run_id])
            if not rows:
                return
            row = rows[0]
            row.update(run_returns(tx, [self.run_id]).get(self.run_id, {}))
        with store.read() as session:
            new_returns = episode_returns(session, self.run_id, self.last_episode_id)
            new_episodes = episode_rows(session, self.run_id, self.episode_list_last)
            keys = metric_keys(session, self.run_id)
            updates: dict[str, list[tuple[float, float]]] = {}
            steps: dict[str, int | None] = {}
            x = "wall" if self.x_axis == "wall" else "step"
            for key in keys:
                last = metric_last_step(session, self.run_id, key)
                steps[key] = last
                if force or last != self.metric_steps.get(key) or key not in self.metric_points:
                    updates[key] = metric_downsampled(session, self.run_id, key, width, x=x)
        self.post(self._apply_poll, row, new_returns, new_episodes, updates, steps, keys)

    def _apply_poll(self, row: dict[str, Any], new_returns: list[tuple], new_episodes: list[dict[str, Any]],
                    updates: dict[str, list[tuple[float, float]]], steps: dict[str, int | None],
                    keys: list[str]) -> None:
        was_live = self.row.get("status") in ACTIVE_STATUSES if self.row else True
        self.row = row
        self.update_header()
        new_returns = [r for r in new_returns if r[0] > self.last_episode_id]
        new_episodes = [e for e in new_episodes if e["id"] > self.episode_list_last]
        if new_returns:
            self.returns.extend(new_returns)
            self.last_episode_id = new_returns[-1][0]
            self.draw_returns()
        elif not self.returns:
            self.draw_returns()
        if new_episodes:
            self.add_episodes(new_episodes)
        self.metric_steps.update(steps)
        self.metric_points.update(updates)
        self.ensure_metric_plots(keys)
        for key in updates:
            self.draw_metric(key)
        if was_live and row["status"] not in ACTIVE_STATUSES:
            self.load_static()  # final artifacts (tabular, traceback) land at the end
        self.update_log()

    # --- drawing ---------------------------------------------------------------------------------
    def update_header(self) -> None:
        row, now = self.row, self.lab.clock()
        status = fmt.status_text(row["status"], self.lab.theme_variables)
        text = Text.assemble(
            (f"run {row['id']} ", "bold"), (row["name"], "bold"), "  ", status, "  ",
            f"{fmt.progress_bar(row['progress'], 16)} {row['progress'] * 100:.0f}%",
            f"  ETA {fmt.eta(row, now)}  ·  {fmt.duration(fmt.run_duration(row, now))}\n",
            (f"{row['algo']} on {row['env']} · seed {row['seed']} · {row.get('device_used') or row['device']}", "dim"),
            (f" · last G {fmt.num(row.get('last_return'))} · best G {fmt.num(row.get('best_return'))}"
             f" · episodes {fmt.count(row.get('episodes'))}" if row.get("episodes") else "", "dim"),
            (system_line(self.metric_points), "dim"),
        )
        self.query_one("#run-header", Static).update(text, layout=False)  # fixed height: no re-layout
        self.sub_title = f"run {row['id']} {row['name']}"

    def update_controls(self) -> None:
        self.query_one("#plot-controls", Static).update(
            f"x: {X_LABEL[self.x_axis]} (x to change) · EMA α={self.alpha:.2f} (+/-)", layout=False
        )

    def draw_returns(self) -> None:
        plot = self.query_one("#plot-return", PlotView)
        if not self.returns:
            # A finished run without training episodes (dynamic programming): its metrics come first.
            plot.display = not (self.row and self.row.get("status") not in ACTIVE_STATUSES)
            plot.set_data(PlotData(title="episode return G", message="no episodes yet"))
            return
        plot.display = True
        ys = [r[4] for r in self.returns]
        if self.x_axis == "episode":
            xs = [float(r[1]) for r in self.returns]
        elif self.x_axis == "wall":
            xs = [float(r[3]) for r in self.returns]
        else:
            xs = [float(r[2] if r[2] is not None else r[1]) for r in self.returns]
        smooth = ema_debiased(ys, self.alpha)
        n = plot.columns
        sx, sy = downsample_xy(xs, smooth, n)
        series = [Series.envelope("raw", xs, ys, n, color="gray")]  # each bucket's min–max shaded
        if self.alpha > 0:
            series.append(Series(f"EMA α={self.alpha:.2f}", sx, sy, color="blue"))
        plot.set_data(PlotData(title=f"episode return G ({len(ys)} episodes)", xlabel=X_LABEL[self.x_axis],
                               series=series))

    def ensure_metric_plots(self, keys: list[str]) -> None:
        self.query_one(MetricGrid).ensure(keys)

    def on_plot_view_resized(self, message: PlotView.Resized) -> None:
        """A scrollbar appeared or the terminal changed size: redraw for the new number of columns."""
        if message.plot.id == "plot-return":
            self.draw_returns()

    def draw_metric(self, key: str) -> None:
        grid = self.query_one(MetricGrid)
        xlabel = "wall time (s)" if self.x_axis == "wall" else "step"
        points = self.metric_points.get(key, [])
        grid.draw(key, lambda columns: metric_plot_data(key, points, xlabel, columns, grid.colour(key)))
        if key.startswith("sys/") and self.row:
            self.update_header()  # the header's CPU/RSS/GPU figures are the latest sys/* points

    def add_episodes(self, episodes: list[dict[str, Any]]) -> None:
        """Keep the new episodes; the table shows them only while its tab is open (see show_episodes)."""
        for ep in episodes:
            self.episodes.append(ep)
            self._episodes_meta[ep["id"]] = ep
            self.episode_list_last = max(self.episode_list_last, ep["id"])
        if self.query_one("#run-tabs", TabbedContent).active == "episodes":
            self.show_episodes()

    def show_episodes(self, older: bool = False) -> None:
        """Bring the episodes table up to date: a window of the newest episodes, oldest first.

        A live run can log tens of thousands of episodes, and a DataTable re-measures itself as it
        grows, so the table holds a window: the newest EPISODE_PAGE when it opens, live episodes
        appended below (the cursor follows them from the last row, like `tail -f`), a page more of
        older ones each time the cursor reaches the top (`older`).
        """
        table = self.episodes_table
        total = len(self.episodes)
        shown_to = self._episodes_window[1]
        at_end = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        if older or total - shown_to > EPISODE_PAGE or table.row_count == 0:
            lo = self._episodes_window[0]
            lo = max(0, lo - EPISODE_PAGE) if older else max(0, total - EPISODE_PAGE)
            keep = self._episode_under_cursor() if table.row_count else None
            table.clear()
            self._add_episode_rows(table, self.episodes[lo:])
            self._episodes_window = (lo, total)
            if keep is not None and str(keep) in table.rows:
                table.move_cursor(row=table.get_row_index(str(keep)), animate=False)
            elif table.row_count:
                table.move_cursor(row=table.row_count - 1, animate=False)
        elif total > shown_to:
            self._add_episode_rows(table, self.episodes[shown_to:])
            self._episodes_window = (self._episodes_window[0], total)
            if at_end:
                table.move_cursor(row=table.row_count - 1, animate=False)
        self.episodes_status.update(
            f"{fmt.count(total)} episodes · showing {fmt.count(table.row_count)}"
            + (" (up at the top for older ones)" if self._episodes_window[0] else "")
            + " · enter replays the episode under the cursor", layout=False)

    @staticmethod
    def _add_episode_rows(table: DataTable, episodes: list[dict[str, Any]]) -> None:
        for ep in episodes:
            table.add_row(
                Text(str(ep["index"]), justify="right"), ep["phase"], Text(fmt.num(ep["return"]), justify="right"),
                Text(str(ep["length"]), justify="right"), Text(fmt.count(ep["step"]), justify="right"),
                "▶ replay" if ep["has_trajectory"] else "", key=str(ep["id"]),
            )

    def _episode_under_cursor(self) -> int | None:
        table = self.episodes_table
        if not table.row_count:
            return None
        from textual.coordinate import Coordinate

        return int(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table  # its cursor now, not when the event was sent (a refill moves it)
        if table.id == "episodes-table" and table.row_count and table.cursor_row == 0 and self._episodes_window[0]:
            self.show_episodes(older=True)

    def draw_values(self) -> None:
        if not self.is_tabular:
            return
        layout = self.state_layout or {}
        tab = self.tabular or {}
        at_end = self.sweeps == 0 or self.sweep == self.sweeps - 1
        V = self.sweep_values if self.sweep_values is not None else tab.get("V")
        if V is None and tab.get("Q"):
            V = [max(q) if q else 0.0 for q in tab["Q"]]
        V = list(V) if V is not None else []
        policy = tab.get("policy") if at_end else None
        if self.sweeps:
            width = 30
            pos = int(round(self.sweep / max(1, self.sweeps - 1) * (width - 1)))
            track = "━" * pos + "●" + "─" * (width - 1 - pos)
            self.sweep_slider.update(Text.assemble(
                ("Bellman sweep ", "bold"), f"{self.sweep}/{self.sweeps - 1} ", track,
                ("  [ ] step · { } first/last", "dim")))
        else:
            self.sweep_slider.update(Text("final values", style="bold"))
        if layout.get("kind") == "grid":
            body = value_grid(layout, V, policy)
            note = "" if policy is not None else "\n(arrows: greedy policy, shown at the final sweep)"
            self.values_grid.update(Text.assemble(body, (note, "dim")))
        elif layout.get("kind") == "chain":
            self.values_grid.update(chain_strip(int(layout.get("n", len(V))), V))
        else:
            states = (tab.get("states") or layout.get("states") or [str(i) for i in range(len(V))])
            self.values_grid.update(
                Text("\n".join(f"{s:>10}  V={float(v):+.4f}" for s, v in zip(states, V))))
        if tab.get("Q"):
            self.q_table.update(
                q_table(tab.get("states") or [], tab.get("actions") or [], tab["Q"], tab.get("policy"), tab.get("V")))

    def update_log(self) -> None:
        path = getattr(self, "log_path", None)
        widget = self.log_text
        if not path:
            widget.update(Text("No log file: this run was not started by the background runner.", style="dim"))
            return
        try:
            size = Path(path).stat().st_size
        except OSError:
            widget.update(Text(f"Log file {path} is not there (yet).", style="dim"))
            return
        if size == self._log_size:
            return
        self._log_size = size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - 200_000))
            lines = fh.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        widget.update(Text("\n".join(lines)))

    # --- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Sweep keys only where there are Bellman sweeps to step through (False hides them from the
        footer; None would show them greyed out, which says nothing to a Q-learning or PPO run)."""
        if action in ("sweep", "sweep_to"):
            return bool(self.sweeps)
        return True

    def action_cycle_x(self) -> None:
        self.x_axis = X_AXES[(X_AXES.index(self.x_axis) + 1) % len(X_AXES)]
        self.update_controls()
        self.draw_returns()
        self.poll(force=True)

    def action_smooth(self, direction: int) -> None:
        self.alpha = round(min(0.99, max(0.0, self.alpha + 0.05 * direction)), 2)
        self.update_controls()
        self.draw_returns()

    def action_filter_plots(self) -> None:
        """`/`: filter the metric plots by name (the Plots tab comes to the front)."""
        self.action_tab("plots")
        self.query_one(MetricGrid).open_filter()

    def action_tab(self, tab: str) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        try:
            tabs.active = tab
        except Exception:  # noqa: BLE001 — a hidden tab
            return
        if tab == "episodes":
            self.episodes_table.focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "episodes":
            self.show_episodes()
            self.episodes_table.focus()

    def action_sweep(self, delta: int) -> None:
        if self.sweeps:
            self.load_sweep(max(0, min(self.sweeps - 1, self.sweep + delta)))

    def action_sweep_to(self, index: int) -> None:
        if self.sweeps:
            self.load_sweep(index % self.sweeps)

    @work(thread=True, exclusive=True, group="sweep")
    def load_sweep(self, index: int) -> None:
        with self.lab.store.read() as session:
            found = artifact_at(session, self.run_id, "V", index)
        if found is not None:
            self.post(self._apply_sweep, index, found)

    def _apply_sweep(self, index: int, found: tuple) -> None:
        self.sweep = index
        self.sweep_step, self.sweep_values = found
        self.draw_values()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "episodes-table":
            self.open_replay(int(event.row_key.value))

    def action_replay(self) -> None:
        """Replay the episode under the cursor, else the latest one with a trajectory."""
        meta = self._episodes_meta
        chosen = None
        if self.query_one("#run-tabs", TabbedContent).active == "episodes":
            chosen = self._episode_under_cursor()
        if chosen is None:
            with_traj = [i for i, ep in meta.items() if ep["has_trajectory"]]
            chosen = max(with_traj) if with_traj else None
        if chosen is None:
            self.notify("No recorded trajectory in this run.", severity="warning")
            return
        self.open_replay(chosen)

    def open_replay(self, episode_id: int) -> None:
        meta = self._episodes_meta.get(episode_id)
        if meta is not None and not meta["has_trajectory"]:
            self.notify(f"Episode {meta['index']} kept no trajectory (see [record] in the config).",
                        severity="warning")
            return
        from rltui.tui.screens.replay import ReplayScreen

        self.lab.push_screen(ReplayScreen(self.run_id, episode_id))
