"""`rltui db check`: is the store's file sound? SQLite's own checks, run read-only.

`PRAGMA quick_check` reads every page and checks the b-trees' structure (O(N)); `integrity_check`
also checks that every index matches its table; `foreign_key_check` finds rows whose run is gone.
The file is opened read-only and never written, so checking a damaged store cannot make it worse,
and the check works on a store too damaged to open normally (no schema read first).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from rltui.store.sql import sqlite_uri

MAX_PROBLEMS = 20  # integrity_check stops after this many; the first few say enough


@dataclass
class CheckReport:
    where: str
    problems: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # what was run

    @property
    def ok(self) -> bool:
        return not self.problems


def quick_check(path: Path) -> list[str]:
    """Problems `PRAGMA quick_check` finds (empty: sound); a file SQLite cannot read at all is one."""
    rows, error = _pragma(path, f"quick_check({MAX_PROBLEMS})")
    return [error] if error else ([] if rows == ["ok"] else rows)


def _pragma(path: Path, pragma: str) -> tuple[list[str], str | None]:
    """(rows as text, the error that stopped it or None)."""
    try:
        conn = sqlite3.connect(sqlite_uri(str(path), read_only=True), uri=True, timeout=15)
    except sqlite3.Error as exc:
        return [], f"cannot open: {exc}"
    try:
        return [" ".join(map(str, r)) for r in conn.execute(f"PRAGMA {pragma}")], None
    except sqlite3.DatabaseError as exc:
        return [], str(exc)
    finally:
        conn.close()


def check_sqlite(path: Path) -> CheckReport:
    report = CheckReport(str(path))
    if not path.exists():
        report.problems.append("no such file")
        return report
    if not path.is_file():
        report.problems.append("not a regular file")
        return report
    for pragma in (f"quick_check({MAX_PROBLEMS})", f"integrity_check({MAX_PROBLEMS})", "foreign_key_check"):
        report.checks.append(pragma.split("(")[0])
        rows, error = _pragma(path, pragma)
        if pragma == "foreign_key_check":
            # (table, rowid, parent table, fk index) for each row whose parent is gone
            rows = [f"{r.split()[0]} row {r.split()[1]} points at a missing row of {r.split()[2]}" for r in rows]
        elif rows == ["ok"]:
            rows = []
        found = rows + ([error] if error else [])
        report.problems += [p for p in found if p not in report.problems]
        if error and error.startswith("cannot open"):
            break
    return report


def check_server(store) -> CheckReport:  # noqa: ANN001
    """A server store (PostgreSQL) guards its own pages; we check that every table reads whole."""
    from rltui.store.models import Base

    report = CheckReport(store.where, checks=["every table read"])
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            try:
                conn.exec_driver_sql(f"SELECT count(*) FROM {table.name}").scalar()
            except Exception as exc:  # noqa: BLE001 — a damaged relation is what we look for
                report.problems.append(f"{table.name}: {str(exc).splitlines()[0]}")
                conn.rollback()
    return report


def format_report(report: CheckReport) -> str:
    if report.ok:
        return f"{report.where}: ok ({', '.join(report.checks)} found no problem)"
    lines = [f"{report.where}: damaged: {len(report.problems)} problem(s) found by {', '.join(report.checks) or 'opening it'}:"]
    lines += [f"  {p}" for p in report.problems[:MAX_PROBLEMS]]
    lines.append("  Restore it from a backup (the *.bak files beside it are copies taken before each upgrade), "
                 "or copy what still reads with `sqlite3 FILE .recover`.")
    return "\n".join(lines)
