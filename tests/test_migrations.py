"""The schema lives in migrations/: models agree with it, it goes up and down with data intact (on
SQLite and PostgreSQL), an old file is copied aside before an upgrade, a store from before rltui had
its own version table is moved over, and a newer or foreign file is refused untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from conftest import rltui_cli
from rltui.recorder import RecordPolicy, StepRecord, StoreRecorder
from rltui.store import StoreError, open_store
from rltui.store.engine import create_store_engine
from rltui.store.migrate import (
    LEGACY_REVISIONS,
    SCHEMA_HEAD,
    VERSION_TABLE,
    current_revision,
    downgrade,
    head_revision,
    known_revisions,
    upgrade,
)
from rltui.store.models import Base
from test_store import any_store, make_run  # noqa: F401 — any_store: the fixture

TABLES = {"runs", "metrics", "episodes", "steps", "artifacts"}


def schema_diff(engine) -> list:  # noqa: ANN001
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        return compare_metadata(ctx, Base.metadata)


def revision_of(path: Path) -> str | None:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()[0]
    finally:
        conn.close()


def engine_revision(engine) -> str | None:  # noqa: ANN001
    with engine.connect() as conn:
        return current_revision(conn)


def populate(store) -> int:  # noqa: ANN001
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id, policy=RecordPolicy(every=1, last=0))
    for step in range(50):
        rec.log(step, loss=1.0 / (step + 1), epsilon=0.5)
    rec.log(50, loss=float("nan"))  # diverged: stored as NULL, read back as NaN
    for i in range(3):
        steps = [StepRecord(t, t, t % 2, -1.0, t == 3, {"Q": np.array([0.5, -0.5]), "V": 0.25}) for t in range(4)]
        rec.episode(i, -4.0, 4, steps=steps, step=4 * (i + 1))
    rec.episode(3, float("nan"), 1, steps=[StepRecord(0, 0, 1, -1.0, True)], step=17)  # a NaN return
    rec.episode(4, -1.0, 2, steps=[StepRecord(0, 0, 1, float("inf"), False), StepRecord(1, 1, 0, -1.0, True)], step=19)
    rec.artifact("V", np.arange(3.0), step=0)
    rec.summary(best_return=-4.0)
    rec.close()
    return run_id


def snapshot(engine) -> dict[str, list[dict]]:  # noqa: ANN001
    """Every row of every table, in a stable order."""
    with engine.connect() as conn:
        return {
            t: sorted((dict(r._mapping) for r in conn.execute(text(f"SELECT * FROM {t}"))), key=lambda r: r["id"])
            for t in sorted(TABLES)
        }


def file_snapshot(path: Path) -> dict[str, list[dict]]:
    engine = create_store_engine(f"sqlite:///{path}")
    try:
        return snapshot(engine)
    finally:
        engine.dispose()


def with_columns_of(rows: dict[str, list[dict]], older: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """`rows` cut to the columns `older`'s rows have: what an upgrade must bring through (later
    revisions add columns, NULL on every old row)."""
    return {t: [{k: r[k] for k in older[t][0]} for r in rows[t]] if older[t] else rows[t] for t in rows}


def without_nulls_older_revisions_cannot_hold(rows: dict[str, list[dict]], target: str) -> dict[str, list[dict]]:
    """What a downgrade to `target` keeps: before 0003 no NULL metric, before 0007 no NULL return or
    reward (and no steps of an episode that goes)."""
    out = dict(rows)
    if target < "0003":
        out["metrics"] = [r for r in rows["metrics"] if r["value"] is not None]
    if target < "0007":
        gone = {e["id"] for e in rows["episodes"] if e["return"] is None}
        out["episodes"] = [e for e in rows["episodes"] if e["id"] not in gone]
        out["steps"] = [r for r in rows["steps"] if r["reward"] is not None and r["episode_id"] not in gone]
    return out


def test_models_and_migrations_agree(any_store):
    assert schema_diff(any_store.engine) == []
    assert SCHEMA_HEAD == head_revision()  # the constant that spares alembic imports on open
    assert engine_revision(any_store.engine) == head_revision()
    assert LEGACY_REVISIONS <= known_revisions()


def test_up_and_down_on_an_empty_store(any_store):
    engine = any_store.engine
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) == {VERSION_TABLE}
    upgrade(engine, "head")
    assert TABLES <= set(inspect(engine).get_table_names())
    assert schema_diff(engine) == []


def test_up_and_down_on_a_populated_store_keeps_the_data(any_store):
    store, engine = any_store, any_store.engine
    run_id = populate(store)
    before = snapshot(engine)
    assert [r["step"] for r in before["metrics"] if r["value"] is None] == [50]  # the NaN point
    assert [e["index"] for e in before["episodes"] if e["return"] is None] == [3]
    assert sum(r["reward"] is None for r in before["steps"]) == 1  # the inf reward
    for target in sorted(known_revisions())[:-1]:  # down to each older revision and back up
        downgrade(engine, target)
        assert engine_revision(engine) == target
        upgrade(engine, "head")
        after = snapshot(engine)
        assert after == without_nulls_older_revisions_cannot_hold(before, target)
        before = after
    assert schema_diff(engine) == []
    if store.is_sqlite:  # foreign keys are back on and the cascade still works after the table rebuilds
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    downgrade(engine, "base")
    upgrade(engine, "head")
    assert snapshot(engine) == {t: [] for t in sorted(TABLES)}
    assert run_id == 1


def test_an_old_store_is_copied_aside_then_upgraded(db_path):
    store = open_store(str(db_path))
    populate(store)
    downgrade(store.engine, "0001")
    store.dispose()
    old = file_snapshot(db_path)
    assert revision_of(db_path) == "0001"

    store = open_store(str(db_path))  # opening upgrades, after a backup
    try:
        assert revision_of(db_path) == head_revision()
        backups = sorted(db_path.parent.glob(f"{db_path.name}.0001.*.bak"))
        assert len(backups) == 1 and store.backup == backups[0]
        assert revision_of(backups[0]) == "0001"
        assert file_snapshot(backups[0]) == old  # a complete copy on its own (no -wal next to it)
        # the data came through the upgrade (the columns later revisions add aside)
        assert with_columns_of(file_snapshot(db_path), old) == old
        assert oct(backups[0].stat().st_mode & 0o777) == oct(0o600)
    finally:
        store.dispose()
    open_store(str(db_path)).dispose()  # already at head: no second backup
    assert len(list(db_path.parent.glob("*.bak"))) == 1


def _file_state(path: Path) -> tuple[bytes, bool, bool]:
    return path.read_bytes(), path.with_name(path.name + "-wal").exists(), path.with_name(path.name + "-shm").exists()


def _stamp(path: Path, revision: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"UPDATE {VERSION_TABLE} SET version_num = ?", (revision,))
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


def as_an_old_rltui_left_it(conn) -> None:  # noqa: ANN001
    """The revision in Alembic's default table, as every rltui before rltui_alembic_version kept it
    (the DDL is Alembic's own for its version table)."""
    (revision,) = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).one()
    conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                      "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"))
    conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:r)"), {"r": revision})
    conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))


