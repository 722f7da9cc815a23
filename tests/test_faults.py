"""Store faults end in one line, never a traceback, and lose nothing: a full disk (SQLite's
max_page_count), a read-only store (a read-only bind mount, `?mode=ro`), a damaged file, odd --db
values, a FIFO as a config path. Real SQLite files, the real CLI and real workers in subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, SAMPLE_RUNS, rltui_cli

MAZE = str(SAMPLE_RUNS / "maze_value_iteration.toml")
CLIFF = str(SAMPLE_RUNS / "cliff_q_learning.toml")


def _main(capsys, *args: str) -> subprocess.CompletedProcess:
    """The real CLI's main() in this process (a child process each costs seconds of imports)."""
    from rltui.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out.out, out.err)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The command failed with exit 2 and exactly one `rltui: ...` line, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rltui: "), proc.stderr
    return lines[0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _store_with_a_run(db: Path) -> None:
    """A store holding one completed value-iteration run, made through the runner's own path."""
    from rltui.config import load_config_file
    from rltui.runner.execute import create_run, execute_run
    from rltui.store import open_store

    store = open_store(str(db))
    try:
        assert execute_run(store, create_run(store, load_config_file(MAZE))) == "completed"
    finally:
        store.dispose()


def _wait_final(db: Path, run_id: int, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = json.loads(rltui_cli("show", str(run_id), "--json", db=db, check=True).stdout)
        if data["status"] not in ("queued", "running"):
            return data
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} still {data['status']}")


# --- disk full ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_disk_full_ends_the_run_failed_in_one_line_and_readers_still_read(db_path, monkeypatch):
    rltui_cli("ls", db=db_path, check=True)  # an empty store at head (~15 pages)
    pages = sqlite3.connect(db_path).execute("PRAGMA page_count").fetchone()[0]
    # A real "database or disk is full" from SQLite once the file would pass 15 more pages.
    monkeypatch.setenv("RLTUI_SQLITE_MAX_PAGE_COUNT", str(pages + 15))
    out = rltui_cli("run", CLIFF, "--detach", "--json", db=db_path, check=True)
    run_id = json.loads(out.stdout)["id"]
    log = Path(json.loads(out.stdout)["log_path"])
    monkeypatch.delenv("RLTUI_SQLITE_MAX_PAGE_COUNT")

    data = _wait_final(db_path, run_id)
    assert data["status"] == "failed"
    assert "disk full" in data["error"] and str(db_path) in data["error"], data["error"]
    text = log.read_text()
    said = [line for line in text.splitlines() if "disk full" in line]
    assert said and str(db_path) in said[0] and said[0].startswith(f"rltui: run {run_id}: "), text
    # What was stored before is intact, and every reader prints, no traceback.
    assert sqlite3.connect(db_path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    ls = rltui_cli("ls", db=db_path, check=True)
    assert "failed" in ls.stdout and "Traceback" not in ls.stderr
    show = rltui_cli("show", str(run_id), db=db_path, check=True)
    assert "disk full" in show.stdout
    rltui_cli("export", str(run_id), db=db_path, check=True)


def test_disk_full_in_the_foreground_prints_the_failure_not_a_traceback(db_path, monkeypatch):
    rltui_cli("ls", db=db_path, check=True)
    pages = sqlite3.connect(db_path).execute("PRAGMA page_count").fetchone()[0]
    monkeypatch.setenv("RLTUI_SQLITE_MAX_PAGE_COUNT", str(pages + 15))
    proc = rltui_cli("run", CLIFF, db=db_path)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "failed" in proc.stdout and f"{db_path}: disk full" in proc.stdout


# --- read-only ------------------------------------------------------------------------------------
def _read_only_mount_works(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    proc = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro {probe} {probe} && touch {probe}/x"],
                          capture_output=True, text=True)
    return proc.returncode != 0 and "Read-only file system" in proc.stderr


def _cli_on_read_only_folder(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`rltui ARGS` in a private mount namespace where `folder` is a read-only bind mount: a real
    read-only filesystem (EROFS), which binds root too (chmod would not: root ignores permissions)."""
    cmd = " ".join(["exec", sys.executable, "-m", "rltui.cli", *(f"'{a}'" for a in args)])
    return subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{folder}' '{folder}' && {cmd}"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


@pytest.mark.slow
def test_a_store_on_a_read_only_filesystem_reads_and_refuses_writes(tmp_path):
    if shutil.which("unshare") is None or not _read_only_mount_works(tmp_path):
        pytest.skip("no private mount namespace here (unshare -m, mount --bind -o ro) to make a read-only filesystem")
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "lab.db"
    _store_with_a_run(db)
    before, listing = _digest(db), sorted(os.listdir(folder))

    ls = _cli_on_read_only_folder(folder, "--db", str(db), "ls")
    assert ls.returncode == 0 and "maze value iteration" in ls.stdout, ls.stderr
    show = _cli_on_read_only_folder(folder, "--db", str(db), "show", "1", "--json")
    assert show.returncode == 0 and json.loads(show.stdout)["status"] == "completed", show.stderr
    export = _cli_on_read_only_folder(folder, "--db", str(db), "export", "1")
    assert export.returncode == 0 and json.loads(export.stdout)["run"]["id"] == 1, export.stderr
    for args in (["run", MAZE, "--detach"],):
        line = _one_line_error(_cli_on_read_only_folder(folder, "--db", str(db), *args))
        assert f"rltui: {db}: the store is read-only (it is on a read-only filesystem)" in line, line
    assert _digest(db) == before and sorted(os.listdir(folder)) == listing


def test_mode_ro_reads_and_refuses_writes_leaving_the_file_byte_identical(tmp_path, capsys):
    db = tmp_path / "lab.db"
    _store_with_a_run(db)
    before, listing = _digest(db), sorted(os.listdir(tmp_path))
    for target in (f"{db}?mode=ro", f"sqlite:///{db}?mode=ro", f"{db}?immutable=1"):
        ls = _main(capsys, "--db", target, "ls")
        assert ls.returncode == 0 and "maze value iteration" in ls.stdout, ls.stderr
        show = _main(capsys, "--db", target, "show", "1", "--json")
        assert show.returncode == 0 and json.loads(show.stdout)["status"] == "completed"
        line = _one_line_error(_main(capsys, "--db", target, "run", MAZE))
        assert f"{db}: the store is read-only (opened with ?" in line, line
    line = _one_line_error(_main(capsys, "--db", f"{db}?mode=ro", "cancel", "1"))
    assert "read-only" in line
    # A missing store is not created through a read-only URL.
    line = _one_line_error(_main(capsys, "--db", f"{tmp_path / 'new.db'}?mode=ro", "ls"))
    assert "no store there, and none can be created" in line
    assert _digest(db) == before and sorted(os.listdir(tmp_path)) == listing


# --- --db values that would be misread --------------------------------------------------------------
@pytest.mark.parametrize("target, words", [
    ("", "is empty"),
    ("sqlite://", "in-memory"),
    ("sqlite:///:memory:", "in-memory"),
    ("sqlite:///file::memory:?cache=shared", "in-memory"),
    ("{tmp}/x.db?cache=shared", "option cache='shared' is not understood"),
    ("sqlite:///{tmp}/x.db?timeout=5", "option timeout='5' is not understood"),
    ("~nosuchuser/x.db", "no such user for '~nosuchuser'"),
])
def test_db_values_that_would_be_misread_are_refused(tmp_path, capsys, target, words):
    target = target.format(tmp=tmp_path)
    line = _one_line_error(_main(capsys, "--db", target, "ls"))
    assert words in line, line
    assert not list(tmp_path.iterdir()), "nothing is created"


# --- a damaged store ------------------------------------------------------------------------------
def _damage_page_of(db: Path, table: str) -> None:
    """Random bytes over the first 64 bytes of `table`'s root page (its b-tree header)."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    conn.close()
    with open(db, "r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(os.urandom(64))


def test_a_damaged_store_is_named_by_every_command_and_db_check_reports_it(tmp_path, capsys):
    db = tmp_path / "lab.db"
    _store_with_a_run(db)
    healthy = _main(capsys, "--db", str(db), "db", "check")
    assert healthy.returncode == 0 and "ok" in healthy.stdout, healthy.stderr
    _damage_page_of(db, "runs")
    for args in (["ls"], ["show", "1"], ["export", "1"], ["db", "current"], ["run", MAZE], ["resume", "1"]):
        line = _one_line_error(_main(capsys, "--db", str(db), *args))
        assert f"{db}: the store is damaged" in line and "db check`" in line, (args, line)
    # Seen from a fresh process too (nothing cached in this one)
    line = _one_line_error(rltui_cli("ls", db=db))
    assert "db check`" in line
    check = rltui_cli("db", "check", db=db)
    assert check.returncode == 2 and f"{db}: damaged" in check.stderr, check.stderr
    assert "malformed" in check.stderr and "Traceback" not in check.stderr


async def test_the_lab_leaves_with_the_message_on_a_damaged_store(tmp_path):
    from rltui.store.faults import fault_message
    from rltui.tui.app import RlTuiApp

    db = tmp_path / "lab.db"
    _store_with_a_run(db)
    _damage_page_of(db, "runs")
    app = RlTuiApp(db=str(db))
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if app.store_error is not None:
                break
            await pilot.pause(0.05)
    assert app.store_error is not None and app.return_code == 2
    assert "db check`" in fault_message(app.store_error, db)


# --- not regular files ----------------------------------------------------------------------------
def test_a_fifo_a_device_or_a_folder_as_config_or_mdp_path_is_refused(tmp_path, capsys):
    fifo = tmp_path / "run.toml"
    os.mkfifo(fifo)  # reading it would block for ever: it must be refused before
    db = tmp_path / "lab.db"
    line = _one_line_error(rltui_cli("run", str(fifo), db=db, timeout=30))
    assert line == f"rltui: {fifo}: not a regular file (it is a FIFO); the config file must be a regular file"
    for path, kind in ((Path("/dev/null"), "a device"), (tmp_path, "a directory")):
        line = _one_line_error(_main(capsys, "--db", str(db), "mdp", str(path)))
        assert line == f"rltui: {path}: not a regular file (it is {kind}); the config file must be a regular file"
    custom = str(SAMPLE_RUNS / "custom_abc_value_iteration.toml")
    line = _one_line_error(_main(capsys, "mdp", custom, "--set", f"env.path={fifo}"))
    assert f"{fifo}: not a regular file (it is a FIFO); the MDP file must be a regular file" in line
    line = _one_line_error(_main(capsys, "mdp", custom, "--set", f"env.path={tmp_path}"))
    assert "not a regular file (it is a directory)" in line


def test_db_check_on_postgresql_reads_every_table_and_hides_the_password(pg_url, capsys):
    from sqlalchemy.engine import make_url

    proc = _main(capsys, "--db", pg_url, "db", "check")
    assert proc.returncode == 0, proc.stderr
    assert "ok (every table read found no problem)" in proc.stdout
    password = make_url(pg_url).password
    assert password and password not in proc.stdout + proc.stderr


async def test_the_lab_reads_a_read_only_store(tmp_path):
    from rltui.tui.app import RlTuiApp
    from test_tui_common import settle

    db = tmp_path / "lab.db"
    _store_with_a_run(db)
    before = _digest(db)
    app = RlTuiApp(db=f"{db}?mode=ro", poll_interval=0.1)
    async with app.run_test(size=(100, 24)) as pilot:
        for _ in range(5):  # first page, full load, and polls (liveness is not tried on it)
            await settle(pilot)
            await pilot.pause(0.15)
        assert app.store_error is None and app.store.read_only
        assert 1 in app.screen.rows and app.screen.rows[1]["status"] == "completed"
    assert _digest(db) == before and sorted(os.listdir(tmp_path)) == ["lab.db"]


async def test_edits_in_the_lab_on_a_read_only_store_each_say_so_in_one_toast(tmp_path):
    """Rename, tag, note, cancel and delete on a read-only store: a toast naming the store, no
    traceback, the lab stays open and the file is untouched."""
    from rltui.tui.app import RlTuiApp
    from test_tui_common import settle

    from rltui.config import load_config_file
    from rltui.runner import launch
    from rltui.store import open_store

    db = tmp_path / "lab.db"
    _store_with_a_run(db)
    store = open_store(str(db))
    queued = launch.submit(store, load_config_file(MAZE), start=False)  # something to cancel
    store.dispose()
    before = _digest(db)
    app = RlTuiApp(db=f"{db}?mode=ro", poll_interval=0.1)
    toasts: list[tuple[str, str]] = []
    async with app.run_test(size=(100, 24)) as pilot:
        shown = app.notify

        def spy(message, **kwargs):  # noqa: ANN001, ANN003 — the real toast, recorded
            toasts.append((str(message), kwargs.get("severity", "information")))
            return shown(message, **kwargs)

        app.notify = spy
        for _ in range(3):
            await settle(pilot)
        assert app.screen.cursor_id() == queued  # the newest run, on top
        for key, typed in (("r", "renamed"), ("t", "a,b"), ("N", "noted")):
            await pilot.press(key)
            await settle(pilot)
            await pilot.press(*typed, "enter")
            await settle(pilot, rounds=3)
        await pilot.press("k")  # cancel
        await settle(pilot, rounds=3)
        await pilot.press("d", "y")  # delete, and confirm
        await settle(pilot, rounds=3)
        assert app.is_running and app.screen.rows[queued]["status"] == "queued"
    errors = [message for message, severity in toasts if severity == "error"]
    assert len(errors) == 5, "\n".join(m[:50] + " " + s for m, s in toasts)
    for message, what in zip(errors, (f"run {queued}: name", "tags", "notes", f"run {queued}: cancel", "delete")):
        assert what in message and f"{db}: the store is read-only (opened with ?mode=ro)" in message, message
        assert "Traceback" not in message and "\n" not in message
    assert _digest(db) == before
