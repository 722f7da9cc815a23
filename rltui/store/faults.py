"""Store faults in one line: a full disk, a read-only store, a damaged file, a held write lock.

SQLite reports these as exceptions deep inside whatever was reading or writing (raw `sqlite3`, or
wrapped by SQLAlchemy). `fault_message` turns any of them into the one line a user sees, naming the
store and what to do; the CLI prints it with exit status 2, a worker writes it to its log and into
its run's `error`. Importable at no cost (no SQLAlchemy): the CLI and the worker use it on every
path.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# SQLite's primary result codes (the low byte of an extended code).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR = 5, 6, 8, 10
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26

FULL, READ_ONLY, DAMAGED, BUSY, IO_ERROR, CANNOT_OPEN = (
    "disk full", "read-only", "damaged", "busy", "I/O error", "cannot open")

_SQLITE_KINDS = {
    SQLITE_FULL: FULL,
    SQLITE_READONLY: READ_ONLY,
    SQLITE_CORRUPT: DAMAGED,
    SQLITE_NOTADB: DAMAGED,
    SQLITE_BUSY: BUSY,
    SQLITE_LOCKED: BUSY,
    SQLITE_IOERR: IO_ERROR,
    SQLITE_CANTOPEN: CANNOT_OPEN,
}
# PostgreSQL SQLSTATEs for the same faults (psycopg errors carry `.sqlstate`).
_PG_KINDS = {"53100": FULL, "25006": READ_ONLY, "XX001": DAMAGED, "XX002": DAMAGED, "55P03": BUSY}


class StoreError(Exception):
    """A store that cannot be opened or used as asked; the message says why and what to do."""


class StoreFault(StoreError):
    """A store fault met while reading or writing (see `fault_message`); `kind` is one of the above."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def _causes(exc: BaseException):  # noqa: ANN202
    """The exception, what SQLAlchemy wrapped (`.orig`), and its causes, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [getattr(e, "orig", None), e.__cause__, e.__context__]


def fault_kind(exc: BaseException) -> str | None:
    """FULL, READ_ONLY, DAMAGED, BUSY, IO_ERROR or CANNOT_OPEN when `exc` is such a store fault."""
    for e in _causes(exc):
        if isinstance(e, StoreFault):
            return e.kind
        if isinstance(e, sqlite3.Error):
            code = getattr(e, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _SQLITE_KINDS:
                return _SQLITE_KINDS[code & 0xFF]
            # An error raised by Python's module itself carries no code: go by SQLite's wording.
            text = str(e).lower()
            for words, kind in (("disk is full", FULL), ("readonly", READ_ONLY), ("malformed", DAMAGED),
                                ("not a database", DAMAGED), ("locked", BUSY)):
                if words in text:
                    return kind
        sqlstate = getattr(e, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate in _PG_KINDS:
            return _PG_KINDS[sqlstate]
    return None


def _reason(exc: BaseException) -> str:
    for e in _causes(exc):
        if isinstance(e, StoreFault):
            return ""
        if isinstance(e, sqlite3.Error) or getattr(e, "sqlstate", None):
            who = "SQLite" if isinstance(e, sqlite3.Error) else "PostgreSQL"
            return f" ({who} says: {(str(e).strip().splitlines() or [type(e).__name__])[0]})"
    return ""


def describe(kind: str, where: str, reason: str = "") -> str:
    """The line for a fault of `kind` on the store at `where`."""
    if kind == FULL:
        return (f"{where}: disk full: the store cannot grow{reason}. What it holds is intact; free space "
                f"on its filesystem (or delete old runs) and try again")
    if kind == READ_ONLY:
        return f"{where}: the store is read-only{reason}; it can be read (ls, show, export), not written"
    if kind == DAMAGED:
        return (f"{where}: the store is damaged{reason}; run `rltui --db {where} db check` to see what is "
                f"wrong, then restore it from a backup (the *.bak files beside it are copies taken before "
                f"each upgrade)")
    if kind == BUSY:
        return f"{where}: the store is busy: another process holds its write lock{reason}; try again"
    if kind == IO_ERROR:
        return f"{where}: I/O error reading or writing the store{reason}; check the disk and its filesystem"
    return f"{where}: cannot open the store{reason}; check the path and its permissions"


def fault_message(exc: BaseException, where: str | Path) -> str | None:
    """One line for a store fault (naming the store and what to do), or None if `exc` is not one."""
    if isinstance(exc, StoreFault):
        return str(exc)
    kind = fault_kind(exc)
    if kind is None:
        return None
    return describe(kind, str(where), _reason(exc))


def as_fault(exc: BaseException, where: str | Path) -> StoreFault | None:
    message = fault_message(exc, where)
    return None if message is None else StoreFault(message, fault_kind(exc) or "")
