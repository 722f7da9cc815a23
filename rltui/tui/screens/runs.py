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
from typing import Any, Callable

from rich.text import Text
from textual import work
from textual.worker import get_current_worker
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Header, Input, Static

from rltui.text import printable
from rltui.tui import format as fmt
from rltui.tui import launching, run_actions
from rltui.tui.format import ACTIVE_STATUSES
from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter
from rltui.tui.widgets.live_table import LiveTable

COLUMNS = [
    ("sel", " "), ("id", "ID"), ("name", "Name"), ("status", "Status"), ("progress", "Progress"),
    ("last", "Last G"), ("best", "Best G"), ("env", "Env"), ("algo", "Algo"), ("steps", "Steps"),
    ("device", "Device"), ("duration", "Duration"), ("created", "Created"), ("tags", "Tags"),
    ("notes", "Notes"),
]
LABELS = dict(COLUMNS)
# Compact mode (the default below WIDE columns): the columns that fit 80, the selection mark in the
# ID cell, the progress as a bare percentage, shorter names. `v` picks any set of columns instead.
COMPACT = ["id", "name", "status", "progress", "last", "best", "algo"]
WIDE = 120
NAME_WIDTH = {False: 32, True: 18}  # a long name is cut with … (the run screen shows it whole)
CLIP_WIDTH = {"env": 16, "algo": 16, "tags": 24, "notes": 32}
COMPACT_CLIP = {"algo": 10, "env": 10}
PAGE = 200  # rows put in the table at a time
LOAD_CHUNK = 500  # runs read per step of the full load (about 10 ms of Python each)
LOAD_PAUSE = 0.005  # seconds the full load lets the UI thread have between chunks
# Columns a live run changes every poll get the width of their widest value up front: a column that
# widens re-renders the whole table (hundreds of ms with a screenful of runs while runs write).
LIVE_WIDTHS = {"progress": 13, "last": 9, "best": 9, "steps": 5, "duration": 8}
COMPACT_LIVE_WIDTHS = {"progress": 4, "last": 8, "best": 8}
COMPACT_LABELS = {"progress": "Done"}
# What each compact column takes (its widest cell, plus the cell padding of 2): below 80 columns the
# compact table keeps the columns that fit, in COMPACT's order, rather than running off the edge.
COMPACT_ROOM = {"id": 6, "name": 20, "status": 13, "progress": 6, "last": 10, "best": 10, "algo": 12}
SORTABLE = ["id", "name", "status", "progress", "last", "best", "env", "algo", "steps", "duration", "created"]


