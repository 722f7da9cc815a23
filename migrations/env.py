"""Alembic environment for the rltui store. Batch mode keeps ALTERs working on SQLite.

rltui.store.migrate passes the connection to migrate on (foreign keys off, BEGIN IMMEDIATE on
SQLite) in `config.attributes["connection"]`; the caller commits. Run by hand, the alembic command
line gets a fresh engine from sqlalchemy.url.

The revision lives in rltui's own version table (VERSION_TABLE), never in Alembic's default
`alembic_version`, which other Alembic apps on the same database (an Optuna storage) use.
Before Alembic reads it, prepare_connection takes PostgreSQL's schema lock and moves a legacy
revision over.
"""

from alembic import context
from sqlalchemy import create_engine

from rltui.store.migrate import VERSION_TABLE, prepare_connection
from rltui.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:  # noqa: ANN001
    prepare_connection(connection)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        compare_type=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
