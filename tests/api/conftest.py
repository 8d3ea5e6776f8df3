"""The API against a real PostgreSQL: one fresh database per test session, migrated by Alembic.
(tests/api/test_sqlite*.py override `database_url` with a SQLite file: the demo's database.)

Each client gets its own fake client address, so per-address rate limits of one test never touch
another; emails are unique per test for the same reason.
"""

from __future__ import annotations

import email
import itertools
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from permisos_api import models
from permisos_api.app import create_app
from permisos_api.db import make_engine
from permisos_api.migrate import upgrade
from permisos_api.settings import ApiSettings

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
PASSWORD = "Correcto-caballo-42"
BASE_URL = "https://testserver"

# A valid CURP (check digit 0) and one with a wrong check digit.
CURP = "GODE561231HDFRRN00"
BAD_CURP = "GODE561231HDFRRN05"
APPLICATION: dict[str, Any] = {
    "first_name": "Juana",
    "last_name": "Gómez",
    "maternal_surname": "Díaz",
    "curp": CURP,
    "email": "juana.gomez@example.com",
    "phone": "55 1234 5678",
    "plates": "jkl-4821",
    "make": "nissan",
    "line": "versa",
    "service_type": "particular",
    "model_year": 2022,
    "vin": "1HGCM82633A004352",
}


def create_database(name: str) -> str:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"permisos_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "mail"


@pytest.fixture
def settings(database_url: str, outbox: Path) -> ApiSettings:
    return ApiSettings(
        database_url=database_url,
        database_pool_size=4,
        mail_outbox_dir=outbox,
        public_base_url=BASE_URL,
        signing_secret="test-signing-secret",  # type: ignore[arg-type]
        # Real Argon2id, cheap parameters: the suite hashes hundreds of times.
        argon2_time_cost=1,
        argon2_memory_cost_kib=8192,
        argon2_parallelism=1,
        # No object storage here; tests/api/test_permits.py checks it against moto's server.
        readyz_s3=False,
    )


_addresses = itertools.count(1)


def new_address() -> str:
    n = next(_addresses)
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:10]}@example.com"


@dataclass
class Api:
    """Builds apps and clients; closes them all at the end of the test."""

    settings: ApiSettings
    apps: list[FastAPI] = field(default_factory=list)
    clients: list[httpx.AsyncClient] = field(default_factory=list)

    def app(self, **overrides: Any) -> FastAPI:
        settings = self.settings.model_copy(update=overrides) if overrides else self.settings
        app = create_app(settings)
        self.apps.append(app)
        return app

    def client(self, app: FastAPI | None = None, address: str | None = None) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(
            app=app or self.default_app,
            client=(address or new_address(), 40000),
            raise_app_exceptions=False,  # the 500 problem document is what we test
        )
        client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
        self.clients.append(client)
        return client

    @property
    def default_app(self) -> FastAPI:
        if not self.apps:
            self.app()
        return self.apps[0]

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        for app in self.apps:
            app.state.services.engine.dispose()


@pytest.fixture
async def api(settings: ApiSettings) -> AsyncIterator[Api]:
    holder = Api(settings)
    try:
        yield holder
    finally:
        await holder.close()


def read_mail(outbox: Path, to: str) -> list[Message]:
    if not outbox.exists():
        return []
    found = []
    for path in sorted(outbox.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes())
        if msg["To"] == to:
            found.append(msg)
    return found


def link_token(msg: Message, path: str) -> str:
    body = msg.get_payload(decode=True)
    assert isinstance(body, bytes)
    match = re.search(re.escape(BASE_URL + path) + r"\?token=(\S+)", body.decode())
    assert match, body
    from urllib.parse import unquote

    return unquote(match.group(1))


async def register_and_verify(
    client: httpx.AsyncClient, outbox: Path, email_address: str | None = None
) -> str:
    address = email_address or unique_email()
    r = await client.post("/v1/auth/register", json={"email": address, "password": PASSWORD})
    assert r.status_code == 202, r.text
    token = link_token(read_mail(outbox, address)[-1], "/v1/auth/verify")
    r = await client.get("/v1/auth/verify", params={"token": token})
    assert r.status_code == 200, r.text
    return address


@dataclass
class User:
    email: str
    client: httpx.AsyncClient  # logged in with cookies
    csrf: str
    token: str  # a second, Bearer session
    id: str

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def login(client: httpx.AsyncClient, email_address: str) -> httpx.Response:
    return await client.post("/v1/auth/login", json={"email": email_address, "password": PASSWORD})


@pytest.fixture
def make_user(api: Api, outbox: Path) -> Callable[..., Any]:
    async def make(role: str = "client") -> User:
        client = api.client()
        address = await register_and_verify(client, outbox)
        if role != "client":
            promote(api.settings.database_url, address, role)
        r = await login(client, address)
        assert r.status_code == 200, r.text
        body = r.json()
        r2 = await client.post(
            "/v1/auth/login",
            json={"email": address, "password": PASSWORD, "issue_bearer": True},
        )
        return User(address, client, body["csrf_token"], r2.json()["token"], body["user"]["id"])

    return make


def promote(database_url: str, address: str, role: str) -> None:
    """What `python -m permisos_api.admin` does to an existing account, on any database."""
    engine = make_engine(ApiSettings(database_url=database_url))
    try:
        with engine.begin() as conn:
            conn.execute(update(models.User).where(models.User.email == address).values(role=role))
    finally:
        engine.dispose()


@pytest.fixture
async def pay(api: Api) -> AsyncIterator[Any]:
    """The payments simulator and the API on a loopback port (see payments_support)."""
    from tests.api import payments_support

    harness = await payments_support.start(api)
    try:
        yield harness
    finally:
        await payments_support.stop(harness)
