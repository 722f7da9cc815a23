"""Shared fixtures. Every test gets its own real SQLite store under tmp_path; none touches $HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/pgserver.py

from rltui.store import Store, open_store

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RUNS = REPO / "sample_runs"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    monkeypatch.delenv("RLTUI_DB", raising=False)


_PG = None


@pytest.fixture(scope="session")
def pg_server():
    """One real PostgreSQL cluster per test process (see tests/pgserver.py)."""
    global _PG
    from pgserver import ThrowawayPostgres

    if _PG is None:
        _PG = ThrowawayPostgres().start()
    return _PG


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """A fresh, empty PostgreSQL database for one test: its SQLAlchemy URL (with the password)."""
    name = "t_" + os.urandom(5).hex()
    return pg_server.create_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """The same test on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "store.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db_path) -> Store:
    s = open_store(str(db_path))
    yield s
    s.dispose()


def rltui_cli(*args: str, db: Path | None = None, check: bool = False, timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real `rltui` command line in a child process."""
    cmd = [sys.executable, "-m", "rltui.cli"]
    if db is not None:
        cmd += ["--db", str(db)]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd or REPO, env=os.environ.copy())
    if check and proc.returncode != 0:
        raise AssertionError(f"rltui {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def rltui_json(*args: str, db: Path | None = None):
    proc = rltui_cli(*args, "--json", db=db, check=True)
    return json.loads(proc.stdout)