def test_a_store_from_before_rltuis_own_version_table_is_moved_over(store_url):
    """A store built at 0003 the old way (its revision in alembic_version) opens, is backed up (a
    SQLite file), upgraded to head, and keeps its revision in rltui_alembic_version from then on."""
    store = open_store(store_url)
    populate(store)
    downgrade(store.engine, "0003")
    with store.engine.begin() as conn:
        as_an_old_rltui_left_it(conn)
    old = without_nulls_older_revisions_cannot_hold(snapshot(store.engine), "0003")
    store.dispose()

    store = open_store(store_url)
    try:
        tables = set(inspect(store.engine).get_table_names())
        assert VERSION_TABLE in tables and "alembic_version" not in tables
        assert engine_revision(store.engine) == head_revision()
        assert with_columns_of(snapshot(store.engine), old) == old
        assert schema_diff(store.engine) == []
        if store.is_sqlite:
            assert store.backup is not None and store.backup.name.startswith("store.db.0003.")
            assert file_snapshot(store.backup) == old
    finally:
        store.dispose()


def test_the_old_layout_is_reported_and_upgraded_by_the_cli(db_path):
    store = open_store(str(db_path))
    downgrade(store.engine, "0003")
    with store.engine.begin() as conn:
        as_an_old_rltui_left_it(conn)
    store.dispose()
    before = db_path.read_bytes()
    proc = rltui_cli("db", "current", db=db_path, check=True)
    assert "revision 0003" in proc.stdout and "rltui db upgrade" in proc.stdout
    assert db_path.read_bytes() == before
    proc = rltui_cli("db", "upgrade", db=db_path, check=True)
    assert f"upgraded to {head_revision()}" in proc.stdout
    assert revision_of(db_path) == head_revision()
