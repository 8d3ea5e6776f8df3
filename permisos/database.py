"""The platform's database engine: PostgreSQL, everywhere."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session


def make_database_engine(
    url: str, *, pool_size: int, max_overflow: int, connect_timeout_seconds: int
) -> Engine:
    if make_url(url).get_backend_name() != "postgresql":
        raise ValueError(
            f"a PostgreSQL URL is needed (postgresql+psycopg://…), not {url.split(':')[0]}"
        )
    return create_engine(
        url,
        pool_pre_ping=True,  # a restarted database heals by itself
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=connect_timeout_seconds + 2,
        connect_args={"connect_timeout": connect_timeout_seconds},
    )


def upsert(db: Session | Engine, table: Any) -> postgresql.Insert:
    """INSERT ... ON CONFLICT."""
    return postgresql.insert(table)
