"""Alembic, driven from code: the store upgrades itself on open, and `rltui db ...` wraps these.

On SQLite every migration runs on one connection that
- has foreign keys switched OFF: batch mode rebuilds a table by copying it and dropping the old one,
  and with foreign keys on, dropping `runs` would cascade-delete every metric and episode. The
  PRAGMA cannot change inside a transaction, so it is set before the migration's BEGIN, and
  `PRAGMA foreign_key_check` must come back empty before the migration commits;
- begins IMMEDIATE, so two processes opening an old store at once do not both migrate it: the
  second waits for the first, then finds the schema already at head.
On PostgreSQL the same is done by a transaction-scoped advisory lock taken before anything is read.

rltui keeps its revision in its own table, `rltui_alembic_version`: Alembic's default
`alembic_version` is shared by every Alembic app on a database (Optuna's storage among them), and
two apps writing one row corrupt each other. Stores from before that keep it in `alembic_version`;
the first migration on such a store moves it over (`adopt_legacy_version`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The newest revision in migrations/versions, known without importing alembic or parsing the
# scripts: opening a store that is already at head (every start of the TUI, the CLI and a worker)
# then costs no alembic import. tests/test_migrations.py checks that it is alembic's head.
SCHEMA_HEAD = "0009"

VERSION_TABLE = "rltui_alembic_version"
# Where rltui kept its revision before it had its own table: Alembic's default, shared with other apps.
LEGACY_VERSION_TABLE = "alembic_version"
# Every revision that ever lived in alembic_version: a closed set, since newer ones go to VERSION_TABLE.
LEGACY_REVISIONS = frozenset({"0001", "0002", "0003"})
RLTUI_TABLES = frozenset({"runs", "metrics", "episodes", "steps", "artifacts", "metric_rollups"})
# pg_advisory_xact_lock key for schema changes (any fixed 64-bit number; this one spells "rltui").
ADVISORY_LOCK_KEY = 0x72_6C_74_75_69


@dataclass(frozen=True)
class SchemaState:
    """What a database holds, as far as opening it as an rltui store is concerned."""

    revision: str | None  # rltui's schema revision; None when there is none
    legacy: bool  # the revision sits in alembic_version (a store from before VERSION_TABLE)
    rltui_tables: bool  # rltui's tables are there
    other_tables: bool  # tables that are neither rltui's nor its version table
    foreign_revision: str | None  # what alembic_version holds when that is another app's revision

    @property
    def empty(self) -> bool:
        """Nothing of anyone's: a new store may be created here."""
        return self.revision is None and not self.rltui_tables and not self.other_tables

    @property
    def needs_upgrade(self) -> bool:
        return self.legacy or self.revision != SCHEMA_HEAD


def read_schema_state(tables: Iterable[str], versions: Callable[[str], list[str]]) -> SchemaState:
    """The state of a database from its table names and a reader of a version table's rows.

    Written once for the raw sqlite3 look at a file (engine.py) and for SQLAlchemy connections.
    """
    tables = set(tables)
    rltui_tables = bool(RLTUI_TABLES & tables)
    # sqlite_*: SQLite's own bookkeeping (sqlite_stat1 after ANALYZE, sqlite_sequence), nobody's data.
    other = {t for t in tables - RLTUI_TABLES - {VERSION_TABLE, LEGACY_VERSION_TABLE} if not t.startswith("sqlite_")}
    legacy_rows = versions(LEGACY_VERSION_TABLE) if LEGACY_VERSION_TABLE in tables else []
    ours = [r for r in legacy_rows if r in LEGACY_REVISIONS] if rltui_tables else []
    foreign = next((r for r in legacy_rows if r not in ours), None)
    if VERSION_TABLE in tables:
        rows = versions(VERSION_TABLE)
        revision, legacy = (rows[0] if rows else None), False
    else:
        revision, legacy = (ours[0], True) if ours else (None, False)
    return SchemaState(revision, legacy, rltui_tables, bool(other) or foreign is not None, foreign)


