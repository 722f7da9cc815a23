"""Alembic, driven from code: the store upgrades itself on open, and `rltui db ...` wraps these.

On SQLite every migration runs on one connection that
- has foreign keys switched OFF: batch mode rebuilds a table by copying it and dropping the old one,
  and with foreign keys on, dropping `runs` would cascade-delete every metric and episode. The
  PRAGMA cannot change inside a transaction, so it is set before the migration's BEGIN, and
  `PRAGMA foreign_key_check` must come back empty before the migration commits;
- begins IMMEDIATE, so two processes opening an old store at once do not both migrate it: the
  second waits for the first, then finds the schema already at head.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from alembic.config import Config
    from alembic.script import ScriptDirectory

# The newest revision in migrations/versions, known without importing alembic or parsing the
# scripts: opening a store that is already at head (every start of the TUI, the CLI and a worker)
# then costs no alembic import. tests/test_migrations.py checks that it is alembic's head.
SCHEMA_HEAD = "0008"


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
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _migrate(engine: Engine, run) -> None:  # noqa: ANN001
    """Run an alembic command inside one transaction we own (alembic sees it as external)."""
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
