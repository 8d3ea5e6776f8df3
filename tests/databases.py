"""Fresh PostgreSQL databases for tests, on one server per test session.

The server is the tests' own (`permisos_sandbox.postgres`, started on first use and stopped when
the session ends) unless `PERMISOS_TEST_DATABASE_URL` names a superuser's libpq URL of another.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.engine import make_url

from permisos_api.migrate import upgrade
from permisos_sandbox.postgres import PostgresServer
from permisos_sandbox.relay import relay

_server: PostgresServer | None = None


def admin_dsn() -> str:
    """libpq URL of a superuser on the session's server (started here on first use)."""
    given = os.environ.get("PERMISOS_TEST_DATABASE_URL")
    if given:
        return given
    global _server
    if _server is None:
        _server = PostgresServer(durable=False).start()
    return _server.admin_dsn


def stop_server() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None


def with_port(url: str, port: int) -> str:
    """`url` with its port replaced (a proxy in front of the server, say)."""
    return make_url(url).set(port=port).render_as_string(hide_password=False)


@contextmanager
def fresh_database(prefix: str, *, migrate: bool = True) -> Iterator[str]:
    """A new database named `<prefix>_<random>`, migrated to head unless `migrate` is false;
    yields its SQLAlchemy URL and drops it (even with connections still open) afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = admin_dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
        rendered = url.render_as_string(hide_password=False)
        if migrate:
            upgrade(rendered)
        yield rendered
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TcpProxy:
    """A TCP proxy on loopback in front of `upstream` that a test can cut (an outage) and
    restore on the same port."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self.server: asyncio.Server | None = None
        self.port = 0
        self.conns: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.conns):
            w.close()
        await self.server.wait_closed()
        self.server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await relay(reader, writer, self._upstream, self.conns)


class DatabaseProxy(TcpProxy):
    """A TCP proxy in front of the PostgreSQL server of `url` that a test can cut (an outage)."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        super().__init__((parsed.host or "127.0.0.1", parsed.port or 5432))
        self._url = url

    @property
    def url(self) -> str:
        """The database's URL through the proxy."""
        return with_port(self._url, self.port)
