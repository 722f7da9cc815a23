"""The lean start-up path of a run (issue #3: a tabular run's first metric within 0.5 s of launch).

A worker on a SQLite store at head runs a tabular run through plain sqlite3 (Store.sql): it must not
import SQLAlchemy, Alembic, torch or gymnasium, nor build the pydantic schemas of families it does
not need. `rltui run --detach` likewise. These run real processes on real stores and look at what
they imported; bench/bench_launch.py measures the time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rltui import registry
from rltui.config import load_config_text
from rltui.runner.execute import create_run, execute_run, run_status
from rltui.store import open_store
from rltui.store.sql import AlchemyDatabase

HEAVY = ("sqlalchemy", "alembic", "torch", "gymnasium")
OTHER_FAMILIES = ("rltui.schemas.control", "rltui.schemas.lm", "rltui.schemas.diagnostics")
MAZE_RUN = 'seed = 0\n[env]\nid = "maze"\n[algo]\nid = "q_learning"\nepisodes = 30\n'

REPORT_MODULES = """
import json, sys
report = {{"heavy": sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})),
          "families": sorted(m for m in sys.modules if m.startswith("rltui.schemas."))}}
open({out!r}, "w").write(json.dumps(report))
"""


def _imported(code: str, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_a_worker_runs_a_tabular_run_without_heavy_imports(tmp_path):
    db = tmp_path / "store.db"
    store = open_store(str(db))
    try:
        run_id = create_run(store, load_config_text(MAZE_RUN))
        out = tmp_path / "modules.json"
        code = (f"from rltui.runner import worker\nassert worker.main(['--db', {str(db)!r}]) == 0\n"
                + REPORT_MODULES.format(heavy=HEAVY, out=str(out)))
        report = _imported(code, out)
        assert run_status(store, run_id) == "completed"  # the worker really ran it, to the end
        with store.sql.read() as tx:
            assert tx.scalar("SELECT count(*) FROM metrics WHERE run_id = :id", id=run_id) > 0
        assert report["heavy"] == [], f"a tabular worker imported {report['heavy']}"
        assert report["families"] == ["rltui.schemas.tabular"]
    finally:
        store.dispose()


def test_cli_run_detach_queues_without_heavy_imports(tmp_path):
    db = tmp_path / "store.db"
    open_store(str(db)).dispose()  # at head: nothing to migrate
    config = tmp_path / "maze.toml"
    config.write_text(MAZE_RUN)
    out = tmp_path / "modules.json"
    code = (f"from rltui import cli\nassert cli.main(['--db', {str(db)!r}, 'run', {str(config)!r}, '--detach', '--json']) == 0\n"
            + REPORT_MODULES.format(heavy=HEAVY + ("numpy",), out=str(out)))
    report = _imported(code, out)
    store = open_store(str(db))
    try:
        deadline = time.monotonic() + 60
        while run_status(store, 1) != "completed":  # the detached worker finishes it
            assert time.monotonic() < deadline, run_status(store, 1)
            time.sleep(0.05)
    finally:
        store.dispose()
    assert report["heavy"] == [], f"`rltui run --detach` imported {report['heavy']}"
    assert report["families"] == ["rltui.schemas.tabular"]


def test_the_family_hint_matches_what_the_families_declare():
    declared = {}
    for family in registry._FAMILIES:
        envs, algos = registry._family(family)
        declared.update({spec_id: family for spec_id in [*envs, *algos]})
    assert registry._FAMILY_OF == declared


def test_an_id_the_hint_does_not_know_is_still_found(monkeypatch):
    monkeypatch.setattr(registry, "_FAMILY_OF", {})
    assert registry.algo_spec("q_learning").id == "q_learning"
    assert registry.find_env("no-such-env") is None
    with pytest.raises(KeyError):
        registry.env_spec("no-such-env")


def test_the_plain_sql_path_also_runs_through_sqlalchemy(store, monkeypatch):
    """What a PostgreSQL store does: every Store.sql statement through SQLAlchemy text(), the
    recorder through Core (here on SQLite, the same statements)."""
    monkeypatch.setattr(type(store), "is_sqlite", property(lambda self: False))
    store._sql = AlchemyDatabase(store.engine)
    run_id = create_run(store, load_config_text(MAZE_RUN))
    assert execute_run(store, run_id) == "completed"
    with store.sql.read() as tx:
        status, summary, versions = tx.first("SELECT status, summary, versions FROM runs WHERE id = :id", id=run_id)
        n_metrics = tx.scalar("SELECT count(*) FROM metrics WHERE run_id = :id", id=run_id)
    assert status == "completed" and n_metrics > 0
    assert json.loads(summary) if isinstance(summary, str) else summary
    assert "python" in (json.loads(versions) if isinstance(versions, str) else versions)


def _workers_of(db: Path) -> list[int]:
    """Live worker processes started for this store (by their command line)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"rltui.runner.worker" in cmdline and str(db).encode() in b" ".join(cmdline):
            pids.append(int(proc.name))
    return pids


