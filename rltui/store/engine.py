"""Opening the experiment store: where it lives, how SQLite is tuned, and schema upgrades.

A plain path means SQLite; anything with "://" is a SQLAlchemy URL (PostgreSQL for a shared store).
Opening upgrades the schema to head through Alembic, copying an existing SQLite file aside first.
A store stamped with a revision this code does not know (written by a newer rltui) is refused and
left byte-for-byte untouched: we look at it through a read-only connection before anything writes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from rltui.store.migrate import head_revision, known_revisions, upgrade_to_head

DB_ENV_VAR = "RLTUI_DB"


class StoreError(Exception):
    """A store that cannot be opened as asked; the message says why and what to do."""


def default_db_path() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "rltui" / "rltui.db"


def resolve_url(db: str | None = None) -> str:
    """--db beats $RLTUI_DB beats the default path. Returns a SQLAlchemy URL."""
    target = db or os.environ.get(DB_ENV_VAR) or str(default_db_path())
    if "://" in target:
        return target
    return f"sqlite:///{Path(target).expanduser().resolve()}"


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own handling defers it).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # Writers take the write lock up front: a deferred transaction that reads and then writes
        # gets SQLITE_BUSY at once instead of waiting for busy_timeout.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _read_sqlite_revision(path: Path) -> str | None:
    """The alembic revision stamped in an existing SQLite file, read without writing to it."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        has_table = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).fetchone()
        if not has_table:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not an rltui store ({exc})") from exc
    finally:
        conn.close()


@dataclass
class Store:
    """An open store: an engine plus sessions for reading and for writing."""

    url: str
    engine: Engine

    def __post_init__(self) -> None:
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )

    @property
    def path(self) -> Path | None:
        return sqlite_path(self.url)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A short read transaction; let go quickly so WAL checkpoints are not starved."""
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction that holds the write lock from its first statement; commits on exit."""
        with self._write() as session, session.begin():
            yield session

    def write_connection(self):  # noqa: ANN201
        """A Core connection whose transactions begin IMMEDIATE (for the recorder's bulk inserts)."""
        return self.engine.execution_options(sqlite_begin="IMMEDIATE").connect()

    def dispose(self) -> None:
        self.engine.dispose()


def create_store_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15})
        _tune_sqlite(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def open_store(db: str | None = None, *, upgrade: bool = True) -> Store:
    """Open (creating if needed) the store at `db` and bring its schema to head."""
    url = resolve_url(db)
    path = sqlite_path(url)
    if path is not None:
        _prepare_sqlite_file(path, upgrade=upgrade)
    engine = create_store_engine(url)
    if path is None and upgrade:
        with engine.connect() as conn:
            from rltui.store.migrate import current_revision

            current = current_revision(conn)
        _refuse_unknown(url, current)
        if current != head_revision():
            upgrade_to_head(engine)
    return Store(url=url, engine=engine)


def _refuse_unknown(where: str, revision: str | None) -> None:
    if revision is not None and revision not in known_revisions():
        raise StoreError(
            f"{where}: this store's schema is at revision {revision!r}, which this rltui does not "
            f"know (it was written by a newer rltui). Upgrade rltui (this one knows up to "
            f"{head_revision()!r}); the store was left untouched."
        )


def _prepare_sqlite_file(path: Path, *, upgrade: bool) -> None:
    if path.exists():
        revision = _read_sqlite_revision(path)
        _refuse_unknown(str(path), revision)
        if not upgrade or revision == head_revision():
            return
        engine = create_store_engine(f"sqlite:///{path}")
        try:
            if revision is not None or _has_tables(path):
                backup = path.with_name(f"{path.name}.{revision or 'unversioned'}.{int(time.time())}.bak")
                # Fold the WAL into the main file first so the copy is complete on its own.
                with engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                shutil.copy2(path, backup)
            upgrade_to_head(engine)
        finally:
            engine.dispose()
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Create the file owner-only before SQLite touches it; experiment data is private by default.
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    if upgrade:
        engine = create_store_engine(f"sqlite:///{path}")
        try:
            upgrade_to_head(engine)
        finally:
            engine.dispose()


def _has_tables(path: Path) -> bool:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0] > 0
    finally:
        conn.close()
