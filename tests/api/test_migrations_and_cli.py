"""Alembic from empty to head and back to base; the models match the migrations; the CLIs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from permisos_api import admin
from permisos_api.db import Base
from permisos_api.migrate import downgrade, upgrade
from tests.api.conftest import Api, login
from tests.databases import fresh_database

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "users",
    "sessions",
    "applications",
    "rate_limit_buckets",
    "payments",
    "payment_events",
    "permit_downloads",
    "outbox",
    "permit_history",
    "permits",
}


def tables(url: str) -> set[str]:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def run(args: list[str], url: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PERMISOS_API_DATABASE_URL": url}
    return subprocess.run(
        args, env=env, cwd=ROOT, input=stdin, capture_output=True, text=True, check=True
    )


def test_upgrade_from_empty_and_downgrade_to_base() -> None:
    with fresh_database("permisos_test_mig", migrate=False) as url:
        assert tables(url) == set()
        run([sys.executable, "-m", "permisos_api.migrate", "upgrade"], url)
        assert tables(url) == TABLES | {"alembic_version"}

        engine = create_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        engine.dispose()
        assert diff == [], diff  # the models and the migrations agree

        # The alembic CLI with the shipped config works too.
        alembic = str(Path(sys.executable).with_name("alembic"))
        run([alembic, "-c", "api/alembic.ini", "downgrade", "base"], url)
        assert tables(url) == {"alembic_version"}
        # And the functions the tests and the Helm hook use, in process.
        upgrade(url)
        assert tables(url) == TABLES | {"alembic_version"}
        downgrade(url)
        assert tables(url) == {"alembic_version"}


def test_the_permits_move_to_their_own_table_and_back() -> None:
    """0007 copies each application's current permit into `permits`, and its downgrade copies it
    back: a deployment upgraded with permits in flight loses none of them."""
    with fresh_database("permisos_test_mig_permits", migrate=False) as url:
        upgrade(url, "0006")
        dsn = url.replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(dsn, autocommit=True) as conn:
            user = conn.execute(
                "INSERT INTO users (id, email, password_hash, role, failed_logins, created_at, "
                "updated_at) VALUES (gen_random_uuid(), 'm@example.com', 'x', 'client', 0, "
                "now(), now()) "
                "RETURNING id"
            ).fetchone()
            assert user is not None
            columns = (
                "owner_id, status, first_name, last_name, maternal_surname, curp, email, phone, "
                "plates, make, line, service_type, model_year, amount_centavos, currency, "
                "created_at, updated_at"
            )
            person = (
                "%s, 'permit_ready', 'A', 'B', '', 'GODE561231HDFRRN00', 'm@example.com', "
                "'5512345678', 'JKL4821', 'nissan', 'versa', 'particular', 2022, 150000, 'MXN', "
                "now(), now()"
            )
            retried, waiting, unpaid = (
                conn.execute(
                    f"INSERT INTO applications (id, {columns}) "
                    f"VALUES (gen_random_uuid(), {person}) RETURNING id",
                    (user[0],),
                ).fetchone()
                for _ in range(3)
            )
            assert retried and waiting and unpaid
            conn.execute(
                "UPDATE applications SET permit_retries = 1, permit_request = id::text || '-r1', "
                "permit_phase = 'Succeeded', permit_attempts = 2, folio = 'F-7', "
                'permit_artifacts = \'[{"kind": "permit"}]\', permit_updated_at = now() '
                "WHERE id = %s",
                (retried[0],),
            )
            conn.execute(
                "UPDATE applications SET permit_phase = 'Queued', permit_queue_position = 3 "
                "WHERE id = %s",
                (waiting[0],),
            )
        upgrade(url)
        with psycopg.connect(dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_id, retry, request_name, phase, attempts, folio, artifacts, "
                "queue_position FROM permits ORDER BY retry"
            ).fetchall()
        assert rows == [
            (waiting[0], 0, str(waiting[0]), "Queued", 0, None, None, 3),
            (retried[0], 1, f"{retried[0]}-r1", "Succeeded", 2, "F-7", [{"kind": "permit"}], None),
        ]
        downgrade(url, "0006")
        with psycopg.connect(dsn, autocommit=True) as conn:
            back = conn.execute(
                "SELECT permit_request, permit_phase, folio, permit_queue_position "
                "FROM applications WHERE id = %s",
                (retried[0],),
            ).fetchone()
        assert back == (f"{retried[0]}-r1", "Succeeded", "F-7", None)


async def test_create_admin_cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    email = f"Boss.{uuid.uuid4().hex[:8]}@example.com"
    password = "Admin-caballo-correcto-1"
    out = run(
        [sys.executable, "-m", "permisos_api.admin", "create-admin", email],
        api.settings.database_url,
        stdin=password + "\n",
    )
    assert out.stdout.startswith("admin ")
    client = api.client()
    r = await client.post("/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200 and r.json()["user"]["role"] == "admin"
    # Promote the same account (in process this time); a weak password is refused.
    monkeypatch.setenv("PERMISOS_API_DATABASE_URL", api.settings.database_url)
    monkeypatch.setenv("PERMISOS_ADMIN_PASSWORD", "short")
    assert admin.main(["create-admin", email, "--role", "superadmin"]) == 2
    monkeypatch.setenv("PERMISOS_ADMIN_PASSWORD", password + "2")
    assert admin.main(["create-admin", email.upper(), "--role", "superadmin"]) == 0
    assert (await login(client, email)).status_code == 401  # the password was replaced
    r = await client.post("/v1/auth/login", json={"email": email, "password": password + "2"})
    assert r.status_code == 200 and r.json()["user"]["role"] == "superadmin"
