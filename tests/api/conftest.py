"""The API against a real PostgreSQL: one fresh database per test session, migrated by Alembic.

Each client gets its own fake client address, so per-address rate limits of one test never touch
another; emails are unique per test for the same reason. The tests of the API's Kubernetes loops
(the dispatcher, the mirror) act as the API's ServiceAccount on the session's control plane
(`cluster`).
"""

from __future__ import annotations

import email
import itertools
import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg.types.json import Json
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session

from permisos.kube import Kube
from permisos_api import models
from permisos_api.app import create_app
from permisos_api.db import make_engine, utcnow
from permisos_api.settings import ApiSettings
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform.accounts import API_ACCOUNT
from tests.accounts import api_kubeconfig, install_crds, refused, through
from tests.cluster import kubectl
from tests.databases import TcpProxy, fresh_database
from tests.namespaces import Namespace

ROOT = Path(__file__).resolve().parents[2]
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
# The personal data of application rows written straight to the database (as the API stores it;
# another address than APPLICATION's, so the mail of an applicant going through the API is theirs).
PERSONAL = {
    "first_name": "Juana",
    "last_name": "Gómez",
    "maternal_surname": "Díaz",
    "curp": CURP,
    "email": "juana.pagada@example.com",
    "phone": "5512345678",
}


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with fresh_database("permisos_test") as url:
        yield url


@pytest.fixture
def engine(settings: ApiSettings) -> Iterator[Engine]:
    """The API's own engine."""
    eng = make_engine(settings)
    try:
        yield eng
    finally:
        eng.dispose()


def paid_applications(engine: Engine, count: int = 1, *, outbox: bool = False) -> list[uuid.UUID]:
    """What a confirmed card payment leaves behind: `count` applications of a new user, marked
    paid, each with its outbox row (the order to create its PermitRequest) if `outbox`."""
    now = utcnow()
    with Session(engine) as session, session.begin():
        user = models.User(email=unique_email("paid"), password_hash="x")
        session.add(user)
        session.flush()
        apps = [
            models.Application(
                owner_id=user.id,
                status="paid",
                plates="JKL4821",
                make="nissan",
                line="versa",
                service_type="particular",
                model_year=2022,
                amount_centavos=150_000,
                paid_at=now,
                payment_method="card",
                **PERSONAL,
            )
            for _ in range(count)
        ]
        session.add_all(apps)
        session.flush()
        if outbox:
            session.add_all(
                models.Outbox(application_id=app.id, kind="permit_request", next_attempt_at=now)
                for app in apps
            )
        return [app.id for app in apps]


def paid_application(engine: Engine, *, outbox: bool = False) -> uuid.UUID:
    return paid_applications(engine, outbox=outbox)[0]


def sql(settings: ApiSettings, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement straight to the PostgreSQL database (autocommit); its rows, if it has any."""
    dsn = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def set_permit(settings: ApiSettings, application_id: str | uuid.UUID, **fields: Any) -> None:
    """What the mirror writes into an application's current permit (`permits`, its row made when
    missing): `phase`, `reason`, `folio`, `artifacts`, ... with the columns' own names."""
    names = list(fields)
    values = [Json(v) if isinstance(v, list | dict) else v for v in fields.values()]
    sql(
        settings,
        f"INSERT INTO permits (id, application_id, retry, request_name, {', '.join(names)}) "
        "SELECT gen_random_uuid(), a.id, a.permit_retries, CASE WHEN a.permit_retries = 0 "
        "THEN a.id::text ELSE a.id::text || '-r' || a.permit_retries END, "
        f"{', '.join(['%s'] * len(names))} FROM applications a WHERE a.id = %s "
        "ON CONFLICT (application_id, retry) DO UPDATE SET "
        + ", ".join(f"{name} = EXCLUDED.{name}" for name in names),
        *values,
        application_id,
    )


T = TypeVar("T")


def at_once(work: Callable[[], T], times: int = 2) -> list[T]:
    """`work` in `times` threads released together (overlapping CronJob runs); their results."""
    results: list[T] = []
    errors: list[BaseException] = []
    start = threading.Barrier(times)

    def run() -> None:
        try:
            start.wait()
            results.append(work())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return results


def command_line(
    module: str, *args: str, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """`python -m <module> <args>` from the repository root, as a CronJob runs it, with `env`
    (its settings) added to this environment."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


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


def mail_text(msg: Message, subtype: str = "plain") -> str:
    """A mail's text (or, with "html", its HTML) part, decoded."""
    for part in msg.walk():
        if part.get_content_type() == f"text/{subtype}":
            body = part.get_payload(decode=True)
            assert isinstance(body, bytes)
            return body.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part in {msg['Subject']!r}")


def link_token(msg: Message, path: str) -> str:
    body = mail_text(msg)
    match = re.search(re.escape(BASE_URL + path) + r"\?token=(\S+)", body)
    assert match, body
    from urllib.parse import unquote

    return unquote(match.group(1))


async def register_and_verify(
    client: httpx.AsyncClient, outbox: Path, email_address: str | None = None
) -> str:
    address = email_address or unique_email()
    r = await client.post("/v1/auth/register", json={"email": address, "password": PASSWORD})
    assert r.status_code == 202, r.text
    token = link_token(read_mail(outbox, address)[-1], "/verificar")
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


# --- Kubernetes: the API's own ServiceAccount on the session's control plane -------------------


@dataclass
class Cluster:
    control_plane: ControlPlane
    namespace: str
    kubeconfig: Path  # the API's ServiceAccount, through the proxy
    proxy: TcpProxy

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{API_ACCOUNT}"

    async def stop(self) -> None:
        """An outage: the API server is unreachable."""
        await self.proxy.stop()

    async def restart(self) -> None:
        """The API server reachable again, at the same address."""
        await self.proxy.start()


@pytest.fixture
async def cluster(
    control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Cluster]:
    """A namespace of the test's own with the API's ServiceAccount, bound to the API's declared
    rules (`permisos_api.rbac`, what the chart grants); `KUBECONFIG` names its token's
    kubeconfig, which reaches the apiserver through a proxy the test can cut."""
    admin = control_plane.admin_kubeconfig
    namespace = f"api-{uuid.uuid4().hex[:8]}"
    await install_crds(admin)
    await kubectl(admin, "create", "namespace", namespace)
    kube = await Kube.from_kubeconfig(admin)
    try:
        direct = await api_kubeconfig(control_plane, kube, namespace, tmp_path)
    finally:
        await kube.close()
    proxy = TcpProxy(("127.0.0.1", control_plane.api_port))
    await proxy.start()
    kubeconfig = through(direct, proxy.port)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    holder = Cluster(control_plane, namespace, kubeconfig, proxy)
    try:
        yield holder
    finally:
        if proxy.server is not None:
            await proxy.stop()
    # Whatever the test did, the API's Role let it: RBAC refused nothing.
    assert refused(control_plane, holder.user) == []


@pytest.fixture
async def kube(cluster: Cluster) -> AsyncIterator[Namespace]:
    """The test's own view, as cluster-admin, of the test's namespace."""
    admin = await Kube.from_kubeconfig(cluster.control_plane.admin_kubeconfig)
    try:
        yield Namespace(admin, cluster.namespace)
    finally:
        await admin.close()