def test_a_launch_that_fails_leaves_no_waiting_worker_behind(tmp_path):
    """`rltui run --detach` starts its worker before checking the config; a config refused at the
    door must not leave that worker waiting (nor queue anything)."""
    db = tmp_path / "store.db"
    open_store(str(db)).dispose()
    config = tmp_path / "maze.toml"
    config.write_text(MAZE_RUN.replace("episodes", "episdoes"))
    proc = subprocess.run([sys.executable, "-m", "rltui.cli", "--db", str(db), "run", str(config), "--detach"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "algo.episdoes: unknown key" in proc.stderr
    deadline = time.monotonic() + 10
    while _workers_of(db):
        assert time.monotonic() < deadline, "the early worker outlived its failed launch"
        time.sleep(0.05)
    store = open_store(str(db))
    try:
        with store.sql.read() as tx:
            assert tx.scalar("SELECT count(*) FROM runs") == 0
    finally:
        store.dispose()


def test_plain_sql_connections_are_pooled_not_leaked_per_thread(store):
    """The TUI queries from short-lived worker threads: each must not leave a connection open."""
    import os
    import threading

    def open_handles() -> int:
        return sum(1 for fd in Path("/proc/self/fd").iterdir() if os.path.realpath(fd) == str(store.path))

    def query() -> None:
        with store.sql.read() as tx:
            tx.scalar("SELECT count(*) FROM runs")

    for _ in range(30):
        thread = threading.Thread(target=query)
        thread.start()
        thread.join()
    assert 1 <= open_handles() <= 2  # one idle connection, not thirty
    with pytest.raises(ValueError):
        with store.sql.write() as tx:
            tx.run("UPDATE runs SET notes = 'x'")
            raise ValueError("rolled back")
    with store.sql.read() as tx:  # the connection went back to the pool clean
        assert tx.scalar("SELECT count(*) FROM runs WHERE notes = 'x'") == 0


@pytest.mark.parametrize("args", [["ls", "--json"], ["show", "1", "--json"], ["db", "current"]])
def test_ls_show_and_db_current_read_a_sqlite_store_without_sqlalchemy(tmp_path, args):
    """`rltui ls` runs in loops (a user watching, scripts): plain SQL, no ORM import, and the same
    run data the ORM's run_dict gives."""
    from rltui.store.models import Run
    from rltui.store.queries import run_dict

    db = tmp_path / "store.db"
    store = open_store(str(db))
    try:
        run_id = create_run(store, load_config_text(MAZE_RUN))
        assert execute_run(store, run_id) == "completed"
        with store.read() as session:
            expected = run_dict(session.get(Run, run_id))
    finally:
        store.dispose()
    out = tmp_path / "modules.json"
    code = ("import contextlib, io, json\nfrom rltui import cli\nbuf = io.StringIO()\n"
            f"with contextlib.redirect_stdout(buf):\n    assert cli.main(['--db', {str(db)!r}, *{args!r}]) == 0\n"
            f"open({str(tmp_path / 'stdout.txt')!r}, 'w').write(buf.getvalue())\n"
            + REPORT_MODULES.format(heavy=HEAVY, out=str(out)))
    report = _imported(code, out)
    assert report["heavy"] == [], f"`rltui {' '.join(args)}` imported {report['heavy']}"
    printed = (tmp_path / "stdout.txt").read_text()
    if args[0] == "ls":
        assert json.loads(printed) == [{**expected, "queue_position": None}]
    elif args[0] == "show":
        shown = json.loads(printed)
        assert {k: shown[k] for k in expected} == expected and shown["config"]["algo"]["id"] == "q_learning"
        assert {"states", "actions", "V", "Q", "policy"} <= set(shown["tabular"])  # the artifact, decoded
    else:
        from rltui.store.migrate import head_revision

        assert printed.strip() == f"{db}: revision {head_revision()} (head)"


def test_several_configs_are_submitted_by_one_command_and_a_bad_one_submits_none(tmp_path):
    from tests.conftest import rltui_cli

    db = tmp_path / "store.db"
    for i in range(3):
        (tmp_path / f"maze-{i}.toml").write_text(MAZE_RUN.replace("seed = 0", f'name = "maze-{i}"\nseed = {i}'))
    bad = tmp_path / "bad.toml"
    bad.write_text(MAZE_RUN.replace("episodes = 30", "episodes = -3"))
    refused = rltui_cli("run", str(tmp_path / "maze-0.toml"), str(bad), str(tmp_path / "maze-1.toml"), "--detach", db=db)
    assert refused.returncode == 2 and str(bad) in refused.stderr and "algo.episodes" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert rltui_cli("ls", "--json", db=db, check=True).stdout.strip() == "[]"  # nothing was submitted
    # A quoted glob is expanded in file-name order, one run each.
    submitted = json.loads(rltui_cli("run", str(tmp_path / "maze-*.toml"), "--detach", "--json", db=db, check=True).stdout)
    assert [r["id"] for r in submitted] == [1, 2, 3]
    store = open_store(str(db))
    try:
        deadline = time.monotonic() + 90
        while any(run_status(store, r["id"]) != "completed" for r in submitted):
            assert time.monotonic() < deadline, [run_status(store, r["id"]) for r in submitted]
            time.sleep(0.05)
        with store.sql.read() as tx:
            assert [n for (n,) in tx.all("SELECT name FROM runs ORDER BY id")] == ["maze-0", "maze-1", "maze-2"]
    finally:
        store.dispose()
    several = rltui_cli("run", str(tmp_path / "maze-0.toml"), str(tmp_path / "maze-1.toml"), db=db)
    assert several.returncode == 2 and "--detach" in several.stderr
