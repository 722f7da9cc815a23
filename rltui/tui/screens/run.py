"""The run screen: status, live plots of returns and every metric, tabular values, episodes, config, log.

Plots are fed by downsampling queries (never more points than the plot has columns; the last point
kept) run in worker threads; while the run is live each tick reads only what is new: episodes after
the last id seen, and a metric again only when its last step moved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer, Vertical, VerticalScroll
from textual.lazy import Lazy
from textual.widgets import DataTable, Header, Input, Static, TabbedContent, TabPane

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
    run_rows,
    run_status_note,
)
from rltui.store.queries import by_proxy_gold_gap, proxy_gold_gap
from rltui.text import clip, printable
from rltui.tui import format as fmt
from rltui.tui import run_actions
from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter
from rltui.tui.widgets.log_view import LogView
from rltui.tui.widgets.metric_grid import MetricGrid, metric_plot_data, system_line
from rltui.tui.widgets.plot import PlotData, PlotView, Series, downsample_xy, ema_debiased
from rltui.tui.widgets.values import blackjack_grids, chain_strip, fit_cell_width, q_table, value_grid

X_AXES = ("step", "episode", "wall")
X_LABEL = {"step": "step", "episode": "episode", "wall": "wall time (s)"}
LOG_FIRST_BYTES = 1_000_000  # the log opens on its last megabyte ...
LOG_KEEP_LINES = 20_000  # ... and keeps at most this many lines while it follows
EPISODE_PAGE = 200  # episodes put in the table at a time
TABS = ("plots", "values", "episodes", "config", "log", "traceback")  # keys 1-6


class RunScreen(LabScreen):
    HELP_TITLE = "Run"
    HELP_ABOUT = ("One run: its status and progress, plots of the episode return G (raw and smoothed with a "
                  "debiased EMA) and of every metric it logged, V and Q for tabular runs with a slider "
                  "through the Bellman sweeps, the episodes (enter replays one), its config, log and traceback.")
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("x", "cycle_x", "X axis"),
        Binding("plus,equals_sign", "smooth(1)", "Smoother", key_display="+"),
        Binding("minus", "smooth(-1)", "Rougher", key_display="-", show=False),
        Binding("left_square_bracket", "sweep(-1)", "Sweep", key_display="["),
        Binding("right_square_bracket", "sweep(1)", "Next sweep", key_display="]", show=False),
        Binding("left_curly_bracket", "sweep_to(0)", "First sweep", show=False, key_display="{"),
        Binding("right_curly_bracket", "sweep_to(-1)", "Last sweep", show=False, key_display="}"),
        Binding("R", "replay", "Replay"),
        Binding("k", "cancel_run", "Cancel"),
        Binding("u", "resume_run", "Resume"),
        # `/` finds, as on the runs screen: the metric plots by name, or in the Log tab the log's lines
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("n", "log_match(1)", "Next match"),  # in the Log tab, after a search (as in less and vim)
        Binding("N", "log_match(-1)", "Previous match"),
        Binding("o", "order_episodes", "Rank by proxy − gold", show=False),
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
        self.sweep_target = -1  # where the slider's keys have moved it; `sweep` once that V is read
        self.sweep_values: Any = None
        self.sweep_step: int | None = None
        self.policy_h: dict[str, Any] | None = None  # a finite-horizon run's π_h; its slider steps over h
        self.is_tabular = False
        self._log_offset = -1  # bytes of the log read so far (-1: not opened yet)
        self.log_lines: list[str] = []
        self._log_written = 0  # of log_lines, how many the Log widget holds
        self._search_from = 0
        self.hidden_tabs: set[str] = set()
        self.info: dict[str, Any] = {}
        self._poll_busy = False
        self._poll_pending = False
        # The tabs' widgets, made here so they can be filled before their (lazy) mount.
        self.sweep_slider = Static("", id="sweep-slider")
        self.values_grid = Static("", id="values-grid")
        self.q_table = Static("", id="q-table")
        self.episodes_status = Static("", id="episodes-status", classes="statusline")
        self.episodes_table = DataTable(id="episodes-table", cursor_type="row", zebra_stripes=True)
        self.has_gold = False  # LM episodes scored by a reward model carry the oracle's (gold) score
        self.episode_order = "time"  # or "gap": the responses that fool the reward model first
        self._set_episode_columns()
        self.config_text = Static("", id="config-text", classes="pane")
        self.log_view = LogView(id="log-text", max_lines=LOG_KEEP_LINES, auto_scroll=True)  # follows from the end
        self.log_status = Static("", id="log-status", classes="statusline")
        self.log_search = Input(placeholder="search the log — enter: find · then n / N: next / previous · escape: close",
                                id="log-search")
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
                # The slider and the heatmap stay put; only the Q table below them scrolls, so tabbing
                # into it never scrolls them away. A grid wider than the pane scrolls sideways.
                yield Lazy(Vertical(self.sweep_slider,
                                    ScrollableContainer(self.values_grid, id="values-grid-box", can_focus=False),
                                    VerticalScroll(self.q_table, id="q-table-box"), id="values-view"))
            with TabPane("Episodes", id="episodes"):
                yield Lazy(Vertical(self.episodes_status, self.episodes_table))
            with TabPane("Config", id="config"):
                yield Lazy(VerticalScroll(self.config_text, id="config-view"))
            with TabPane("Log", id="log"):
                yield Lazy(Vertical(self.log_search, self.log_view, self.log_status, id="log-box"))
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
            info = {"config_toml": run.config_toml, "config": run.config, "log_path": run.log_path,
                    "traceback": run.traceback, "error": run.error, "notes": run.notes, "tags": run.tags,
                    "status": run.status, "name": run.name}
            names = artifact_names(session, self.run_id)
            broken: list[str] = []  # artifacts whose bytes are not what their kind says

            def read(name: str, fetch: Any) -> Any:
                try:
                    return fetch()
                except Exception as exc:  # noqa: BLE001 — a damaged row must not take the lab down
                    broken.append(f"{name}: {type(exc).__name__}: {exc}")
                    return None

            layout = read("layout", lambda: latest_artifact(session, self.run_id, "layout")) if "layout" in names else None
            tabular = read("tabular", lambda: latest_artifact(session, self.run_id, "tabular")) if "tabular" in names else None
            last_v = read("V", lambda: artifact_at(session, self.run_id, "V", names["V"] - 1)) if names.get("V") else None
            policy_h = read("policy_h", lambda: latest_artifact(session, self.run_id, "policy_h")) if "policy_h" in names else None
            blackjack = read("blackjack", lambda: latest_artifact(session, self.run_id, "blackjack")) if "blackjack" in names else None
        info["broken"] = broken
        info["policy_h"] = policy_h if isinstance(policy_h, dict) and isinstance(policy_h.get("policy"), list) else None
        info["blackjack"] = blackjack if isinstance(blackjack, dict) else None
        info["resolved"] = resolved_toml(info["config"])
        self.post(self._apply_static, info, names, layout, tabular, last_v)
        self.post(self.poll, True)

    def _apply_static(self, info: dict[str, Any], names: dict[str, int], layout: Any, tabular: Any,
                      last_v: Any) -> None:
        first = not self.info
        self.info = info
        self.state_layout = layout if isinstance(layout, dict) else None
        self.tabular = tabular if isinstance(tabular, dict) else None
        self.sweeps = names.get("V", 0)
        self.policy_h = info["policy_h"]
        self.is_tabular = bool(self.tabular or self.sweeps or info["broken"] or (
            self.state_layout and self.state_layout.get("kind") in ("grid", "chain", "tabular")))
        if isinstance(last_v, tuple) and len(last_v) == 2:
            self.sweep = self.sweep_target = self.sweeps - 1
            self.sweep_step, self.sweep_values = last_v
        tabs = self.query_one("#run-tabs", TabbedContent)
        self.set_tab_shown("values", self.is_tabular)
        self.config_text.update(self.config_view(info))
        tb = printable(info["traceback"] or "", lines=True)
        err = printable(info["error"] or "", lines=True)
        self.traceback_text.update(
            Text(f"{err}\n\n{tb}" if (err or tb) else "No error: this run has no traceback."))
        self.set_tab_shown("traceback", bool(err or tb))
        if first and (err or tb) and info["status"] in ("failed", "crashed"):
            tabs.active = "traceback"  # a failed run opens on why it failed, not on an empty plot
        self.log_path = info["log_path"]
        self.update_log()
        self.draw_values()
        if self.sweeps:
            self.refresh_bindings()  # the sweep keys appear (check_action)

    def set_tab_shown(self, tab: str, shown: bool) -> None:
        tabs = self.query_one("#run-tabs", TabbedContent)
        if shown and tab in self.hidden_tabs:
            tabs.show_tab(tab)
            self.hidden_tabs.discard(tab)
        elif not shown and tab not in self.hidden_tabs:
            tabs.hide_tab(tab)
            self.hidden_tabs.add(tab)

    def visible_tabs(self) -> list[tuple[str, str]]:
        """(tab id, its key) of the tabs this run has (a deep run has no Values, a sound one no Traceback)."""
        return [(tab, str(i + 1)) for i, tab in enumerate(TABS) if tab not in self.hidden_tabs]

    @staticmethod
    def config_view(info: dict[str, Any]) -> Group:
        """Tags and notes, then the resolved config (every hyperparameter, as `rltui show --toml`)."""
        tags = ", ".join(printable(t) for t in info.get("tags") or []) or "–"
        notes = printable((info.get("notes") or "").strip(), lines=True) or "–"
        head = Text.assemble(("tags  ", "bold"), tags, "\n", ("notes ", "bold"), notes, "\n\n",
                             ("resolved config", "bold"), " (every value, defaults filled in; `rltui show ID --toml`)\n")
        return Group(head, Syntax(printable(info["resolved"], lines=True), "toml", theme="ansi_dark",
                                  background_color="default", word_wrap=True))

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
            row.update(self.lab.returns.read(tx, [self.run_id]).get(self.run_id, {}))
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
        """Two lines that never wrap: the name is cut to what the status, progress and times leave,
        and the info line is cut at the edge (the whole name is in the title bar and `rltui show`)."""
        row, now = self.row, self.lab.clock()
        width = max(20, (self.size.width or 80) - 2)
        status = fmt.status_text(row["status"], self.lab.theme_variables)
        note = run_status_note(row["status"], row.get("heartbeat_at"), row.get("waits_for"), row["env"])
        if note:  # "stalled: no heartbeat for 42 s", "waits for run 12"
            status.append(f" ({note})")
        bar = 16 if width >= 100 else 8
        rest = Text.assemble("  ", status, f"  {fmt.progress_bar(row['progress'], bar)} {row['progress'] * 100:.0f}%",
                             f"  ETA {fmt.eta(row, now)} · {fmt.duration(fmt.run_duration(row, now))}")
        lead = f"run {row['id']} "
        name = clip(row["name"], max(8, width - len(lead) - rest.cell_len))
        line1 = Text.assemble((lead, "bold"), (name, "bold"), rest, no_wrap=True, overflow="ellipsis")
        info = (f"{printable(row['algo'])} on {printable(row['env'])} · seed {row['seed']} · "
                f"{printable(row.get('device_used') or row['device'])}")
        if row.get("episodes"):
            info += (f" · last G {fmt.num(row.get('last_return'))} · best G {fmt.num(row.get('best_return'))}"
                     f" · train episodes {fmt.count(row.get('episodes'))}")
        info += system_line(self.metric_points)  # " · CPU 97% · RSS 429 MB" from the latest sys/* points
        line1.truncate(width, overflow="ellipsis")
        line2 = Text(info, no_wrap=True, overflow="ellipsis")
        line2.truncate(width, overflow="ellipsis")
        self.query_one("#run-header", Static).update(Text("\n").join([line1, line2]), layout=False)
        self.sub_title = f"run {row['id']} {printable(row['name'])}"

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

    def _set_episode_columns(self) -> None:
        table = self.episodes_table
        table.clear(columns=True)
        gold = [("gold", "Gold"), ("gap", "Proxy − gold")] if self.has_gold else []
        for key, label in (("index", "Episode"), ("phase", "Phase"), ("return", "Return G"), *gold,
                           ("length", "Length"), ("step", "Step"), ("traj", "Replay")):
            table.add_column(label, key=key)
        self._episodes_window = (0, 0)

    def add_episodes(self, episodes: list[dict[str, Any]]) -> None:
        """Keep the new episodes; the table shows them only while its tab is open (see show_episodes)."""
        for ep in episodes:
            self.episodes.append(ep)
            self._episodes_meta[ep["id"]] = ep
            self.episode_list_last = max(self.episode_list_last, ep["id"])
        if not self.has_gold and any(ep.get("oracle_score") is not None for ep in episodes):
            self.has_gold = True  # the gold and proxy − gold columns appear, and the `o` key
            self._set_episode_columns()
            self.refresh_bindings()
        if self.query_one("#run-tabs", TabbedContent).active == "episodes":
            self.show_episodes()

    def action_order_episodes(self) -> None:
        """Episodes in time order, or ranked by proxy − gold: the responses the reward model overrates most."""
        self.episode_order = "gap" if self.episode_order == "time" else "time"
        self.episodes_table.clear()
        self._episodes_window = (0, 0)
        self.action_tab("episodes")
        self.show_episodes()

    def show_ranked_episodes(self) -> None:
        """The EPISODE_PAGE episodes with the largest proxy − gold, largest first (redrawn as they come)."""
        table = self.episodes_table
        ranked = [ep for ep in by_proxy_gold_gap(self.episodes) if ep.get("oracle_score") is not None][:EPISODE_PAGE]
        keep = self._episode_under_cursor() if table.row_count else None
        table.clear()
        self._add_episode_rows(table, ranked, self.has_gold)
        self._episodes_window = (0, len(self.episodes))
        if keep is not None and str(keep) in table.rows:
            table.move_cursor(row=table.get_row_index(str(keep)), animate=False)
        self.episodes_status.update(Text(
            f"{fmt.count(len(self.episodes))} episodes · the {fmt.count(table.row_count)} the reward model overrates most"
            " (proxy return − gold score, largest first) · o: time order · enter replays"), layout=False)

    def show_episodes(self, older: bool = False) -> None:
        """Bring the episodes table up to date: a window of the newest episodes, oldest first.

        A live run can log tens of thousands of episodes, and a DataTable re-measures itself as it
        grows, so the table holds a window: the newest EPISODE_PAGE when it opens, live episodes
        appended below (the cursor follows them from the last row, like `tail -f`), a page more of
        older ones each time the cursor reaches the top (`older`).
        """
        if self.episode_order == "gap":
            self.show_ranked_episodes()
            return
        table = self.episodes_table
        total = len(self.episodes)
        shown_to = self._episodes_window[1]
        at_end = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        if older or total - shown_to > EPISODE_PAGE or table.row_count == 0:
            lo = self._episodes_window[0]
            lo = max(0, lo - EPISODE_PAGE) if older else max(0, total - EPISODE_PAGE)
            keep = self._episode_under_cursor() if table.row_count else None
            table.clear()
            self._add_episode_rows(table, self.episodes[lo:], self.has_gold)
            self._episodes_window = (lo, total)
            if keep is not None and str(keep) in table.rows:
                table.move_cursor(row=table.get_row_index(str(keep)), animate=False)
            elif table.row_count:
                table.move_cursor(row=table.row_count - 1, animate=False)
        elif total > shown_to:
            self._add_episode_rows(table, self.episodes[shown_to:], self.has_gold)
            self._episodes_window = (self._episodes_window[0], total)
            if at_end:
                table.move_cursor(row=table.row_count - 1, animate=False)
        train = sum(1 for ep in self.episodes if ep["phase"] == "train")
        self.episodes_status.update(Text(
            f"{fmt.count(total)} episodes ({fmt.count(train)} train, {fmt.count(total - train)} eval)"
            f" · showing {fmt.count(table.row_count)}"
            + (" (up at the top for older ones)" if self._episodes_window[0] else "")
            + " · enter replays the episode under the cursor"
            + (" · o: rank by proxy − gold" if self.has_gold else "")), layout=False)

    @staticmethod
    def _add_episode_rows(table: DataTable, episodes: list[dict[str, Any]], gold: bool = False) -> None:
        for ep in episodes:
            gap = proxy_gold_gap(ep)
            gold_cells = [Text(fmt.num(ep.get("oracle_score")) if gap is not None else "", justify="right"),
                          Text(fmt.num(gap) if gap is not None else "", justify="right")] if gold else []
            table.add_row(
                Text(str(ep["index"]), justify="right"), fmt.plain(ep["phase"], 8),
                Text(fmt.num(ep["return"]), justify="right"), *gold_cells,
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
        try:
            self._draw_values()
        except Exception as exc:  # noqa: BLE001 — artifacts of the wrong shape: say so in their place
            self.values_grid.update(Text(f"These values cannot be drawn: {type(exc).__name__}: {printable(exc)}"))
        broken = self.info.get("broken") if self.info else None
        if broken:
            self.sweep_slider.update(Text("damaged artifacts: " + printable("; ".join(broken)), no_wrap=True,
                                          overflow="ellipsis"))

    def _draw_values(self) -> None:
        layout = self.state_layout or {}
        tab = self.tabular or {}
        at_end = self.sweeps == 0 or self.sweep == self.sweeps - 1
        V = self.sweep_values if self.sweep_values is not None else tab.get("V")
        if V is None and tab.get("Q"):
            V = [max(q) if q else 0.0 for q in tab["Q"]]
        V = list(V) if V is not None else []
        policy = tab.get("policy") if at_end else None
        note = "\n(arrows: greedy policy, shown at the final sweep)"
        if self.policy_h is not None and self.sweeps:
            policy, note = self._draw_horizon_slider()
        elif self.sweeps:
            width = 30
            pos = int(round(self.sweep / max(1, self.sweeps - 1) * (width - 1)))
            track = "━" * pos + "●" + "─" * (width - 1 - pos)
            self.sweep_slider.update(Text.assemble(
                ("Bellman sweep ", "bold"), f"{self.sweep}/{self.sweeps - 1} ", track,
                ("  [ ] step · { } first/last", "italic")))
        else:
            self.sweep_slider.update(Text("final values", style="bold"))
        if layout.get("kind") == "grid":
            room = (self.size.width or 80) - 4
            body = value_grid(layout, V, policy, cell_width=fit_cell_width(layout, room))
            self.values_grid.update(Text.assemble(body, ("" if policy is not None else note, "italic")))
        elif layout.get("kind") == "chain":
            self.values_grid.update(chain_strip(int(layout.get("n", len(V))), V))
        elif layout.get("kind") == "blackjack" and self.info.get("blackjack"):
            self.values_grid.update(blackjack_grids(self.info["blackjack"]))  # Sutton & Barto Figure 5.2
        else:
            states = (tab.get("states") or layout.get("states") or [str(i) for i in range(len(V))])
            self.values_grid.update(
                Text("\n".join(f"{printable(s):>10}  V={float(v):+.4f}" for s, v in zip(states, V))))
        if tab.get("Q"):
            self.q_table.update(
                q_table(tab.get("states") or [], tab.get("actions") or [], tab["Q"], tab.get("policy"), tab.get("V")))

    def _draw_horizon_slider(self) -> tuple[list[Any] | None, str]:
        """A finite-horizon run: the slider over the time step h = 0..H, V_h (stored as "V" at step
        H - h, the steps left) and π_h; returns (π_h for the arrows, the note where there is none)."""
        policies = (self.policy_h or {}).get("policy") or []
        H = int((self.policy_h or {}).get("horizon", len(policies)))
        k = self.sweep_step if self.sweep_step is not None else H
        h = max(0, min(H, H - int(k)))
        width = 20
        pos = int(round(h / max(1, H) * (width - 1)))
        track = "━" * pos + "●" + "─" * (width - 1 - pos)
        self.sweep_slider.update(Text.assemble(
            ("time step h ", "bold"), f"{h}/{H} ", track, f"  V_h, π_h with {H - h} step{'s' * (H - h != 1)} left",
            ("  [ ] step · { } first/last · the Q table is h = 0's", "italic"), no_wrap=True, overflow="ellipsis"))
        policy = policies[h] if h < len(policies) else None
        return policy, f"\n(h = {H}: no steps left, V_{H} = 0 and no action)"

    def update_log(self) -> None:
        """Read what the log gained since the last tick (the last megabyte on opening) and follow it:
        the Log widget scrolls with new lines while its view sits at the end, like `tail -f`."""
        path = getattr(self, "log_path", None)
        if not path:
            self.log_status.update(Text("No log file: this run was not started by the background runner."))
            return
        try:
            size = Path(path).stat().st_size
        except OSError:
            self.log_status.update(Text(f"Log file {printable(path)} is not there (yet)."))
            return
        if size == self._log_offset:
            return
        start = max(0, size - LOG_FIRST_BYTES) if self._log_offset < 0 or size < self._log_offset else self._log_offset
        if size < self._log_offset:  # rotated or truncated: read it again
            self.log_lines, self._log_written = [], 0
            self.log_view.clear()
        with open(path, "rb") as fh:
            fh.seek(start)
            chunk = fh.read(size - start)
        if not chunk.endswith(b"\n"):  # keep a half-written last line for the next tick
            cut = chunk.rfind(b"\n") + 1
            size = start + cut
            chunk = chunk[:cut]
        lines = chunk.decode(errors="replace").splitlines()
        if self._log_offset < 0 and start > 0 and lines:
            lines = lines[1:]  # the first line read mid-way
        self._log_offset = size
        self.log_lines.extend(printable(line, lines=True) for line in lines)
        if len(self.log_lines) > LOG_KEEP_LINES:
            drop = len(self.log_lines) - LOG_KEEP_LINES
            del self.log_lines[:drop]
            self._log_written = max(0, self._log_written - drop)
        self.flush_log()

    def flush_log(self) -> None:
        """Hand the Log widget the lines it lacks (it exists once its tab was first opened)."""
        log = self.log_view
        if not log.is_mounted:
            return
        new = self.log_lines[self._log_written:]
        if new:
            first = self._log_written == 0
            log.write_lines(new, scroll_end=True if first else None)  # None: follow only from the end
            self._log_written = len(self.log_lines)
        self.log_status.update(Text(f"{len(self.log_lines)} lines of {printable(self.log_path)} · / search"
                                    " · follows new lines at the end"), layout=False)

    # --- actions ---------------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Sweep keys only where there are Bellman sweeps to step through (False hides them from the
        footer; None would show them greyed out, which says nothing to a Q-learning or PPO run)."""
        if action in ("sweep", "sweep_to"):
            return bool(self.sweeps)
        if action == "order_episodes":
            return self.has_gold
        if action == "log_match":
            return bool(self.log_search.value.strip()) and self.query_one("#run-tabs", TabbedContent).active == "log"
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

    def action_filter(self) -> None:
        """`/`: in the Log tab, search the log; anywhere else, filter the metric plots by name (the
        Plots tab comes to the front)."""
        if self.query_one("#run-tabs", TabbedContent).active == "log":
            self.action_search_log()
            return
        self.action_tab("plots")
        self.query_one(MetricGrid).open_filter()

    def action_tab(self, tab: str) -> None:
        if tab in self.hidden_tabs:  # a deep run has no Values tab, a run that did not fail no Traceback
            shown = ", ".join(f"{key} {name.title()}" for name, key in self.visible_tabs())
            self.notify(f"This run has no {tab.title()} tab ({shown}).", severity="warning", timeout=3)
            return
        self.query_one("#run-tabs", TabbedContent).active = tab
        if tab == "episodes":
            self.episodes_table.focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "episodes":
            self.show_episodes()
            self.episodes_table.focus()
        elif event.pane.id == "log":
            self.call_after_refresh(self.flush_log)  # the Log widget mounts with its tab (Lazy)
        self.refresh_bindings()  # n/N: only in the Log tab

    def action_back(self) -> None:
        if self.log_search.display and self.log_search.has_class("visible"):
            self.close_search()
            return
        self.app.pop_screen()

    # --- cancel and resume (the same keys and flow as on the Runs screen) ----------------------------
    def action_cancel_run(self) -> None:
        if self.row.get("status") not in ACTIVE_STATUSES:
            self.notify(f"Run {self.run_id} is {self.row.get('status', '…')}: only queued or running runs can be "
                        "cancelled.", severity="warning")
            return
        run_actions.cancel_runs(self, [self.run_id], lambda: self.poll(force=True))

    def action_resume_run(self) -> None:
        if self.row.get("status") not in run_actions.RESUMABLE:
            self.notify(f"Run {self.run_id} is {self.row.get('status', '…')}: only crashed, cancelled or failed runs "
                        "can be resumed.", severity="warning")
            return
        run_actions.resume_runs(self, [self.run_id], self.reopen)

    def reopen(self) -> None:
        """After a resume the run's data after its checkpoint is gone: read it afresh, in a new screen."""
        if self.is_on_top:
            self.app.switch_screen(RunScreen(self.run_id))

    # --- searching the log ---------------------------------------------------------------------------
    def action_search_log(self) -> None:
        self.action_tab("log")
        box = self.log_search
        box.add_class("visible")
        box.cursor_blink = not self.lab.is_headless
        box.focus()

    def close_search(self) -> None:
        self.log_search.remove_class("visible")
        self.log_view.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "log-search":
            self.find_in_log(event.value)
            self.log_view.focus()  # back to the log, where n and N step through the matches

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "log-search":
            self.refresh_bindings()

    def action_log_match(self, step: int) -> None:
        self.find_in_log(self.log_search.value, step)

    def find_in_log(self, query: str, step: int = 1) -> int | None:
        """Scroll to the next (step 1) or previous (-1) log line holding `query` (any case), wrapping
        at either end, and highlight the matches; the line's index."""
        needle = query.strip().lower()
        lines = self.log_view.lines
        if not needle or not lines:
            return None
        n = len(lines)
        hits = [i for i, line in enumerate(lines) if needle in line.lower()]
        if not hits:
            self.log_view.show_matches("", None)
            self.log_status.update(Text(f"no line holds {printable(query)!r}"), layout=False)
            return None
        current = self._search_from - 1  # the line of the last match (-1: none yet)
        if step > 0:
            line = next((i for i in hits if i > current), hits[0])
        else:
            line = next((i for i in reversed(hits) if i < current), hits[-1]) if current >= 0 else hits[-1]
        self._search_from = line + 1
        self.log_view.show_matches(needle, line)
        self.log_view.scroll_to(y=max(0, line - 2), animate=False, immediate=True)
        self.log_status.update(Text(f"{printable(query)!r}: line {line + 1} of {n} · match {hits.index(line) + 1} of "
                                    f"{len(hits)} · n: next · N: previous · escape: close"), layout=False)
        return line

    # --- the sweep slider ------------------------------------------------------------------------------
    def action_sweep(self, delta: int) -> None:
        """Each press moves one sweep from where the last press left the slider (not from the V on
        screen: a key pressed while the previous sweep was still being read would be lost)."""
        if self.sweeps:
            if self.policy_h is not None:  # over h = H - k: the next h is the V stored one step earlier
                delta = -delta
            self.sweep_target = max(0, min(self.sweeps - 1, self.sweep_target + delta))
            self.load_sweep(self.sweep_target)

    def action_sweep_to(self, index: int) -> None:
        if self.sweeps:
            if self.policy_h is not None:  # first h = 0 is the last V stored (H steps left), last h = H the first
                index = -1 - index
            self.sweep_target = index % self.sweeps
            self.load_sweep(self.sweep_target)

    @work(thread=True, exclusive=True, group="sweep")
    def load_sweep(self, index: int) -> None:
        try:
            with self.lab.store.read() as session:
                found = artifact_at(session, self.run_id, "V", index)
        except Exception as exc:  # noqa: BLE001 — a damaged V row: say so where it would show
            self.post(self.values_grid.update, Text(f"sweep {index} cannot be read: {printable(exc)}"))
            return
        if found is not None:
            self.post(self._apply_sweep, index, found)

    def _apply_sweep(self, index: int, found: tuple) -> None:
        if index != self.sweep_target:
            return  # a newer press is on its way
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
                        severity="warning", markup=False)
            return
        from rltui.tui.screens.replay import ReplayScreen

        self.lab.push_screen(ReplayScreen(self.run_id, episode_id))


def resolved_toml(config: Any) -> str:
    """The stored config with every default filled in (what the run ran with), as TOML; the stored
    config itself where it no longer validates (an algorithm since renamed, say)."""
    from rltui.config import dump_toml

    if not isinstance(config, dict):
        return ""
    try:
        from rltui.config import validate_config

        return dump_toml(validate_config(dict(config), source="stored config").to_dict())
    except Exception:  # noqa: BLE001 — show what is stored rather than nothing
        return dump_toml(config)
