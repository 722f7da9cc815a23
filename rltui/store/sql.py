"""Plain SQL on the store, for the paths where start-up time matters (a worker, `rltui run --detach`).

Importing SQLAlchemy's ORM costs more than half a second of CPU; a worker starting a tabular run
needs a handful of statements. `Store.sql` runs those statements, written once with `:name`
parameters, either on raw `sqlite3` connections (SQLite: nothing heavy imported) or through
SQLAlchemy `text()` (any other backend). Values cross both the same way:

- datetimes are written as SQLAlchemy writes them on SQLite ("YYYY-MM-DD HH:MM:SS.ffffff", so the
  ORM reads them back and equality with a stored value holds); read them with `as_datetime`;
- JSON columns are written as `Json(value)` (as `json_text` writes it) and read with `as_json`;
- NaN and ±inf are stored as null on every backend, in REAL columns and inside JSON (standard JSON
  has no NaN, and PostgreSQL refuses one: a single NaN in a batch failed the whole transaction);
- rows come back as plain tuples.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator, Sequence, TypeVar
from urllib.parse import quote

from rltui.store import quiet
from rltui.store.faults import READ_ONLY, StoreFault, describe

# Every connection runs with these (see README, "The experiment store"); engine.py applies the same.
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA busy_timeout=15000",
    "PRAGMA foreign_keys=ON",
    "PRAGMA synchronous=NORMAL",
    # A larger page cache keeps the metric index's hot pages in memory on long runs.
    "PRAGMA cache_size=-32768",
    # After a checkpoint, shrink a WAL that a burst (or a slow reader) let grow past 64 MiB.
    "PRAGMA journal_size_limit=67108864",
)
SQLITE_TIMEOUT = 15.0
RENEW_MS = 1000  # a write someone waits for renews its request that workers keep off this often


class Json:
    """A parameter bound for a JSON column."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def sqlite_datetime(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def as_datetime(value: Any) -> datetime | None:
    """A DATETIME column's value (text on SQLite, a datetime elsewhere) as a naive datetime."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def as_json(value: Any) -> Any:
    """A JSON column's value (text on SQLite, already decoded elsewhere)."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


_INF = math.inf


def finite_or_none(value: Any) -> float | None:
    """A REAL column's value: a float, or None for NaN and ±inf (a comparison, no call)."""
    value = float(value)
    return value if -_INF < value < _INF else None


