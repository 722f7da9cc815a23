"""The rltui Textual app (minimal runs list; the full lab grows in this package)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import DataTable, Footer, Header

from rltui.store import Store, open_store
from rltui.store.queries import list_runs, run_dict


class RlTuiApp(App):
    TITLE = "rltui"
    BINDINGS = [("q", "quit", "Quit"), ("r", "refresh", "Refresh")]

    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_columns("ID", "Name", "Env", "Algo", "Status", "Progress")
        self.action_refresh()

    def action_refresh(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        with self.store.read() as session:
            rows = [run_dict(r) for r in list_runs(session)]
        for r in rows:
            table.add_row(r["id"], r["name"], r["env"], r["algo"], r["status"], f"{r['progress']:.0%}")


def run_app(db: str | None = None) -> int:
    RlTuiApp(open_store(db)).run()
    return 0
