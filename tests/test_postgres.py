"""A shared PostgreSQL store, on the real server tests/pgserver.py starts: concurrent first opens,
another Alembic app (an Optuna storage) on the same database, and a password that is never shown."""

from __future__ import annotations

import multiprocessing as mp

import optuna
import pytest
from sqlalchemy import create_engine, inspect, text

from conftest import rltui_cli
from pgserver import PASSWORD
from rltui.recorder import StoreRecorder
from rltui.store import StoreError, open_store
from rltui.store.migrate import VERSION_TABLE, current_revision, head_revision
from rltui.store.queries import metric_series
from test_concurrency import _open
from test_store import make_run


def rltui_at(monkeypatch, url: str, *args: str):  # noqa: ANN001, ANN201
    """The real command line on the store at `url`, given through $RLTUI_DB (never on a command line)."""
    monkeypatch.setenv("RLTUI_DB", url)
    return rltui_cli(*args)


def rltui_here(monkeypatch, capsys, url: str, *args: str) -> tuple[int, str]:  # noqa: ANN001
    """The same command line in this process (no interpreter start-up): exit status, stdout + stderr."""
    from rltui.cli import main

    monkeypatch.setenv("RLTUI_DB", url)
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_processes_opening_a_new_store_at_once_create_it_once(pg_url):
    """Two processes open the same empty database at the same moment: the advisory lock lets one
    create the schema while the other waits, then finds it at head."""
    ctx = mp.get_context("spawn")  # the URL travels through a pipe, never a command line
    barrier, errors = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(pg_url, barrier, errors)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, "\n".join(problems)
    assert [p.exitcode for p in procs] == [0, 0]
    store = open_store(pg_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [(head_revision(),)]
    finally:
        store.dispose()


def _optuna_storage(url: str) -> optuna.storages.RDBStorage:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.storages.RDBStorage(url)


def test_an_optuna_storage_on_the_same_database_leaves_both_intact(pg_url):
    store = open_store(pg_url)
    run_id = make_run(store)
    rec = StoreRecorder(store, run_id)
    rec.log(0, loss=0.5)
    rec.close()
    store.dispose()

    # Optuna keeps its own revision in Alembic's default table, alembic_version.
    storage = _optuna_storage(pg_url)
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    storage.engine.dispose()
    assert {"alembic_version", VERSION_TABLE, "studies", "runs"} <= tables(pg_url)

    store = open_store(pg_url)  # neither "written by a newer rltui" nor upgraded over Optuna's row
    try:
        with store.engine.connect() as conn:
            assert current_revision(conn) == head_revision()
        with store.read() as s:
            assert [v for _, v, _ in metric_series(s, run_id, "loss")] == [0.5]
        rec = StoreRecorder(store, make_run(store))
        rec.log(1, loss=0.25)
        rec.close()
    finally:
        store.dispose()
    storage = _optuna_storage(pg_url)  # Optuna checks its own schema revision here
    try:
        assert len(optuna.load_study(study_name="s", storage=storage).trials) == 2
    finally:
        storage.engine.dispose()


def test_a_database_holding_something_else_is_not_an_rltui_store(pg_url, monkeypatch, capsys):
    storage = _optuna_storage(pg_url)
    optuna.create_study(storage=storage, study_name="theirs")
    storage.engine.dispose()
    before = tables(pg_url)
    with pytest.raises(StoreError) as err:
        open_store(pg_url)
    msg = str(err.value)
    assert "is not an rltui store" in msg and "newer rltui" not in msg and PASSWORD not in msg
    assert tables(pg_url) == before

    code, out = rltui_here(monkeypatch, capsys, pg_url, "ls")
    assert code == 2 and "is not an rltui store" in out and tables(pg_url) == before


def test_the_password_is_never_shown(pg_url, pg_server, monkeypatch, capsys):
    """Not by `rltui db ...`, `ls`, `show` or `export`, nor in an error, nor in repr(Store)."""
    for args in (("db", "current"), ("show", "99")):  # two through a real child process
        proc = rltui_at(monkeypatch, pg_url, *args)
        assert PASSWORD not in proc.stdout + proc.stderr, args
        assert (proc.returncode, args[0] == "show" or f"rltui:***@127.0.0.1:{pg_server.port}" in proc.stdout) == (
            2 if args[0] == "show" else 0, True)
    assert "no run with id 99" in proc.stderr
    outputs = [(args, *rltui_here(monkeypatch, capsys, pg_url, *args)) for args in (
        ("db", "upgrade"), ("db", "history"), ("ls",), ("show", "99", "--json"), ("export", "99"))]
    assert [code for _, code, _ in outputs] == [0, 0, 0, 2, 2]
    for args, _, out in outputs:
        assert PASSWORD not in out, args

    store = open_store(pg_url)
    try:
        assert PASSWORD not in repr(store) and PASSWORD not in store.where
    finally:
        store.dispose()
    with pytest.raises(StoreError) as err:  # a URL that does not parse
        open_store(pg_url.replace(f":{pg_server.port}/", ":port/"))
    assert PASSWORD not in str(err.value) and "neither a file path nor a database URL" in str(err.value)
    # A server that refuses us, and one that is not there: errors name the store, not the password.
    wrong = pg_url.replace(PASSWORD, PASSWORD + "x")
    unreachable = pg_url.replace(f":{pg_server.port}/", ":1/")
    for url in (wrong, unreachable):
        for args in (("db", "current"), ("ls",)):
            code, out = rltui_here(monkeypatch, capsys, url, *args)
            assert code == 2 and "cannot connect" in out and "Traceback" not in out, (args, out)
            assert PASSWORD not in out
