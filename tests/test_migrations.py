"""The schema lives in migrations/: models agree with it, it goes up and down with data intact, an
old file is copied aside before an upgrade, and a newer or foreign file is refused untouched."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from conftest import rltui_cli
from rltui.recorder import RecordPolicy, StepRecord, StoreRecorder
from rltui.store import StoreError, open_store
from rltui.store.engine import create_store_engine
from rltui.store.migrate import SCHEMA_HEAD, downgrade, head_revision, known_revisions, upgrade
from rltui.store.models import Base
from test_store import make_run

TABLES = {"runs", "metrics", "episodes", "steps", "artifacts"}


def schema_diff(engine) -> list:  # noqa: ANN001
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, Base.metadata)


def revision_of(path: Path) -> str | None:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    finally:
        conn.close()


def populate(store) -> int:  # noqa: ANN001
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, policy=RecordPolicy(every=1, last=0))
    for step in range(50):
        rec.log(step, loss=1.0 / (step + 1), epsilon=0.5)
    rec.log(50, loss=float("nan"))  # diverged: stored as NULL, read back as NaN
    for i in range(3):
        steps = [StepRecord(t, t, t % 2, -1.0, t == 3, {"Q": np.array([0.5, -0.5]), "V": 0.25}) for t in range(4)]
        rec.episode(i, -4.0, 4, steps=steps, step=4 * (i + 1))
    rec.artifact("V", np.arange(3.0), step=0)
    rec.summary(best_return=-4.0)
    rec.close()
    return run_id


def snapshot(path: Path, columns_of: Path | None = None) -> dict[str, list]:
    """Every row of every table, in a stable order (NaN-free data only); with `columns_of`, only the
    columns that store's tables have (an upgrade adds columns: the old ones must come through)."""
    conn = sqlite3.connect(path)
    try:
        out = {}
        for t in sorted(TABLES):
            columns = "*"
            if columns_of is not None:
                with sqlite3.connect(columns_of) as old:
                    columns = ", ".join(f'"{row[1]}"' for row in old.execute(f"PRAGMA table_info({t})"))
            out[t] = sorted(conn.execute(f"SELECT {columns} FROM {t}").fetchall(), key=repr)
        return out
    finally:
        conn.close()


def test_models_and_migrations_agree(store):
    assert schema_diff(store.engine) == []
    assert SCHEMA_HEAD == head_revision()  # the constant that spares alembic imports on open
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head_revision()


def test_up_and_down_on_an_empty_store(store):
    downgrade(store.engine, "base")
    assert set(inspect(store.engine).get_table_names()) == {"alembic_version"}
    upgrade(store.engine, "head")
    assert TABLES <= set(inspect(store.engine).get_table_names())
    assert schema_diff(store.engine) == []


def test_up_and_down_on_a_populated_store_keeps_the_data(store, db_path):
    run_id = populate(store)
    before = snapshot(db_path)
    nan_rows = [r for r in before["metrics"] if r[4] is None]
    assert len(nan_rows) == 1  # the NaN point
    for target in sorted(known_revisions())[:-1]:  # down to each older revision and back up
        downgrade(store.engine, target)
        assert revision_of(db_path) == target
        upgrade(store.engine, "head")
        after = snapshot(db_path)
        if target < "0003":  # revisions before 0003 cannot hold NaN points: those alone are dropped
            expected = {**before, "metrics": [r for r in before["metrics"] if r[4] is not None]}
        else:
            expected = before
        assert after == expected
        before = after
    assert schema_diff(store.engine) == []
    # foreign keys are back on and the cascade still works after the table rebuilds
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    downgrade(store.engine, "base")
    upgrade(store.engine, "head")
    assert snapshot(db_path) == {t: [] for t in sorted(TABLES)}
    assert run_id == 1


