"""Fresh PostgreSQL databases for tests (PostgreSQL is on 127.0.0.1:5432 on the CI machine)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from permisos_api.migrate import upgrade

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


@contextmanager
def fresh_database(prefix: str, *, migrate: bool = True) -> Iterator[str]:
    """A new database named `<prefix>_<random>`, migrated to head unless `migrate` is false;
    yields its SQLAlchemy URL and drops it (even with connections still open) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        if migrate:
            upgrade(url)
        yield url
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
