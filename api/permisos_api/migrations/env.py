"""Alembic environment: the URL comes from ApiSettings unless the caller put one in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine, create_engine, pool

from permisos.database import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    configure_sqlite,
    ensure_sqlite_file,
    is_sqlite,
)
from permisos_api import models  # noqa: F401  (registers the tables on the metadata)
from permisos_api.db import Base
from permisos_api.settings import ApiSettings

config = context.config
url = config.get_main_option("sqlalchemy.url") or ApiSettings().database_url


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _engine() -> Engine:
    if not is_sqlite(url):
        return create_engine(url, poolclass=pool.NullPool)
    ensure_sqlite_file(url)
    engine = create_engine(
        url, poolclass=pool.NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS}
    )
    # Foreign keys off while the schema changes (SQLite's own procedure for rebuilding a table,
    # which batch operations do); checked once at the end instead.
    configure_sqlite(engine, foreign_keys=False)
    return engine


def run_online() -> None:
    engine = _engine()
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite's DDL is transactional too: all of an upgrade lands, or none of it.
            transactional_ddl=True if sqlite else None,
            # Autogenerate against SQLite writes batch operations (ALTER TABLE is limited there).
            render_as_batch=sqlite,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
