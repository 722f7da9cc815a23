"""Opening the experiment store: where it lives, how SQLite is tuned, and schema upgrades.

A plain path means SQLite; anything with "://" is a SQLAlchemy URL (PostgreSQL for a shared store).
Opening upgrades the schema to head through Alembic, copying an existing SQLite file aside first.
A store stamped with a revision this code does not know (written by a newer rltui) is refused and
left byte-for-byte untouched: we look at it through a read-only connection before anything writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl

from typing import TYPE_CHECKING, Any

from rltui.store import quiet
from rltui.store.faults import DAMAGED, READ_ONLY, StoreError, StoreFault, describe
from rltui.store.migrate import SCHEMA_HEAD, SchemaState, read_schema_state, upgrade_to_head
from rltui.store.sql import AlchemyDatabase, SQLiteDatabase, sqlite_uri, tune_sqlite_connection

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

# SQLAlchemy (and Alembic) are imported where an engine is made or a schema changes, not here: a
# worker or `rltui run --detach` on a SQLite store already at head never needs them (Store.sql).

DB_ENV_VAR = "RLTUI_DB"


__all__ = ["Store", "StoreError", "StoreFault", "open_store", "resolve_url"]

# The query options a SQLite store URL or path may carry; anything else would be silently ignored
# by the raw sqlite3 connections a worker uses, so it is refused.
SQLITE_OPTIONS = {"mode": ("ro", "rw", "rwc"), "immutable": ("1",)}


def default_db_path() -> Path:
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "rltui" / "rltui.db"


def resolve_url(db: str | None = None) -> str:
    """--db beats $RLTUI_DB beats the default path. Returns a SQLAlchemy URL.

    An empty --db, an in-memory SQLite URL, a `~user` that names nobody and query options the store
    would not honour are refused with StoreError; `?mode=ro` (or `?immutable=1`) after a path or a
    sqlite:// URL opens the store read-only.
    """
    if db is not None and not db.strip():
        raise StoreError(
            f"--db {db!r} is empty; give a SQLite file path or a database URL, or leave --db out for "
            f"$RLTUI_DB or the default {default_db_path()}"
        )
    target = db or os.environ.get(DB_ENV_VAR) or str(default_db_path())
    if "://" in target:
        if target.startswith("sqlite"):
            _check_sqlite_url(target)
        return target
    path_text, _, query = target.partition("?")
    try:
        path = Path(path_text).expanduser().resolve()
    except RuntimeError as exc:  # "~nosuchuser/x": no such user to expand
        raise StoreError(f"{target}: no such user for {path_text.split('/')[0]!r} (~NAME is that user's home folder)") from None
    url = f"sqlite:///{path}" + (f"?{query}" if query else "")
    if query:
        _check_sqlite_url(url)
    return url


def _check_sqlite_url(url: str) -> None:
    database, _, query = url.partition(":///")[2].partition("?") if ":///" in url else ("", "", "")
    if not database or database == ":memory:" or database.startswith("file::memory:") or \
            dict(parse_qsl(query)).get("mode") == "memory":
        raise StoreError(
            f"{url}: an in-memory SQLite database would vanish when this command ends, and workers "
            f"could not share it; give a file path (e.g. --db ~/experiments/lab.db)"
        )
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in SQLITE_OPTIONS or value not in SQLITE_OPTIONS[key]:
            allowed = ", ".join(f"{k}={v}" for k, vs in SQLITE_OPTIONS.items() for v in vs)
            raise StoreError(f"{url}: option {key}={value!r} is not understood for a SQLite store; allowed: {allowed}")


def sqlite_options(url: str) -> dict[str, str]:
    return dict(parse_qsl(url.partition("?")[2])) if url.startswith("sqlite") and "?" in url else {}


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):  # what resolve_url makes; no import needed
        database = url[len("sqlite:///"):].partition("?")[0]
        return None if not database or database == ":memory:" else Path(database)
    if url.startswith("sqlite:"):
        return None
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def read_only_reason(path: Path, options: dict[str, str] | None = None) -> str | None:
    """Why the SQLite store at `path` can only be read (None: it can be written).

    Writing needs the file writable and, for the -wal/-shm files beside it, its folder too (unless
    both already exist and are writable). A read-only filesystem fails these checks as well.
    """
    options = options or {}
    if options.get("mode") == "ro" or options.get("immutable") == "1":
        return "opened with ?" + ("mode=ro" if options.get("mode") == "ro" else "immutable=1")
    target = path if path.exists() else path.parent
    if target.exists() and _read_only_fs(target):
        return "it is on a read-only filesystem"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is not writable"
    folder = path.parent
    if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
        sides = [path.with_name(path.name + s) for s in ("-wal", "-shm")]
        if not (path.exists() and all(p.exists() and os.access(p, os.W_OK) for p in sides)):
            return f"its folder {folder} is not writable"
    return None


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


# Every engine this process made. A forked child must never use its parent's pooled connections
# (two processes sharing one SQLite file handle corrupts locks), so the child drops them at fork.
_ENGINES: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def _dispose_after_fork() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)  # forget the parent's connections without closing them


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_dispose_after_fork)


def _tune_sqlite(engine: Engine, read_only: bool = False) -> None:
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # noqa: ANN001
        # Let SQLAlchemy's "begin" event below issue BEGIN itself (pysqlite's own handling defers it).
        tune_sqlite_connection(dbapi_conn, read_only)

    @event.listens_for(engine, "begin")
    def _on_begin(conn):  # noqa: ANN001
        # Writers take the write lock up front: a deferred transaction that reads and then writes
        # gets SQLITE_BUSY at once instead of waiting for busy_timeout.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _connect_untouched(path: Path) -> sqlite3.Connection:
    """A read-only look at `path` that creates and changes nothing on disk (see sql.sqlite_uri)."""
    return sqlite3.connect(sqlite_uri(str(path), read_only=True), uri=True)


def _not_a_store(path: Path, exc: Exception) -> StoreError:
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF == 11:  # SQLITE_CORRUPT: a store, damaged
        return StoreFault(describe(DAMAGED, str(path), f" (SQLite says: {exc})"), DAMAGED)
    return StoreError(
        f"{path} is not an rltui store (SQLite says: {exc}). Point --db or $RLTUI_DB at an rltui "
        f"store, or at a new file name to create one."
    )


def _read_sqlite_state(path: Path) -> SchemaState:
    """The schema state of an existing SQLite file, read without touching it."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory; give --db a file path such as {path / 'rltui.db'}")
    try:
        conn = _connect_untouched(path)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the store ({exc}); check the path and its permissions") from exc
    try:
        return read_schema_state(
            (r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")),
            lambda table: [r[0] for r in conn.execute(f"SELECT version_num FROM {table}")],
        )
    except sqlite3.DatabaseError as exc:
        raise _not_a_store(path, exc) from exc
    finally:
        conn.close()


def display_url(url: str) -> str:
    """A store's URL as it may be shown: a SQLite file as its path, any other URL without its password."""
    try:
        path = sqlite_path(url)
        if path is not None:
            return str(path)
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 — not a URL we can parse: show its scheme alone, never the rest
        return url.split("://", 1)[0] + "://…"


def _scrub(text: str, url: str) -> str:
    """`text` (a driver's error message, say) with the URL's password masked, in case it quotes it."""
    from urllib.parse import quote, unquote

    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:  # noqa: BLE001
        return text
    if not password:
        return text
    for form in {str(password), quote(str(password), safe=""), unquote(str(password))}:
        text = text.replace(form, "***")
    return text


class Store:
    """An open store: plain SQL (`sql`), and an engine with sessions for reading and for writing.

    The engine (and with it SQLAlchemy) is made on first use: a worker's whole run on SQLite goes
    through `sql`, so it never pays for the ORM unless an algorithm asks for a session.
    """

    def __init__(self, url: str, engine: Engine | None = None, backup: Path | None = None) -> None:
        self.url = url
        self.backup = backup  # where opening copied an older-revision file aside, if it did
        path = self.path
        # Why this store can only be read (a read-only file, folder or filesystem, or ?mode=ro), or None.
        self.read_only = read_only_reason(path, sqlite_options(url)) if path is not None else None
        self._engine = engine
        self._sessions: tuple[Any, Any, Any] | None = None
        self._sql: SQLiteDatabase | AlchemyDatabase | None = None
        self._sql_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store(url={self.where!r})"

    @property
    def where(self) -> str:
        """The store as it may be shown to a user (never with the URL's password)."""
        return display_url(self.url)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = create_store_engine(self.url, read_only=bool(self.read_only))
        return self._engine

    def refuse_writes(self) -> None:
        if self.read_only:
            raise StoreFault(describe(READ_ONLY, self.where, f" ({self.read_only})"), READ_ONLY)

    @property
    def sql(self) -> SQLiteDatabase | AlchemyDatabase:
        """Plain statements: `with store.sql.write() as tx: tx.run("UPDATE ...", id=1)`."""
        if self._sql is None:
            with self._sql_lock:
                if self._sql is None:
                    path = self.path
                    self._sql = (SQLiteDatabase(str(path), read_only=self.read_only) if path is not None
                                 else AlchemyDatabase(self.engine))
        return self._sql

    def _sessionmakers(self) -> tuple[Any, Any, Any]:
        if self._sessions is None:
            from sqlalchemy.orm import sessionmaker

            immediate = self.engine.execution_options(sqlite_begin="IMMEDIATE")
            self._sessions = (
                immediate,
                sessionmaker(self.engine, expire_on_commit=False),
                sessionmaker(immediate, expire_on_commit=False),
            )
        return self._sessions

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def path(self) -> Path | None:
        return sqlite_path(self.url)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A short read transaction; let go quickly so WAL checkpoints are not starved."""
        with self._sessionmakers()[1]() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction that holds the write lock from its first statement; commits on exit.
        Someone waits for it (a cancel, a resume, a note): on SQLite the store's workers are asked to
        keep off meanwhile (store/quiet.py), so it does not wait its turn behind them."""
        self.refuse_writes()
        path = self.path
        with quiet.keep_off(path, quiet.PERSON) if path is not None else nullcontext(), \
                self._sessionmakers()[2]() as session, session.begin():
            yield session

    def write_connection(self):  # noqa: ANN201
        """A Core connection whose transactions begin IMMEDIATE (for the recorder's bulk inserts)."""
        self.refuse_writes()
        return self._sessionmakers()[0].connect()

    def dispose(self) -> None:
        if self._sql is not None:
            self._sql.close()
        if self._engine is not None:
            self._engine.dispose()


def create_store_engine(url: str, read_only: bool = False) -> Engine:
    from sqlalchemy import create_engine

    from rltui.store.sql import json_text

    # JSON columns written through the ORM or Core get the same text as Store.sql's: NaN as null.
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:  # options were checked by resolve_url; read-only connects as sql.sqlite_uri
            url = f"sqlite:///{sqlite_uri(str(path), True)}&uri=true" if read_only else f"sqlite:///{path}"
        engine = create_engine(url, connect_args={"timeout": 15}, json_serializer=json_text)
        _tune_sqlite(engine, read_only)
    else:
        engine = create_engine(url, pool_pre_ping=True, json_serializer=json_text)
    _ENGINES.add(engine)
    return engine


def open_store(db: str | None = None, *, upgrade: bool = True) -> Store:
    """Open (creating if needed) the store at `db` and bring its schema to head."""
    url = resolve_url(db)
    try:
        path = sqlite_path(url)
    except Exception as exc:  # a malformed URL
        raise StoreError(f"{display_url(url)!r} is neither a file path nor a database URL ({_scrub(str(exc), url)})") from exc
    backup = (_prepare_sqlite_file(path, upgrade=upgrade, read_only=read_only_reason(path, sqlite_options(url)))
              if path is not None else None)
    if path is not None:
        return Store(url=url, backup=backup)  # the engine comes when a session is first asked for
    where = display_url(url)
    try:
        engine = create_store_engine(url)
    except Exception as exc:  # a URL naming a driver that is not installed
        raise StoreError(f"{where}: cannot open the store ({_scrub(str(exc), url)})") from exc
    from rltui.store.migrate import schema_state

    try:
        with engine.connect() as conn:
            state = schema_state(conn)
    except Exception as exc:
        engine.dispose()
        raise StoreError(f"{where}: cannot connect ({_scrub(str(exc), url)})") from exc
    try:
        _refuse_foreign(where, state)
        if upgrade and state.needs_upgrade:
            upgrade_to_head(engine)
    except Exception:
        engine.dispose()
        raise
    return Store(url=url, engine=engine, backup=backup)


def _refuse_foreign(where: str, state: SchemaState) -> None:
    """Refuse a store written by a newer rltui, and a database that holds something else."""
    if state.revision is not None and state.revision != SCHEMA_HEAD:
        from rltui.store.migrate import head_revision, known_revisions

        if state.revision not in known_revisions():
            raise StoreError(
                f"{where}: this store's schema is at revision {state.revision!r}, which this rltui does "
                f"not know (it was written by a newer rltui). Upgrade rltui (this one knows revisions up "
                f"to {head_revision()!r}) or point --db at another store; the store was left untouched."
            )
    if state.revision is None and not state.empty:
        found = f"its alembic_version holds {state.foreign_revision!r}, another app's revision" if (
            state.foreign_revision) else "it has tables and no rltui schema revision"
        raise StoreError(
            f"{where} is not an rltui store ({found}). Point --db or $RLTUI_DB at an rltui store, or at "
            f"an empty database or a new file name to create one; nothing was changed."
        )


def backup_path(path: Path, revision: str | None) -> Path:
    return path.with_name(f"{path.name}.{revision or 'unversioned'}.{time.strftime('%Y%m%d-%H%M%S')}.bak")


def backup_sqlite(path: Path, revision: str | None) -> Path:
    """Copy the store aside (owner-only) before a schema change.

    SQLite's online backup copies a consistent snapshot, WAL content included, even while another
    process is writing, which a plain file copy would not.
    """
    first = backup_path(path, revision)
    for n in range(1000):  # O_EXCL: two processes upgrading at once never share a backup file
        target = first if n == 0 else first.with_name(f"{first.name[:-4]}-{n}.bak")
        try:
            fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        break
    else:
        raise StoreError(f"{path}: cannot find a free backup file name next to it")
    src = sqlite3.connect(path, timeout=15)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
        # The copy is a standalone snapshot: one file, no -wal beside it.
        dst.execute("PRAGMA journal_mode=DELETE")
    finally:
        dst.close()
        src.close()
    return target


def sqlite_revision(path: Path) -> str | None:
    """The schema revision of an existing SQLite store, read without touching the file."""
    return _read_sqlite_state(path).revision


def _prepare_sqlite_file(path: Path, *, upgrade: bool, read_only: str | None = None) -> Path | None:
    """Check, back up and upgrade an existing file, or create a new one; returns the backup path."""
    if read_only and not path.exists():
        raise StoreError(f"{path}: no store there, and none can be created ({read_only})")
    if path.exists():
        state = _read_sqlite_state(path)
        _refuse_foreign(str(path), state)
        if not upgrade or not state.needs_upgrade:
            return None
        if read_only:
            raise StoreError(
                f"{path}: this store's schema is at revision {state.revision or 'none'}, older than this rltui's "
                f"{SCHEMA_HEAD}, and it cannot be upgraded: it is read-only ({read_only}). Open it with a "
                f"writable copy, or with the rltui that wrote it"
            )
        backup = backup_sqlite(path, state.revision) if state.revision is not None else None
        engine = create_store_engine(f"sqlite:///{path}")
        try:
            upgrade_to_head(engine)
        finally:
            engine.dispose()
        return backup
    if not upgrade:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Create the file owner-only before SQLite touches it; experiment data is private by default.
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the store ({exc.strerror})") from exc
    engine = create_store_engine(f"sqlite:///{path}")
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