def schema_state(conn: Connection) -> SchemaState:
    """read_schema_state on a SQLAlchemy connection (any backend)."""
    from sqlalchemy import inspect, text

    return read_schema_state(
        inspect(conn).get_table_names(),
        lambda table: [r[0] for r in conn.execute(text(f"SELECT version_num FROM {table}"))],
    )


class MigrationError(Exception):
    """A migration left the store inconsistent; it was rolled back."""


def migrations_dir() -> Path:
    # In a source checkout the scripts sit at the top level; in a wheel they ship as rltui.migrations.
    source = Path(__file__).resolve().parents[2] / "migrations"
    if (source / "env.py").exists():
        return source
    import rltui.migrations

    return Path(rltui.migrations.__file__).parent


def alembic_config(engine: Engine | None = None, connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if engine is not None:
        # ConfigParser interpolation: a '%' in a password must be doubled.
        cfg.set_main_option(
            "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        cfg.attributes["engine"] = engine
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config())


def script_directory() -> ScriptDirectory:
    return _script()


def head_revision() -> str:
    return _script().get_current_head()


def known_revisions() -> set[str]:
    return {rev.revision for rev in _script().walk_revisions()}


def current_revision(conn: Connection) -> str | None:
    """rltui's schema revision, wherever it is kept (its own table, or alembic_version before that)."""
    return schema_state(conn).revision


def prepare_connection(conn: Connection) -> None:
    """Before Alembic looks at the store (migrations/env.py calls this, inside the transaction):
    on PostgreSQL wait for the schema lock, so two processes opening a new or old store at once
    migrate it one after the other; then move a legacy revision into rltui's own table."""
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    adopt_legacy_version(conn)


def adopt_legacy_version(conn: Connection) -> bool:
    """Move rltui's revision out of alembic_version into VERSION_TABLE; True if there was one.

    Only a revision rltui wrote (LEGACY_REVISIONS, beside rltui's tables) moves; another app's row
    stays where it is, and alembic_version is dropped once nobody's row is left in it.
    """
    from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, text

    state = schema_state(conn)
    if not state.legacy:
        return False
    # The table as Alembic itself would create it (alembic.ddl.impl's version table).
    Table(
        VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
        PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    ).create(conn)
    conn.execute(text(f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (:rev)"), {"rev": state.revision})
    conn.execute(text(f"DELETE FROM {LEGACY_VERSION_TABLE} WHERE version_num = :rev"), {"rev": state.revision})
    if state.foreign_revision is None:
        conn.execute(text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))
    return True


# Alembic's `context` is one module-level proxy per process: two threads migrating at once (two
# TUI workers opening a new store) would run inside each other's context.
_ALEMBIC_LOCK = threading.Lock()


def _migrate(engine: Engine, run) -> None:  # noqa: ANN001
    """Run an alembic command inside one transaction we own (alembic sees it as external)."""
    with _ALEMBIC_LOCK:
        _migrate_unlocked(engine, run)


def _migrate_unlocked(engine: Engine, run) -> None:  # noqa: ANN001
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        engine = engine.execution_options(sqlite_begin="IMMEDIATE")
    with engine.connect() as conn:
        raw = conn.connection.driver_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")  # on the driver: no transaction is open yet
        try:
            with conn.begin():
                run(alembic_config(engine, conn))
                if raw is not None:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise MigrationError(
                            f"the migration left {len(broken)} dangling foreign keys "
                            f"(first: {broken[:3]}); it was rolled back"
                        )
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def upgrade_to_head(engine: Engine) -> None:
    upgrade(engine, "head")


def upgrade(engine: Engine, target: str = "head") -> None:
    from alembic import command

    _migrate(engine, lambda cfg: command.upgrade(cfg, target))


def downgrade(engine: Engine, target: str) -> None:
    from alembic import command

    _migrate(engine, lambda cfg: command.downgrade(cfg, target))