def test_an_old_store_is_copied_aside_then_upgraded(db_path):
    store = open_store(str(db_path))
    populate(store)
    downgrade(store.engine, "0001")
    store.dispose()
    old = snapshot(db_path)
    assert revision_of(db_path) == "0001"

    store = open_store(str(db_path))  # opening upgrades, after a backup
    try:
        assert revision_of(db_path) == head_revision()
        backups = sorted(db_path.parent.glob(f"{db_path.name}.0001.*.bak"))
        assert len(backups) == 1 and store.backup == backups[0]
        assert revision_of(backups[0]) == "0001"
        assert snapshot(backups[0]) == old  # a complete copy on its own (no -wal next to it)
        assert snapshot(db_path, columns_of=backups[0]) == old  # the data came through the upgrade
        assert oct(backups[0].stat().st_mode & 0o777) == oct(0o600)
    finally:
        store.dispose()
    open_store(str(db_path)).dispose()  # already at head: no second backup
    assert len(list(db_path.parent.glob("*.bak"))) == 1


def _file_state(path: Path) -> tuple[bytes, bool, bool]:
    return path.read_bytes(), path.with_name(path.name + "-wal").exists(), path.with_name(path.name + "-shm").exists()


def _stamp(path: Path, revision: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.commit()
    conn.close()


def test_a_store_from_a_newer_rltui_is_refused_and_left_untouched(db_path):
    store = open_store(str(db_path))
    populate(store)
    store.dispose()
    _stamp(db_path, "0999_from_the_future")
    before = _file_state(db_path)
    assert before[1:] == (False, False)  # closed cleanly: no -wal/-shm

    with pytest.raises(StoreError) as err:
        open_store(str(db_path))
    msg = str(err.value)
    assert str(db_path) in msg and "0999_from_the_future" in msg and "newer rltui" in msg
    assert "Upgrade rltui" in msg
    assert _file_state(db_path) == before

    for args in (("ls",), ("db", "upgrade")):
        proc = rltui_cli(*args, db=db_path)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "0999_from_the_future" in proc.stderr and "Traceback" not in proc.stderr
        assert _file_state(db_path) == before
    assert not list(db_path.parent.glob("*.bak"))


def test_files_that_are_not_rltui_stores_get_a_clear_message(tmp_path):
    junk = tmp_path / "notes.db"
    junk.write_text("these are my notes, not a database\n" * 200)
    proc = rltui_cli("ls", db=junk)
    assert proc.returncode == 2
    assert "is not an rltui store" in proc.stderr and str(junk) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert junk.read_text().startswith("these are my notes")

    foreign = tmp_path / "other.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = foreign.read_bytes()
    with pytest.raises(StoreError, match="not an rltui store"):
        open_store(str(foreign))
    assert foreign.read_bytes() == before

    with pytest.raises(StoreError, match="is a directory"):
        open_store(str(tmp_path))


def test_db_commands_through_the_cli(tmp_path):
    db = tmp_path / "cli.db"
    proc = rltui_cli("db", "current", db=db)
    assert proc.returncode == 0 and "no store yet" in proc.stdout
    assert not db.exists()

    proc = rltui_cli("db", "upgrade", db=db, check=True)
    assert f"revision {head_revision()} (head)" in proc.stdout
    assert revision_of(db) == head_revision()

    # an old store: `current` reports it and changes nothing, `upgrade` backs it up and upgrades
    engine = create_store_engine(f"sqlite:///{db}")
    downgrade(engine, "0001")
    engine.dispose()
    before = db.read_bytes()
    proc = rltui_cli("db", "current", db=db, check=True)
    assert "revision 0001" in proc.stdout and "rltui db upgrade" in proc.stdout
    assert db.read_bytes() == before and not list(tmp_path.glob("*.bak"))
    proc = rltui_cli("db", "history", db=db, check=True)
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(known_revisions())
    assert lines[0].startswith("0001") and lines[0].endswith("(current)")
    assert lines[-1].endswith("(head)")
    proc = rltui_cli("db", "upgrade", db=db, check=True)
    assert f"upgraded to {head_revision()}" in proc.stdout and ".bak" in proc.stdout
    assert revision_of(db) == head_revision()
    assert len(list(tmp_path.glob("cli.db.0001.*.bak"))) == 1


def test_nan_metrics_round_trip(store):
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id)
    rec.log(0, loss=1.0)
    rec.log(1, loss=float("nan"), q=float("inf"))
    rec.close()
    from rltui.store.queries import metric_series

    with store.read() as s:
        values = [v for _, v, _ in metric_series(s, run_id, "loss")]
        assert values[0] == 1.0 and (values[1] is None or math.isnan(values[1]))
        assert metric_series(s, run_id, "q")[0][1] == math.inf
