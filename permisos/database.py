"""The database engine both the API and the operator's mirror use: PostgreSQL in production, or
the one-machine demo's SQLite file, which both processes share (api/README.md, "SQLite")."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

# How long a SQLite connection waits for another connection's write transaction before "database
# is locked". Writers are serialized and a few hold the lock across a Stripe call or an Argon2
# check, so this is generous.
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
# RETURNING (the upserts) and ALTER TABLE ... DROP COLUMN (the downgrades) need 3.35.
SQLITE_MIN_VERSION = (3, 35, 0)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_file(url: str) -> Path:
    """The database file of a SQLite URL (its folder is created); in-memory databases refused:
    each connection would see its own empty one."""
    if sqlite3.sqlite_version_info < SQLITE_MIN_VERSION:
        raise ValueError(f"SQLite {sqlite3.sqlite_version} is too old: 3.35 or newer is needed")
    database = make_url(url).database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        raise ValueError("a SQLite database must be a file: sqlite+pysqlite:////path/to/file.db")
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def configure_sqlite(engine: Engine, *, foreign_keys: bool = True) -> None:
    """Per connection: WAL (cheap commits; outside readers never block), a busy timeout, foreign
    keys, and every transaction opened with BEGIN IMMEDIATE.

    SQLite has one writer at a time and no row locks (SQLAlchemy drops FOR UPDATE [SKIP LOCKED]
    there). Left alone, the driver begins a transaction only at the first write, so a read and
    the write that depends on it are not atomic (a webhook would not wait for the payment request
    that holds the application "locked"); a deferred BEGIN makes them atomic but fails at once
    with "database is locked" when another connection wrote in between (the busy timeout does
    not cover that case). So each transaction takes the write lock when it begins: the
    read-then-write paths (apply_intent, the dispatcher's claim, notices, the mirror) are atomic,
    and what FOR UPDATE SKIP LOCKED protects on PostgreSQL, the whole-database lock protects here.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is off; the "begin" listener below opens transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL cannot corrupt the file; a power cut may lose the last commits.
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_database_engine(
    url: str, *, pool_size: int, max_overflow: int, connect_timeout_seconds: int
) -> Engine:
    if is_sqlite(url):
        ensure_sqlite_file(url)
        engine = create_engine(
            url,
            # Connections are cheap and writers queue on the file lock, not in the pool: a pool
            # wait as long as the busy timeout never fails first.
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=SQLITE_BUSY_TIMEOUT_SECONDS,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )
        configure_sqlite(engine)
        return engine
    kwargs: dict[str, Any] = {"pool_pre_ping": True}  # a restarted database heals by itself
    if url.startswith("postgresql"):
        kwargs.update(
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=connect_timeout_seconds + 2,
            connect_args={"connect_timeout": connect_timeout_seconds},
        )
    return create_engine(url, **kwargs)


def upsert(db: Session | Engine, table: Any) -> postgresql.Insert | sqlite.Insert:
    """INSERT ... ON CONFLICT for the database in use: both speak it, with different constructs."""
    bind = db.get_bind() if isinstance(db, Session) else db
    if bind.dialect.name == "sqlite":
        return sqlite.insert(table)
    return postgresql.insert(table)
