"""The runs screen: every run in the store, live, filterable, sortable, with multi-select.

Polling is incremental: each tick reads the store's (count, max id), new rows after the highest id
seen, and the rows that were live (queued/running) at the last tick; only changed cells are updated.
A full reload happens only when rows disappeared (deleted elsewhere) or on demand (ctrl+r).

This is the lab's first screen, so it paints before touching the store: the table shows its loading
state in the first frame, then a worker thread opens the store (the first import of SQLAlchemy) and
reads the newest page of runs; every other run is read after those rows are on screen. The store's
modules are imported inside the methods that use them, never with this module.
"""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual import work
from textual.worker import get_current_worker
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Header, Input, Static

from rltui.tui import format as fmt
from rltui.tui import launching
from rltui.tui.format import ACTIVE_STATUSES
from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter
from rltui.tui.widgets.live_table import LiveTable

COLUMNS = [
    ("sel", " "), ("id", "ID"), ("name", "Name"), ("status", "Status"), ("progress", "Progress"),
    ("last", "Last G"), ("best", "Best G"), ("env", "Env"), ("algo", "Algo"), ("steps", "Steps"),
    ("device", "Device"), ("duration", "Duration"), ("created", "Created"), ("tags", "Tags"),
]
PAGE = 200  # rows put in the table at a time
LOAD_CHUNK = 500  # runs read per step of the full load (about 10 ms of Python each)
LOAD_PAUSE = 0.005  # seconds the full load lets the UI thread have between chunks
# Columns a live run changes every poll get the width of their widest value up front: a column that
# widens re-renders the whole table (hundreds of ms with a screenful of runs while runs write).
LIVE_WIDTHS = {"progress": 13, "last": 9, "best": 9, "steps": 5, "duration": 8}
SORTABLE = ["id", "name", "status", "progress", "last", "best", "env", "algo", "steps", "duration", "created"]


