"""The lab's start-up: it paints before touching the store, imports neither torch nor gymnasium, and
leaves with the store's own message when the store cannot be opened."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from test_tui_common import demo_store, settle  # noqa: F401 — fixtures

REPO = Path(__file__).resolve().parents[1]


def test_first_frame_is_drawn_before_sqlalchemy_and_torch_is_never_imported(demo_store, tmp_path):
    """In a fresh process: the runs screen's first frame shows the loading state with SQLAlchemy not
    yet imported; later the rows from the store arrive, and torch and gymnasium never load."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        from rltui.tui.app import RlTuiApp
        from rltui.tui.screens.runs import RunsScreen

        first = {{}}
        original = RlTuiApp._display

        def display(self, screen, renderable):
            if renderable is not None and isinstance(screen, RunsScreen) and not first:
                table = screen.query_one("#runs-table")
                first.update(sqlalchemy="sqlalchemy" in sys.modules, loading=table.loading,
                             rows=table.row_count, status=str(screen.query_one("#runs-status").content))
            return original(self, screen, renderable)

        RlTuiApp._display = display

        async def main():
            app = RlTuiApp(db={str(demo_store.path)!r}, poll_interval=3600)
            async with app.run_test(size=(100, 30)) as pilot:
                for _ in range(200):
                    await pilot.pause(0.05)
                    if app.screen.query_one("#runs-table").row_count:
                        break
                table = app.screen.query_one("#runs-table")
                return table.row_count, table.loading

        rows, loading = asyncio.run(main())
        assert first == {{"sqlalchemy": False, "loading": True, "rows": 0, "status": "reading the store …"}}, first
        assert rows > 0 and not loading, (rows, loading)
        bad = [m for m in ("torch", "gymnasium") if m in sys.modules]
        assert not bad, bad
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=240,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_runs_screen_module_needs_no_store_modules():
    code = ("import sys, rltui.tui.app, rltui.tui.screens.runs; "
            "bad = [m for m in ('sqlalchemy', 'numpy', 'pydantic', 'plotext', 'alembic', 'torch', 'gymnasium') "
            "if m in sys.modules]; assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr


async def test_a_store_that_cannot_be_opened_ends_the_app_with_its_message(tmp_path):
    from rltui.store import StoreError
    from rltui.tui.app import RlTuiApp

    not_a_store = tmp_path / "notes.db"
    not_a_store.write_bytes(b"this is not a SQLite file at all" * 100)
    before = not_a_store.read_bytes()
    app = RlTuiApp(db=str(not_a_store), poll_interval=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
    assert isinstance(app.store_error, StoreError)
    assert str(not_a_store) in str(app.store_error)
    assert app.return_code == 2
    assert not_a_store.read_bytes() == before


def test_run_rows_reads_what_sqlalchemy_reads(demo_store):
    """run_rows (plain SQL) decodes datetimes and JSON itself: the same values the ORM's types give,
    on SQLite's own driver and through SQLAlchemy text() (the route other backends take)."""
    from sqlalchemy import select

    from rltui.store.models import Run
    from rltui.store.runs_table import RUN_ROW_KEYS, run_rows
    from rltui.store.sql import AlchemyDatabase

    with demo_store.read() as session:
        expected = [{key: getattr(run, {"env": "env_id", "algo": "algo_id"}.get(key, key)) for key in RUN_ROW_KEYS}
                    for run in session.scalars(select(Run).order_by(Run.id.desc()))]
    with demo_store.sql.read() as tx:
        got = run_rows(tx)
        pages = run_rows(tx, limit=3) + run_rows(tx, limit=1000, before_id=run_rows(tx, limit=3)[-1]["id"])
    with AlchemyDatabase(demo_store.engine).read() as tx:
        assert run_rows(tx) == got
    for row in expected:
        row["summary"], row["tags"] = row["summary"] or {}, row["tags"] or []
    assert got == expected and len(got) > 3
    assert any(r["started_at"] is not None for r in got) and any(r["summary"] for r in got)
    assert pages == got