def to_jsonable(value: Any) -> Any:
    """numpy scalars and arrays (and nested containers of them) as plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors: without importing either
        return value.tolist()
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors: without importing either
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# The C encoder with a hook for numpy/torch values: plain Python data never leaves C.
_json_encode = json.JSONEncoder(separators=(",", ":"), default=_json_default).encode

try:  # orjson is ~10x faster than json on the small per-step objects (see bench/bench_store.py)
    import orjson

    _ORJSON_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def _fast_encode(value: Any) -> str:
        return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTS).decode()

except ImportError:  # pragma: no cover - orjson is a declared dependency
    _fast_encode = _json_encode


def json_text(value: Any) -> str:
    """`value` as compact standard JSON text; the fast path for the per-step columns.

    NaN and ±inf become null (standard JSON has no NaN; PostgreSQL's json refuses it).
    """
    if type(value) is int:  # tabular states and actions (bool is excluded on purpose)
        return str(value)
    try:
        return _fast_encode(value)
    except TypeError:  # e.g. integers beyond 64 bits: convert the slow way, same output
        return _json_encode(_finite_or_null(to_jsonable(value)))


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


# A test hook, and a way to cap a store's size: SQLite's max_page_count on every connection this
# process opens. Past it, writes fail exactly as on a full disk ("database or disk is full").
MAX_PAGE_COUNT_ENV = "RLTUI_SQLITE_MAX_PAGE_COUNT"


def tune_sqlite_connection(conn: Any, read_only: bool = False) -> None:
    """Autocommit mode (we issue BEGIN ourselves, IMMEDIATE for writers) and the store's PRAGMAs."""
    conn.isolation_level = None
    cur = conn.cursor()
    for pragma in SQLITE_PRAGMAS:
        if read_only and ("journal_mode" in pragma or "journal_size_limit" in pragma):
            continue  # these would write the file; a WAL store stays WAL regardless
        cur.execute(pragma)
    max_pages = os.environ.get(MAX_PAGE_COUNT_ENV)
    if max_pages and not read_only:
        cur.execute(f"PRAGMA max_page_count={int(max_pages)}")
    cur.close()


def sqlite_uri(path: str, read_only: bool = False) -> str:
    """The URI to connect to `path`; read-only ones create and change nothing on disk.

    `mode=ro` alone still creates -wal/-shm files next to a WAL database (and fails where its folder
    is read-only). When no -wal file exists the main file holds every committed page, so
    `immutable=1` reads it exactly without any lock or side file; when one exists (a writer has the
    store open) a plain read-only connection is used.
    """
    uri = f"file:{quote(str(path))}"
    if not read_only:
        return uri
    return uri + ("?mode=ro" if os.path.exists(str(path) + "-wal") else "?immutable=1")


def _sqlite_param(value: Any) -> Any:
    if isinstance(value, datetime):
        return sqlite_datetime(value)
    if isinstance(value, Json):
        return json_text(value.value)
    return value


class WriteLockBusy(sqlite3.OperationalError):
    """A write with a bounded wait (`write(busy_ms=...)`) found the write lock taken all that time.
    Nothing was written: the caller keeps its data and tries again later."""


T = TypeVar("T")


class BoundedWrites:
    """One writer's transactions (a worker's), each waiting a bounded time for SQLite's write lock.

    A peer frozen inside its transaction (SIGSTOP, a closed lid) holds that lock for as long as it is
    frozen; a write that waited the store's 15 s busy timeout would then fail the run with "database
    is locked". Instead every try waits `wait_ms` at most, so the transaction stays short and the
    writer gets on with its run between tries:

    - `attempt(wait_ms)`: one try; a lock that stayed taken raises WriteLockBusy (nothing written),
      and the caller keeps its data for later (a flush, a heartbeat's stamp, a thinning chunk);
    - `until_done(body, wait_ms, doing)`: tries again until it is written (a checkpoint's
      companions, the final flush's rollups, a run's final status: these must never be lost).

    It counts the time spent waiting (`waited_s`) and, once a held lock has kept this writer waiting
    for `say_after` seconds, says so once through `say` (the run's log), and again when it is over.
    `wait_ms=None`: one try with the store's busy timeout, as any other writer (not a worker's).
    While `hold_back()` is true a bounded try waits (within its wait_ms) before it asks for the lock,
    as if the lock were taken: a WAL checkpoint, or a write someone waits for, goes first (store/quiet.py).
    """

    def __init__(self, db: "SQLiteDatabase | AlchemyDatabase", say: Callable[[str], None] | None = None,
                 say_after: float = 10.0, hold_back: Callable[[], bool] | None = None) -> None:
        self.db, self.say, self.say_after = db, say, say_after
        self.hold_back = hold_back  # True while another writer asks workers to keep off (store/quiet.py)
        self.busy_since: float | None = None  # when the lock was first found taken, nothing written since
        self.waited_s = 0.0  # all the time spent waiting for the lock, summed
        self._said = False

    @contextmanager
    def attempt(self, wait_ms: int | None, doing: str | Callable[[], str] = "") -> Iterator[Tx]:
        started = time.monotonic()
        if wait_ms is not None and self.hold_back is not None:
            while self.hold_back():
                if time.monotonic() - started >= wait_ms / 1000:
                    self.note_busy(time.monotonic() - started, doing)
                    raise WriteLockBusy("workers are held back: a WAL checkpoint or a write someone waits for goes first")
                time.sleep(0.02)
            wait_ms = max(1, wait_ms - int((time.monotonic() - started) * 1000))
        try:
            with self.db.write(busy_ms=wait_ms) as tx:
                self.waited_s += time.monotonic() - started
                yield tx
        except WriteLockBusy:
            self.note_busy(time.monotonic() - started, doing)
            raise
        self.note_free()

    def until_done(self, body: Callable[[Tx], T], wait_ms: int | None, doing: str) -> T:
        """`body(tx)` in a write transaction, tried again (wait_ms at a time) until the lock is had."""
        while True:
            try:
                with self.attempt(wait_ms, doing) as tx:
                    return body(tx)
            except WriteLockBusy:
                continue  # each try already waited wait_ms

    def note_busy(self, waited_s: float = 0.0, doing: str | Callable[[], str] = "") -> None:
        """The lock was found taken (by a try of ours, or one the caller made); said once, after a while."""
        now = time.monotonic()
        self.waited_s += waited_s
        if self.busy_since is None:
            self.busy_since = now - waited_s
        elif not self._said and now - self.busy_since > self.say_after and self.say is not None:
            self._said = True
            what = doing() if callable(doing) else doing
            self.say(f"the store's write lock has been taken by other writers for {now - self.busy_since:.0f} s"
                     + (f"; {what}" if what else ""))

    def note_free(self) -> None:
        if self._said and self.say is not None:
            self.say(f"the store took writes again after {time.monotonic() - (self.busy_since or 0):.0f} s; "
                     "nothing was lost")
        self.busy_since, self._said = None, False


class Tx:
    """One transaction: run statements, get tuples back."""

    def all(self, sql: str, **params: Any) -> list[tuple]:
        raise NotImplementedError

    def run(self, sql: str, **params: Any) -> int:
        """Execute a statement; returns the number of rows it changed."""
        raise NotImplementedError

    def run_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """One statement over many parameter sets (executemany)."""
        raise NotImplementedError

    def first(self, sql: str, **params: Any) -> tuple | None:
        rows = self.all(sql, **params)
        return rows[0] if rows else None

    def scalar(self, sql: str, **params: Any) -> Any:
        row = self.first(sql, **params)
        return None if row is None else row[0]


class SQLiteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.cursor = conn.cursor()

    def all(self, sql: str, **params: Any) -> list[tuple]:
        return self.cursor.execute(sql, {k: _sqlite_param(v) for k, v in params.items()}).fetchall()

    def run(self, sql: str, **params: Any) -> int:
        return self.cursor.execute(sql, {k: _sqlite_param(v) for k, v in params.items()}).rowcount

    def run_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self.cursor.executemany(sql, rows)


class AlchemyTx(Tx):
    """The same statements on a SQLAlchemy connection (PostgreSQL and friends)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def _execute(self, sql: str, params: dict[str, Any]):  # noqa: ANN202
        from sqlalchemy import JSON, bindparam, text

        statement = text(sql)
        json_names = [k for k, v in params.items() if isinstance(v, Json)]
        if json_names:
            statement = statement.bindparams(*(bindparam(k, type_=JSON) for k in json_names))
        # JSON goes through the engine's json_serializer (json_text: NaN as null).
        values = {k: v.value if isinstance(v, Json) else v for k, v in params.items()}
        return self.conn.execute(statement, values)

    def all(self, sql: str, **params: Any) -> list[tuple]:
        return [tuple(row) for row in self._execute(sql, params)]

    def run(self, sql: str, **params: Any) -> int:
        return self._execute(sql, params).rowcount

    def run_many(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        from sqlalchemy import text

        if rows:
            self.conn.execute(text(sql), list(rows))


# Raw connections of every SQLiteDatabase in this process; a forked child must not use its
# parent's (two processes sharing one SQLite handle corrupts locks), so it forgets them at fork.
_DATABASES: "weakref.WeakSet[SQLiteDatabase]" = weakref.WeakSet()


class SQLiteDatabase:
    """Raw sqlite3 connections to one file, pooled: a transaction takes an idle one (or opens one)
    and gives it back, so threads come and go (the heartbeat, the TUI's workers) without leaking."""

    MAX_IDLE = 4

    def __init__(self, path: str, read_only: str | None = None) -> None:
        self.path = path
        self.read_only = read_only  # why this store can only be read, or None
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        _DATABASES.add(self)

    def _checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        conn = sqlite3.connect(sqlite_uri(self.path, bool(self.read_only)), uri=True, timeout=SQLITE_TIMEOUT,
                               check_same_thread=False)
        tune_sqlite_connection(conn, read_only=bool(self.read_only))
        return conn

    def _checkin(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if len(self._idle) < self.MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    @contextmanager
    def read(self) -> Iterator[SQLiteTx]:
        """A short read transaction (one consistent snapshot)."""
        yield from self._transaction("BEGIN")

    @contextmanager
    def write(self, busy_ms: int | None = None) -> Iterator[SQLiteTx]:
        """A write transaction holding the write lock from its first statement; commits on exit.
        `busy_ms`: wait at most that long for the lock (else the store's busy timeout), then raise
        WriteLockBusy (a worker's heartbeat and flush: a frozen peer must not hold them up)."""
        if self.read_only:
            raise StoreFault(describe(READ_ONLY, self.path, f" ({self.read_only})"), READ_ONLY)
        yield from self._transaction("BEGIN IMMEDIATE", busy_ms=busy_ms)

    @contextmanager
    def try_write(self) -> Iterator[SQLiteTx]:
        """A write transaction that never waits: "database is locked" at once if another holds the lock
        (readers that would like to mark or kick something, but must not stall behind a writer)."""
        yield from self._transaction("BEGIN IMMEDIATE", busy_ms=0)

    def _transaction(self, begin: str, busy_ms: int | None = None) -> Iterator[SQLiteTx]:
        conn = self._checkout()
        tx = SQLiteTx(conn)
        try:
            if busy_ms is not None:
                self._begin_within(tx, begin, busy_ms)
            elif begin == "BEGIN IMMEDIATE":
                self._begin_ahead_of_workers(tx)
            else:
                tx.cursor.execute(begin)
            try:
                yield tx
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
        finally:
            clean = not conn.in_transaction  # ended its transaction: it may serve another
            tx.cursor.close()
            if clean:
                self._checkin(conn)
            else:  # a failed BEGIN, COMMIT or ROLLBACK
                conn.close()

    def _begin_within(self, tx: SQLiteTx, begin: str, busy_ms: int) -> None:
        tx.cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        try:
            tx.cursor.execute(begin)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            busy = WriteLockBusy(f"{self.path} is busy: its write lock stayed taken for {busy_ms} ms")
            busy.sqlite_errorcode, busy.sqlite_errorname = exc.sqlite_errorcode, exc.sqlite_errorname
            raise busy from exc
        finally:
            tx.cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_TIMEOUT * 1000)}")

    def _begin_ahead_of_workers(self, tx: SQLiteTx) -> None:
        """BEGIN IMMEDIATE for a write without a bound, the kind someone waits for (a cancel, a new run,
        a note; a worker's own writes are bounded, BoundedWrites): if the lock is taken, the store's
        workers are asked to keep off while this waits (store/quiet.py), so it goes
        next instead of whenever SQLite's polling busy handler finds the lock free. It still waits the
        store's busy timeout at most, then fails as "database is locked"."""
        try:
            self._begin_within(tx, "BEGIN IMMEDIATE", 0)
            return
        except WriteLockBusy:
            pass
        deadline = time.monotonic() + SQLITE_TIMEOUT
        with quiet.keep_off(self.path, quiet.PERSON) as renew:
            while True:
                left_ms = int((deadline - time.monotonic()) * 1000)
                try:
                    self._begin_within(tx, "BEGIN IMMEDIATE", max(1, min(left_ms, RENEW_MS)))
                    return
                except WriteLockBusy as busy:
                    if left_ms <= RENEW_MS:
                        raise busy.__cause__ from None  # SQLite's own "database is locked"
                    renew()

    def forget_after_fork(self) -> None:
        """In a forked child: drop (never close) the parent's connections."""
        self._idle = []
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.close()
            except sqlite3.Error:
                pass


class AlchemyDatabase:
    """`Store.sql` for a non-SQLite store: the same statements through the store's engine."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    @contextmanager
    def read(self) -> Iterator[AlchemyTx]:
        with self.engine.connect() as conn, conn.begin():
            yield AlchemyTx(conn)

    @contextmanager
    def write(self, busy_ms: int | None = None) -> Iterator[AlchemyTx]:  # noqa: ARG002
        # `busy_ms` bounds SQLite's one write lock; on PostgreSQL writers of different rows never
        # wait for each other (a run's row is written by its own worker only).
        with self.engine.connect() as conn, conn.begin():
            yield AlchemyTx(conn)

    @contextmanager
    def try_write(self) -> Iterator[AlchemyTx]:
        """A write transaction whose row locks wait at most a moment (lock_timeout)."""
        with self.engine.connect() as conn, conn.begin():
            tx = AlchemyTx(conn)
            tx.run("SET LOCAL lock_timeout = '100ms'")
            yield tx

    def close(self) -> None:
        pass


def _forget_after_fork() -> None:
    for db in list(_DATABASES):
        db.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def in_list(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`:name0, :name1, ...` and their parameters, for an IN (...) clause."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in params), params
