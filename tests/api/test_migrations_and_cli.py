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
