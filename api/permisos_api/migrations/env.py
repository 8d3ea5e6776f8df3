"""Alembic environment: the URL comes from ApiSettings unless the caller put one in the config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from permisos_api import models  # noqa: F401  (registers the tables on the metadata)
from permisos_api.db import Base
from permisos_api.settings import ApiSettings

config = context.config
url = config.get_main_option("sqlalchemy.url") or ApiSettings().database_url


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