class RunsScreen(LabScreen):
    HELP_TITLE = "Runs"
    AUTO_FOCUS = "#runs-table"
    HELP_ABOUT = ("Every run in the store, updated live. Select runs with space to compare, cancel or delete "
                  "several at once; otherwise actions apply to the run under the cursor.")
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("n", "new", "New"),
        Binding("c", "clone", "Clone"),
        Binding("space", "toggle_select", "Select", show=False),
        Binding("m", "compare", "Compare"),
        Binding("w", "app.sweeps", "Sweeps", show=False),
        Binding("x", "cancel_run", "Cancel"),
        Binding("d", "delete", "Delete"),
        Binding("r", "rename", "Rename", show=False),
        Binding("t", "tag", "Tag", show=False),
        Binding("N,e", "note", "Note", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort", show=False),
        Binding("S", "reverse", "Reverse sort", show=False),
        Binding("L", "launch_samples", "Launch samples", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape", "clear", "Clear filter/selection", show=False),
        Binding("q", "app.quit", "Quit", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[int, dict[str, Any]] = {}
        self.selected: set[int] = set()
        self.max_id = 0
        self.filter_text = ""
        self.sort_key = "id"
        self.sort_reverse = True
        self.queue: dict[int, int] = {}
        self._loaded = False
        self._liveness_tick = 0
        self.ordered: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: name, env, algo, tag or status — enter to keep, escape to clear", id="filter")
        yield Static(id="welcome")
        table: DataTable = LiveTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key, width=LIVE_WIDTHS.get(key))
        yield table
        yield Static("reading the store …", id="runs-status", classes="statusline")
        yield LabFooter()

    def on_mount(self) -> None:
        self.query_one("#runs-table", DataTable).loading = True
        # The first frame goes out before the store is touched; then the first page is read.
        self.call_after_refresh(self.load_first_page)
        self.set_interval(self.lab.poll_interval, self.poll)

    # --- reading ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="runs-read")
    def load_first_page(self) -> None:
        """Open the store, then the newest screenful, so rows paint at once however many runs there are."""
        from rltui.store.runs_table import run_returns, run_rows

        try:
            store = self.lab.store
            with store.sql.read() as tx:  # plain SQL: the first rows need no SQLAlchemy
                rows = run_rows(tx, limit=PAGE)
                returns = run_returns(tx, [r["id"] for r in rows])
        except Exception as exc:  # noqa: BLE001 — StoreError, a damaged file, a missing driver: the app
            self.post(self.lab.fail_to_open, exc)  # leaves, and the CLI prints why in one line
            return
        self.post(self._apply_first_page, rows, returns)

    def _apply_first_page(self, rows: list[dict[str, Any]], returns: dict[int, dict[str, Any]]) -> None:
        if self._loaded:
            return
        for row in rows:
            row.update(returns.get(row["id"], {}))
            self.rows[row["id"]] = row
        self.query_one("#runs-table", DataTable).loading = False
        self.rebuild()
        # The rest only once these rows are painted: its read competes with the UI thread for the GIL.
        self.call_after_refresh(self.load_all)

    @work(thread=True, exclusive=True, group="runs-read")
    def load_all(self) -> None:
        """Every run, read newest first a chunk at a time in one read transaction.

        Turning rows into Python objects holds the GIL; between chunks this thread sleeps so the UI
        thread runs, and the screen stays responsive while tens of thousands of runs load.
        """
        from rltui.store.runs_table import run_returns, run_rows

        worker = get_current_worker()
        rows: list[dict[str, Any]] = []
        returns: dict[int, dict[str, Any]] = {}
        with self.lab.store.sql.read() as tx:
            before = None
            while not worker.is_cancelled:
                chunk = run_rows(tx, limit=LOAD_CHUNK, before_id=before)
                if chunk:
                    rows += chunk
                    returns.update(run_returns(tx, [r["id"] for r in chunk]))
                if len(chunk) < LOAD_CHUNK:
                    break
                before = chunk[-1]["id"]
                time.sleep(LOAD_PAUSE)
        if not worker.is_cancelled:
            self.post(self._apply_full, rows, returns)

    @work(thread=True, exclusive=True, group="runs-poll")
    def poll_worker(self, after_id: int, live_ids: list[int], known: int, liveness: bool) -> None:
        from rltui.store.runs_table import run_returns, run_rows, runs_fingerprint

        store = self.lab.store
        queue = launching.liveness(store) if liveness else None
        with store.sql.read() as tx:
            count, max_id = runs_fingerprint(tx)
            new = run_rows(tx, after_id=after_id) if max_id > after_id else []
            live = run_rows(tx, ids=live_ids) if live_ids else []
            ids = [r["id"] for r in new + live]
            returns = run_returns(tx, ids) if ids else {}
        self.post(self._apply_poll, new, live, returns, count, queue)

    def poll(self) -> None:
        if not self._loaded or not self.is_on_top:  # another screen is in front: it polls for itself
            return
        live_ids = [i for i, r in self.rows.items() if r["status"] in ACTIVE_STATUSES]
        self._liveness_tick += 1
        self.poll_worker(self.max_id, live_ids, len(self.rows), self._liveness_tick % 3 == 1)

    def _apply_full(self, rows: list[dict[str, Any]], returns: dict[int, dict[str, Any]]) -> None:
        self.rows = {}
        for row in rows:
            row.update(returns.get(row["id"], {}))
            self.rows[row["id"]] = row
        self.max_id = max(self.rows, default=0)
        self.selected &= set(self.rows)
        first = not self._loaded
        self._loaded = True
        self.rebuild()
        if first:
            self.lab.freeze_startup_heap()

    def _apply_poll(self, new: list[dict[str, Any]], live: list[dict[str, Any]],
                    returns: dict[int, dict[str, Any]], count: int, queue: dict[int, int] | None) -> None:
        if queue is not None:
            self.queue = queue
        changed_ids = []
        for row in new + live:
            row.update(returns.get(row["id"], {}))
            old = self.rows.get(row["id"])
            if old is not None:
                row.setdefault("last_return", old.get("last_return"))
            self.rows[row["id"]] = row
            changed_ids.append(row["id"])
        if new:
            self.max_id = max(self.max_id, max(r["id"] for r in new))
        if count != len(self.rows):  # deleted (or edited) elsewhere: read everything again
            self.load_all()
            return
        if new:
            self.rebuild()
        else:
            self.update_rows(changed_ids)
        self.update_status()

    # --- drawing ---------------------------------------------------------------------------------
    def matches(self, row: dict[str, Any]) -> bool:
        if not self.filter_text:
            return True
        hay = " ".join([row["name"], row["env"], row["algo"], row["status"], *row.get("tags", [])]).lower()
        return all(word in hay for word in self.filter_text.lower().split())

    def cells(self, row: dict[str, Any], theme_vars: dict[str, str] | None = None) -> dict[str, Any]:
        now = self.lab.clock()
        theme_vars = theme_vars if theme_vars is not None else self.lab.theme_variables
        status = fmt.status_text(row["status"], theme_vars)
        if row["status"] == "queued" and row["id"] in self.queue:
            status.append(f" #{self.queue[row['id']]}")
        from rltui.store.runs_table import run_status_note  # loaded with the first rows already

        note = run_status_note(row["status"], row.get("heartbeat_at"), row.get("waits_for"), row["env"])
        if note:  # "stalled: no heartbeat for 42 s", "waits for run 12"
            status.append(f" {note}")
        summary = row.get("summary") or {}
        last = row.get("last_return", summary.get("final_return"))
        best = row.get("best_return", summary.get("best_return"))
        steps = row.get("steps") or summary.get("steps") or summary.get("sweeps")
        return {
            "sel": Text("●", style="bold") if row["id"] in self.selected else " ",
            "id": Text(str(row["id"]), justify="right"),
            "name": row["name"],
            "status": status,
            "progress": f"{fmt.progress_bar(row['progress'], 8)} {row['progress'] * 100:3.0f}%",
            "last": Text(fmt.num(last), justify="right"),
            "best": Text(fmt.num(best), justify="right"),
            "env": row["env"],
            "algo": row["algo"],
            "steps": Text(fmt.count(steps), justify="right"),
            "device": row.get("device_used") or row.get("device") or "",
            "duration": Text(fmt.duration(fmt.run_duration(row, now)), justify="right"),
            "created": fmt.when(row.get("created_at")),
            "tags": ",".join(row.get("tags") or []),
        }

    def sort_value(self, row: dict[str, Any]) -> Any:
        key = self.sort_key
        if key in ("last", "best"):
            v = row.get(f"{key}_return")
            return (v is not None, v if v is not None else 0.0)
        if key == "duration":
            return fmt.run_duration(row, self.lab.clock()) or 0.0
        if key == "created":
            return row.get("created_at") or row["id"]
        if key == "steps":
            return row.get("steps") or 0
        value = row.get(key)
        return value if value is not None else ""

    def rebuild(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        cursor_id = self.cursor_id()
        table.clear()
        rows = [r for r in self.rows.values() if self.matches(r)]
        rows.sort(key=self.sort_value, reverse=self.sort_reverse)
        self.ordered = rows
        # Only a page of rows goes into the table (more as the cursor nears the end): first paint
        # stays fast with tens of thousands of runs.
        self.add_page(max(PAGE, self._index_of(cursor_id, rows) + 1))
        if cursor_id is not None and str(cursor_id) in table.rows:
            table.move_cursor(row=table.get_row_index(str(cursor_id)), animate=False)
        self.update_welcome()
        self.update_status()

    @staticmethod
    def _index_of(run_id: int | None, rows: list[dict[str, Any]]) -> int:
        if run_id is None:
            return 0
        for i, row in enumerate(rows):
            if row["id"] == run_id:
                return i
        return 0

    def add_page(self, count: int = 0) -> None:
        table = self.query_one("#runs-table", DataTable)
        start = table.row_count
        theme_vars = self.lab.theme_variables  # computed once, not once per row
        for row in self.ordered[start:start + (count or PAGE)]:
            c = self.cells(row, theme_vars)
            table.add_row(*[c[k] for k, _ in COLUMNS], key=str(row["id"]))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        table = event.data_table
        near_end = event.cursor_row >= table.row_count - 5
        if table.id == "runs-table" and near_end and table.row_count < len(self.ordered):
            self.add_page()
            self.update_status()

    def update_rows(self, ids: list[int]) -> None:
        table = self.query_one("#runs-table", LiveTable)
        theme_vars = self.lab.theme_variables
        for run_id in ids:
            key = str(run_id)
            if key in table.rows:
                c = self.cells(self.rows[run_id], theme_vars)
                table.update_row(key, {col: c[col] for col, _ in COLUMNS})

    def update_welcome(self) -> None:
        welcome = self.query_one("#welcome", Static)
        table = self.query_one("#runs-table", DataTable)
        empty = not self.rows
        welcome.set_class(empty, "visible")
        table.display = not empty
        if empty:
            samples = launching.sample_runs_dir()
            if samples is not None:
                names = sorted(p.stem for p in samples.glob("*.toml"))
                offer = (f"Press [b]L[/b] to launch the {len(names)} sample runs in {samples} "
                         f"({', '.join(names[:6])}{', …' if len(names) > 6 else ''}), or ")
            else:
                offer = ("No sample_runs/ folder was found next to rltui or in this directory (start rltui in the "
                         "repository root of a source checkout to be offered the sample runs).\n\nPress ")
            welcome.update(
                "[b]Welcome to rltui[/b] — a terminal laboratory for reinforcement learning.\n\n"
                "This store has no runs yet.\n\n" + offer +
                "[b]n[/b] to configure a new run, or run one from a shell:\n"
                "  rltui run sample_runs/maze_value_iteration.toml\n\n"
                "[b]?[/b] lists the keys of every screen · [b]ctrl+p[/b] opens the command palette"
            )

    def update_status(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        parts = [f"{len(self.rows)} runs"] + [f"{n} {s}" for s, n in sorted(counts.items())]
        if self.filter_text:
            parts.append(f"filter '{self.filter_text}': {len(self.ordered)} match")
        if table.row_count < len(self.ordered):
            parts.append(f"showing {table.row_count} (more as you scroll)")
        if self.selected:
            parts.append(f"{len(self.selected)} selected")
        parts.append(f"sort {self.sort_key}{' ↓' if self.sort_reverse else ' ↑'}")
        self.query_one("#runs-status", Static).update(" · ".join(parts), layout=False)  # one line, always

    # --- helpers ---------------------------------------------------------------------------------
    def cursor_id(self) -> int | None:
        table = self.query_one("#runs-table", DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key
        except Exception:  # noqa: BLE001 — no row under the cursor
            return None
        return int(key.value) if key.value is not None else None

    def targets(self) -> list[int]:
        """The selected runs, else the one under the cursor."""
        if self.selected:
            return sorted(self.selected)
        cid = self.cursor_id()
        return [cid] if cid is not None else []

    def reload_soon(self) -> None:
        self.load_all()

    # --- actions ---------------------------------------------------------------------------------
    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key in SORTABLE:
            self.sort_reverse = not self.sort_reverse if key == self.sort_key else key in ("id", "created", "best", "last")
            self.sort_key = key
            self.rebuild()

    def action_open(self) -> None:
        run_id = self.cursor_id()
        if run_id is None:
            return
        from rltui.tui.screens.run import RunScreen

        self.lab.push_screen(RunScreen(run_id))

    def action_new(self) -> None:
        from rltui.tui.screens.new_run import NewRunScreen

        self.lab.push_screen(NewRunScreen(), self._after_new)

    def action_clone(self) -> None:
        run_id = self.cursor_id()
        if run_id is None:
            return
        from rltui.store.models import Run

        with self.lab.store.read() as session:
            run = session.get(Run, run_id)
            config = dict(run.config) if run else None
        from rltui.tui.screens.new_run import NewRunScreen

        self.lab.push_screen(NewRunScreen(initial=config, title=f"Clone of run {run_id}"), self._after_new)

    def _after_new(self, launched: Any) -> None:
        self.load_all()

    def on_screen_resume(self) -> None:
        if self._loaded:
            self.poll()

    def action_toggle_select(self) -> None:
        run_id = self.cursor_id()
        if run_id is None:
            return
        self.selected ^= {run_id}
        self.update_rows([run_id])
        table = self.query_one("#runs-table", DataTable)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)
        self.update_status()

    def action_clear(self) -> None:
        if self.filter_text or self.query_one("#filter", Input).has_class("visible"):
            self._set_filter("")
            return
        if self.selected:
            ids = list(self.selected)
            self.selected.clear()
            self.update_rows(ids)
            self.update_status()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.cursor_blink = not self.lab.is_headless
        box.add_class("visible")
        box.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.filter_text = event.value.strip()
            self.rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            if not event.value.strip():
                event.input.remove_class("visible")
            self.query_one("#runs-table", DataTable).focus()

    def on_key(self, event) -> None:  # noqa: ANN001
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            self._set_filter("")
            event.stop()

    def _set_filter(self, text: str) -> None:
        box = self.query_one("#filter", Input)
        box.value = text
        self.filter_text = text
        if not text:
            box.remove_class("visible")
        self.query_one("#runs-table", DataTable).focus()
        self.rebuild()

    def action_sort(self) -> None:
        i = SORTABLE.index(self.sort_key) if self.sort_key in SORTABLE else 0
        self.sort_key = SORTABLE[(i + 1) % len(SORTABLE)]
        self.rebuild()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.rebuild()

    def action_reload(self) -> None:
        self.load_all()

    def action_compare(self) -> None:
        ids = sorted(self.selected)
        if len(ids) < 2:
            self.notify("Select at least two runs with space, then press m.", severity="warning")
            return
        from rltui.tui.screens.compare import CompareScreen

        self.lab.push_screen(CompareScreen(ids))

    def action_cancel_run(self) -> None:
        ids = [i for i in self.targets() if self.rows.get(i, {}).get("status") in ACTIVE_STATUSES]
        if not ids:
            self.notify("Nothing to cancel: only queued or running runs can be cancelled.", severity="warning")
            return
        for run_id in ids:
            try:
                self.notify(launching.cancel(self.lab.store, run_id))
            except Exception as exc:  # noqa: BLE001 — tell the user, keep the lab open
                self.notify(f"run {run_id}: cancel failed: {exc}", severity="error")
        self.load_all()

    def action_delete(self) -> None:
        ids = self.targets()
        if not ids:
            return
        live = [i for i in ids if self.rows.get(i, {}).get("status") == "running"]
        names = ", ".join(f"{i} {self.rows[i]['name']}" for i in ids[:4] if i in self.rows)
        more = f" and {len(ids) - 4} more" if len(ids) > 4 else ""
        warn = f"\n{len(live)} of them still running: cancel first." if live else ""

        def done(ok: bool | None) -> None:
            if not ok:
                return
            from sqlalchemy import delete as sql_delete

            from rltui.store.models import Run

            with self.lab.store.write() as session:
                session.execute(sql_delete(Run).where(Run.id.in_(ids)))
            self.selected -= set(ids)
            for i in ids:
                self.rows.pop(i, None)
            self.notify(f"deleted {len(ids)} run{'s' if len(ids) > 1 else ''}")
            self.load_all()

        from rltui.tui.screens.dialogs import ConfirmDialog

        self.lab.push_screen(ConfirmDialog(f"Delete run {names}{more} and all its data?{warn}"), done)

    def _edit(self, title: str, field: str, current: str, convert) -> None:  # noqa: ANN001
        run_id = self.cursor_id()
        if run_id is None:
            return

        def done(value: str | None) -> None:
            if value is None:
                return
            from sqlalchemy import update

            from rltui.store.models import Run

            with self.lab.store.write() as session:
                session.execute(update(Run).where(Run.id == run_id).values(**{field: convert(value)}))
            self.load_all()

        from rltui.tui.screens.dialogs import PromptDialog

        self.lab.push_screen(PromptDialog(title.format(id=run_id), current), done)

    def action_rename(self) -> None:
        row = self.rows.get(self.cursor_id() or -1)
        if row:
            self._edit("Rename run {id}", "name", row["name"], lambda v: v.strip() or row["name"])

    def action_tag(self) -> None:
        row = self.rows.get(self.cursor_id() or -1)
        if row:
            self._edit("Tags of run {id} (comma separated)", "tags", ", ".join(row.get("tags") or []),
                       lambda v: [t.strip() for t in v.split(",") if t.strip()])

    def action_note(self) -> None:
        row = self.rows.get(self.cursor_id() or -1)
        if row:
            self._edit("Note on run {id}", "notes", row.get("notes") or "", lambda v: v)

    def action_launch_samples(self) -> None:
        samples = launching.sample_runs_dir()
        if samples is None:
            self.notify("No sample_runs/ folder found (start rltui in the repository root).", severity="warning")
            return
        self.launch_samples(sorted(samples.glob("*.toml")))

    @work(thread=True, group="launch")
    def launch_samples(self, paths: list) -> None:
        from rltui.config import ConfigError, load_config_file

        ok = 0
        for path in paths:
            try:
                launching.launch(self.lab.store, load_config_file(path))
                ok += 1
            except (ConfigError, RuntimeError, OSError) as exc:
                self.post(self.notify, f"{path.name}: {exc}", severity="error", timeout=8)
        self.post(self.notify, f"launched {ok} of {len(paths)} sample runs")
        self.post(self.load_all)
