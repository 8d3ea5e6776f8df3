"""The tests' own PostgreSQL server: Debian's binaries, a fresh directory, loopback only."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from permisos_sandbox.postgres import PostgresServer


def test_server_serves_sql_on_loopback_and_leaves_nothing_behind(tmp_path: Path) -> None:
    log = tmp_path / "postgres.log"
    server = PostgresServer(durable=False, log_path=log)
    with server:
        with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
            conn.execute('CREATE DATABASE "shop"')
        with psycopg.connect(server.url("shop").replace("+psycopg", "")) as conn:
            conn.execute("CREATE TABLE t (n int)")
            conn.execute("INSERT INTO t VALUES (42)")
            assert conn.execute("SELECT n FROM t").fetchone() == (42,)
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
        data = server.data_directory
        assert data is not None and (data / "PG_VERSION").is_file()
    assert not data.parent.exists(), "the data directory is removed"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", server.port)) != 0, "the server is gone"
    assert "database system is ready to accept connections" in log.read_text()


def test_a_halted_server_starts_again_on_its_port_with_its_data() -> None:
    """The chaos run's database outage: down, refusing connections, then back as it was."""
    with PostgresServer(durable=False) as server:
        with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE paid (id text PRIMARY KEY)")
            conn.execute("INSERT INTO paid VALUES ('pi_1')")
        port, data = server.port, server.data_directory

        server.halt()
        assert not server.running
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.admin_dsn, connect_timeout=2)
        assert data is not None and (data / "PG_VERSION").is_file(), "the data stays"

        server.start()
        assert server.running and server.port == port and server.data_directory == data
        with psycopg.connect(server.admin_dsn) as conn:
            assert conn.execute("SELECT id FROM paid").fetchall() == [("pi_1",)]
    assert not data.exists()
