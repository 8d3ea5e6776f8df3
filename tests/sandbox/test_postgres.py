"""The tests' own PostgreSQL server: Debian's binaries, a fresh directory, loopback only."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg

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