class RunsScreen(LabScreen):
    HELP_TITLE = "Runs"
    AUTO_FOCUS = "#runs-table"
    HELP_ABOUT = ("Every run in the store, updated live. Select runs with space to compare, cancel, resume or "
                  "delete several at once; otherwise actions apply to the run under the cursor. Below 120 "
                  "columns the table is compact (z toggles it); v picks the columns.")
    BINDINGS = [
        Binding("enter", "open", "Open", show=False),
        Binding("n", "new", "New"),
        Binding("c", "clone", "Clone"),
        Binding("space", "toggle_select", "Select", show=False),
        Binding("m", "compare", "Compare"),
        Binding("w", "app.sweeps", "Sweeps", show=False),
        Binding("k", "cancel_run", "Cancel"),
        Binding("u", "resume_run", "Resume"),
        Binding("d", "delete", "Delete"),
        Binding("r", "rename", "Rename", show=False),
        Binding("t", "tag", "Tag", show=False),
        Binding("N,e", "note", "Note", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort", show=False),
        Binding("S", "reverse", "Reverse sort", show=False),
        Binding("L", "launch_samples", "Launch samples", show=False),
        Binding("g", "first_row", "First row", show=False),
        Binding("G", "last_row", "Last row", show=False),
        Binding("v", "choose_columns", "Columns", show=False),
        Binding("z", "toggle_compact", "Compact/wide", show=False),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape", "clear", "Clear filter/selection", show=False),
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
        self.compact_choice: bool | None = None  # None: compact below WIDE columns
        self.chosen_columns: list[str] | None = None  # the column chooser's pick (v), else the mode's
        self.shown_columns: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: name, env, algo, tag or status — enter to keep, escape to clear", id="filter")
        yield Static(id="welcome")
        table: DataTable = LiveTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        self.shown_columns = self.visible_columns()
        self.add_columns(table)
        yield table
        yield Static("reading the store …", id="runs-status", classes="statusline")
        yield LabFooter()

    # --- columns ---------------------------------------------------------------------------------
    @property
    def compact(self) -> bool:
        if self.compact_choice is not None:
            return self.compact_choice
        width = self.size.width or self.app.size.width
        return width < WIDE

    def visible_columns(self) -> list[str]:
        if self.chosen_columns is not None:
            return [k for k, _ in COLUMNS if k in self.chosen_columns]
        if self.compact:
            room = (self.size.width or self.app.size.width) - 2  # the vertical scrollbar
            shown, used = [], 0
            for key in COMPACT:
                used += COMPACT_ROOM[key]
                if used > room and len(shown) >= 3:
                    break
                shown.append(key)
            return shown
        return [k for k, _ in COLUMNS]

    def add_columns(self, table: DataTable) -> None:
        widths = COMPACT_LIVE_WIDTHS if self.compact else LIVE_WIDTHS
        for key in self.shown_columns:
            label = COMPACT_LABELS.get(key, LABELS[key]) if self.compact else LABELS[key]
            table.add_column(label, key=key, width=widths.get(key, LIVE_WIDTHS.get(key)))

    def refit_columns(self) -> None:
        """Put the columns the mode and chooser ask for into the table, if they changed."""
        wanted = self.visible_columns()
        signature = (tuple(wanted), self.compact)
        if signature == getattr(self, "_column_signature", None):
            return
        self._column_signature = signature
        self.shown_columns = wanted
        table = self.query_one("#runs-table", DataTable)
        table.clear(columns=True)
        self.add_columns(table)
        self.rebuild()

    def on_resize(self, event) -> None:  # noqa: ANN001
        if self.compact_choice is None and self.chosen_columns is None and self._loaded_once:
            self.refit_columns()

    _loaded_once = False

    def on_mount(self) -> None:
        self._column_signature = (tuple(self.shown_columns), self.compact)
        self.query_one("#runs-table", DataTable).loading = True
        # The first frame goes out before the store is touched; then the first page is read.
        self.call_after_refresh(self.load_first_page)
        self.set_interval(self.lab.poll_interval, self.poll)

    # --- reading ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="runs-read")
    def load_first_page(self) -> None:
        """Open the store, then the newest screenful, so rows paint at once however many runs there are."""
        from rltui.store.runs_table import run_rows

        try:
            store = self.lab.store
            with store.sql.read() as tx:  # plain SQL: the first rows need no SQLAlchemy
                rows = run_rows(tx, limit=PAGE)
                returns = self.lab.returns.read(tx, [r["id"] for r in rows])
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
        self._loaded_once = True
        self.shown_columns = []  # the width is known now: fit the columns to it
        self._column_signature = None
        self.refit_columns()
        # The rest only once these rows are painted: its read competes with the UI thread for the GIL.
        self.call_after_refresh(self.load_all)

    @work(thread=True, exclusive=True, group="runs-read")
    def load_all(self) -> None:
        """Every run, read newest first a chunk at a time, each chunk in a read transaction of its own.

        Turning rows into Python objects holds the GIL; between chunks this thread sleeps so the UI
        thread runs, and the screen stays responsive while tens of thousands of runs load. No snapshot
        is held across the pauses (a WAL checkpoint could not restart the log meanwhile); what changes
        between chunks the polls catch: a run created since has a larger id than any read, a deleted
        one changes the count (everything is read again), a live one is polled by id.
        """
        from rltui.store.runs_table import run_rows

        worker = get_current_worker()
        rows: list[dict[str, Any]] = []
        returns: dict[int, dict[str, Any]] = {}
        before = None
        while not worker.is_cancelled:
            with self.lab.store.sql.read() as tx:
                chunk = run_rows(tx, limit=LOAD_CHUNK, before_id=before)
                if chunk:
                    returns.update(self.lab.returns.read(tx, [r["id"] for r in chunk]))
            rows += chunk
            if len(chunk) < LOAD_CHUNK:
                break
            before = chunk[-1]["id"]
            time.sleep(LOAD_PAUSE)
        if not worker.is_cancelled:
            self.post(self._apply_full, rows, returns)

    @work(thread=True, exclusive=True, group="runs-poll")
    def poll_worker(self, after_id: int, live_ids: list[int], known: int, liveness: bool) -> None:
        from rltui.store.runs_table import run_rows, runs_fingerprint

        store = self.lab.store
        queue = launching.liveness(store) if liveness else None
        with store.sql.read() as tx:
            count, max_id = runs_fingerprint(tx)
            new = run_rows(tx, after_id=after_id) if max_id > after_id else []
            live = run_rows(tx, ids=live_ids) if live_ids else []
            ids = [r["id"] for r in new + live]
            returns = self.lab.returns.read(tx, ids)  # only the episodes added since the last look
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
        hay = " ".join([row["name"], row["env"], row["algo"], row["status"], *(row.get("tags") or []),
                        row.get("notes") or ""]).lower()
        return all(word in hay for word in self.filter_text.lower().split())

    def cells(self, row: dict[str, Any], theme_vars: dict[str, str] | None = None) -> dict[str, Any]:
        """Every column's cell for `row`; store text (names, tags, notes) as plain Text, never markup."""
        now = self.lab.clock()
        theme_vars = theme_vars if theme_vars is not None else self.lab.theme_variables
        compact = self.compact
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
        selected = row["id"] in self.selected
        clips = {**CLIP_WIDTH, **COMPACT_CLIP} if compact else CLIP_WIDTH
        progress = float(row.get("progress") or 0.0)
        notes = (row.get("notes") or "").strip().splitlines()
        return {
            "sel": Text("●", style="bold") if selected else " ",
            # compact mode has no selection column: the mark goes before the id
            "id": Text(("●" if selected and "sel" not in self.shown_columns else "") + str(row["id"]),
                       justify="right", style="bold" if selected and compact else ""),
            "name": fmt.plain(row["name"], NAME_WIDTH[compact]),
            "status": status,
            "progress": (Text(f"{progress * 100:3.0f}%", justify="right") if compact
                         else Text(f"{fmt.progress_bar(progress, 8)} {progress * 100:3.0f}%")),
            "last": Text(fmt.num(last), justify="right"),
            "best": Text(fmt.num(best), justify="right"),
            "env": fmt.plain(row["env"], clips["env"]),
            "algo": fmt.plain(row["algo"], clips["algo"]),
            "steps": Text(fmt.count(steps), justify="right"),
            "device": fmt.plain(row.get("device_used") or row.get("device") or "", 12),
            "duration": Text(fmt.duration(fmt.run_duration(row, now)), justify="right"),
            "created": Text(fmt.when(row.get("created_at"))),
            "tags": fmt.plain(",".join(row.get("tags") or []), clips["tags"]),
            "notes": fmt.plain(notes[0] + (" …" if len(notes) > 1 else "") if notes else "", clips["notes"]),
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
            table.add_row(*[c[k] for k in self.shown_columns], key=str(row["id"]))

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
                table.update_row(key, {col: c[col] for col in self.shown_columns})

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
                offer: list[Any] = [
                    "Press ", ("L", "bold"),
                    f" to launch the {len(names)} sample runs in {printable(samples)} (it asks first; the quick "
                    f"tabular ones go first: {', '.join(printable(n) for n in names[:6])}"
                    f"{', …' if len(names) > 6 else ''}), or "]
            else:
                offer = ["No sample_runs/ folder was found next to rltui or in this directory (start rltui in the "
                         "repository root of a source checkout to be offered the sample runs).\n\nPress "]
            welcome.update(Text.assemble(
                ("Welcome to rltui", "bold"), " — a terminal laboratory for reinforcement learning.\n\n"
                "This store has no runs yet.\n\n", *offer,
                ("n", "bold"), " to configure a new run, or run one from a shell:\n"
                "  rltui run sample_runs/maze_value_iteration.toml\n\n",
                ("?", "bold"), " lists the keys of every screen · ", ("ctrl+p", "bold"), " opens the command palette",
            ))

    def update_status(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        counts: dict[str, int] = {}
        for row in self.rows.values():
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        parts = [f"{len(self.rows)} runs"] + [f"{n} {s}" for s, n in sorted(counts.items())]
        if self.filter_text:
            parts.append(f"filter '{printable(self.filter_text)}': {len(self.ordered)} match")
        if table.row_count < len(self.ordered):
            parts.append(f"showing {table.row_count} (more as you scroll)")
        if self.selected:
            parts.append(f"{len(self.selected)} selected")
        parts.append(f"sort {self.sort_key}{' ↓' if self.sort_reverse else ' ↑'}")
        self.query_one("#runs-status", Static).update(Text(" · ".join(parts)), layout=False)  # one line, always

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
            if run is None:
                return
            # The run's name now (it may have been renamed since), not the one in its config.
            config = {**(run.config or {}), "name": run.name}
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
        run_actions.cancel_runs(self, ids, self.load_all)

    def action_resume_run(self) -> None:
        ids = [i for i in self.targets() if self.rows.get(i, {}).get("status") in run_actions.RESUMABLE]
        if not ids:
            self.notify("Nothing to resume: only crashed, cancelled or failed runs can be resumed.",
                        severity="warning")
            return
        run_actions.resume_runs(self, ids, self.load_all)

    # --- moving and columns ------------------------------------------------------------------------
    def action_first_row(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count:
            table.move_cursor(row=0, animate=False)

    def action_last_row(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        if table.row_count < len(self.ordered):
            self.add_page(len(self.ordered) - table.row_count)  # every row, so the last is the last run
            self.update_status()
        if table.row_count:
            table.move_cursor(row=table.row_count - 1, animate=False)

    def action_toggle_compact(self) -> None:
        self.compact_choice = not self.compact
        self.refit_columns()
        self.notify(f"{'compact' if self.compact else 'wide'} table (z switches)", timeout=2)

    def action_choose_columns(self) -> None:
        from rltui.tui.screens.dialogs import ColumnsDialog

        def done(chosen: list[str] | None) -> None:
            if chosen is None:
                return
            self.chosen_columns = chosen or None  # none ticked: back to the mode's own columns
            self.refit_columns()

        self.lab.push_screen(ColumnsDialog([(key, label) for key, label in COLUMNS if key != "sel"],
                                           self.shown_columns), done)

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

            def deleted() -> None:
                self.selected -= set(ids)
                for i in ids:
                    self.rows.pop(i, None)
                self.notify(f"deleted {len(ids)} run{'s' if len(ids) > 1 else ''}")
                self.load_all()

            self._store_edit("delete", lambda session: session.execute(sql_delete(Run).where(Run.id.in_(ids))), deleted)

        from rltui.tui.screens.dialogs import ConfirmDialog

        self.lab.push_screen(ConfirmDialog(f"Delete run {printable(names)}{more} and all its data?{warn}"), done)

    def _edit(self, title: str, field: str, current: str, convert) -> None:  # noqa: ANN001
        run_id = self.cursor_id()
        if run_id is None:
            return

        def done(value: str | None) -> None:
            if value is None:
                return
            from sqlalchemy import update

            from rltui.store.models import Run

            values = {field: convert(value)}
            self._store_edit(f"run {run_id}: {field}",
                             lambda session: session.execute(update(Run).where(Run.id == run_id).values(**values)),
                             self.load_all)

        from rltui.tui.screens.dialogs import PromptDialog

        self.lab.push_screen(PromptDialog(title.format(id=run_id), current), done)

    def _store_edit(self, what: str, write: Callable[[Any], Any], then: Callable[[], Any]) -> None:
        """A short edit of the store (rename, tag, note, delete) in a thread, so the lab never waits
        for the write lock; a store that refuses it (read-only, full, damaged, busy) says so in a toast."""
        store = self.lab.store

        def work() -> None:
            from rltui.store.faults import fault_message

            try:
                with store.write() as session:
                    write(session)
            except Exception as exc:  # noqa: BLE001 — one line, and the lab stays open
                message = fault_message(exc, store.where) or f"{type(exc).__name__}: {exc}"
                self.post(self.notify, f"{what} failed: {message}", severity="error", timeout=8)
                return
            self.post(then)

        self.run_worker(work, thread=True, group="store-edit", exit_on_error=False)

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
        self.plan_samples(samples)

    @work(thread=True, exclusive=True, group="launch")
    def plan_samples(self, folder) -> None:  # noqa: ANN001
        """Read which sample is cheap (the registry, off the UI thread), then ask before queueing."""
        self.post(self._confirm_samples, folder, launching.plan_samples(folder))

    def _confirm_samples(self, folder, plan: list) -> None:  # noqa: ANN001
        from rltui.tui.screens.dialogs import ConfirmDialog

        counts = [sum(1 for _, tier in plan if tier == t) for t in range(len(launching.TIERS))]
        kinds = ", ".join(f"{n} {name}" for n, name in zip(counts, launching.TIERS) if n)
        busy = f"\nThe store already holds {len(self.rows)} runs; these come on top." if self.rows else ""
        question = (f"Launch the {len(plan)} sample runs in {printable(folder)}?\n{kinds}: queued cheapest first, "
                    f"each chain of stages in order. The language-model chains train for many minutes.{busy}")

        def done(ok: bool | None) -> None:
            if ok:
                self.launch_samples([path for path, _ in plan])

        self.lab.push_screen(ConfirmDialog(question), done)

    @work(thread=True, group="launch")
    def launch_samples(self, paths: list) -> None:
        from rltui.config import ConfigError, load_config_file
        from rltui.store import StoreError

        try:
            self.lab.store.refuse_writes()  # a read-only store: one toast, not one per sample
        except StoreError as exc:
            self.post(self.notify, f"launch samples failed: {exc}", severity="error", timeout=8)
            return
        ok = 0
        for path in paths:
            try:
                launching.launch(self.lab.store, load_config_file(path))
                ok += 1
            except (ConfigError, StoreError, RuntimeError, OSError) as exc:
                self.post(self.notify, f"{path.name}: {exc}", severity="error", timeout=8)
        self.post(self.notify, f"launched {ok} of {len(paths)} sample runs")
        self.post(self.load_all)
