"""The API on a SQLite file, the one-command demo's database: the same public flows as on
PostgreSQL (accounts, applications, payments and webhooks through the payments simulator, the
dispatcher against the Kubernetes API emulator, the operator's mirror, notices, downloads,
reconciliation, admin, ARCO), plus the migrations and what SQLite refuses.

The module's `database_url` replaces the session's PostgreSQL database with a migrated file;
every fixture of conftest.py (the app, its clients, the payments harness) then runs on it.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from lightkube import AsyncClient
from lightkube.resources.core_v1 import Secret
from prometheus_client import CollectorRegistry
from pydantic import SecretStr, ValidationError
from sqlalchemy import Engine, insert, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from permisos_api import admin as admin_cli
from permisos_api.db import Base, make_engine, utcnow
from permisos_api.dispatcher import Dispatcher, DispatcherMetrics
from permisos_api.migrate import upgrade
from permisos_api.models import (
    Application,
    Outbox,
    PaymentEvent,
    User,
)
from permisos_api.reconcile import reconcile
from permisos_api.settings import ApiSettings
from permisos_operator.mirror import Mirror, Snapshot
from tests.api.conftest import APPLICATION, PASSWORD, Api, link_token, login, read_mail
from tests.api.payments_support import UNREACHABLE, WEBHOOK_SECRET, Pay
from tests.api.test_migrations_and_cli import TABLES
from tests.cluster import NS, PermitRequest, as_dict, client

ROOT = Path(__file__).resolve().parents[2]


def sqlite_url(path: Path) -> str:
    return f"sqlite+pysqlite:///{path}"


def migrate_cli(url: str, *args: str) -> None:
    """`python -m permisos_api.migrate ...` as `make run` runs it."""
    env = {**os.environ, "PERMISOS_API_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "permisos_api.migrate", *args],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    # A folder that does not exist yet, like a fresh checkout's var/.
    url = sqlite_url(tmp_path_factory.mktemp("sqlite") / "var" / "permisos.db")
    upgrade(url)
    return url


def application_row(engine: Engine, app_id: str) -> Application:
    with Session(engine) as db:
        app = db.get(Application, uuid.UUID(app_id))
        assert app is not None
        return app


def failed_permit(url: str, app_id: str, name: str | None = None, attempt: int = 1) -> None:
    """The operator's mirror records a PermitRequest that failed for good."""
    mirror = Mirror(url)
    try:
        when = utcnow()
        for phase, n, at in (("Running", attempt, when), ("Failed", attempt, when)):
            assert mirror.record(
                Snapshot(uuid.UUID(app_id), phase, "PortalRejected", None, n, at, name=name)
            )
    finally:
        mirror.close()


# --- the schema -------------------------------------------------------------------------------


def test_migrations_apply_and_revert_on_a_sqlite_file(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "fresh.db")
    migrate_cli(url, "upgrade")
    engine = make_engine(ApiSettings(database_url=url))
    try:
        assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
        with engine.connect() as conn:
            with warnings.catch_warnings():
                # SQLite cannot reflect the expression index lower(email); checked below instead.
                warnings.simplefilter("ignore")
                diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            assert diff == [], diff  # the models and the migrations agree here too
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"

        def user(email: str) -> Any:
            """A user row with every column given (no ORM default involved)."""
            now = utcnow()
            return insert(User).values(
                id=uuid.uuid4(),
                email=email,
                password_hash="x",
                role="client",
                failed_logins=0,
                created_at=now,
                updated_at=now,
            )

        with engine.begin() as conn:
            conn.execute(user("Ana@Example.com"))
        with pytest.raises(IntegrityError), engine.begin() as conn:  # unique on lower(email)
            conn.execute(user("ana@example.COM"))
        with pytest.raises(IntegrityError), engine.begin() as conn:  # foreign keys are enforced
            conn.execute(insert(Outbox).values(application_id=uuid.uuid4(), kind="permit_request"))
    finally:
        engine.dispose()

    # The shipped alembic config goes down to base, the in-process function back up.
    alembic = str(Path(sys.executable).with_name("alembic"))
    env = {**os.environ, "PERMISOS_API_DATABASE_URL": url}
    subprocess.run(
        [alembic, "-c", "api/alembic.ini", "downgrade", "base"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with closing(sqlite3.connect(tmp_path / "fresh.db")) as raw:
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == {"alembic_version"}
    upgrade(url)
    with closing(sqlite3.connect(tmp_path / "fresh.db")) as raw:
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert names == TABLES | {"alembic_version"}


def test_times_round_trip_as_aware_utc_and_server_defaults_are_utc(engine: Engine) -> None:
    user_id = uuid.uuid4()
    mexico = timezone(timedelta(hours=-6))
    locked = datetime(2026, 3, 1, 6, 30, 0, 123456, tzinfo=mexico)
    with Session(engine) as db, db.begin():
        db.add(
            User(id=user_id, email=f"{user_id}@example.com", password_hash="x", locked_until=locked)
        )
    with Session(engine) as db:
        user = db.get(User, user_id)
        assert user is not None and user.locked_until == locked
        assert user.locked_until.tzinfo == UTC and user.locked_until.hour == 12
        # Compared in SQL as well, across zones.
        found = db.scalars(
            select(User.id).where(User.locked_until > datetime(2026, 3, 1, 12, 30, tzinfo=UTC))
        ).all()
        assert user_id in found
        assert (
            user_id
            not in db.scalars(
                select(User.id).where(User.locked_until > datetime(2026, 3, 1, 7, tzinfo=mexico))
            ).all()
        )

    # A row that leaves its times to the database's defaults (no ORM default involved).
    app_id = uuid.uuid4()
    now = utcnow()
    with Session(engine) as db, db.begin():
        db.add(
            Application(
                id=app_id,
                owner_id=user_id,
                **_personal(),
                amount_centavos=1,
                plates="ABC1234",
                make="nissan",
                line="versa",
                service_type="particular",
                model_year=2022,
                vin=None,
            )
        )
    with engine.begin() as conn:
        conn.execute(insert(Outbox.__table__).values(application_id=app_id, kind="x"))
        row = conn.execute(
            select(Outbox.created_at, Outbox.next_attempt_at).where(Outbox.application_id == app_id)
        ).one()
    for moment in row:
        assert moment.tzinfo == UTC and abs(moment - now) < timedelta(seconds=30)


def subject(msg: Message) -> str:
    return str(make_header(decode_header(msg["Subject"])))


def _personal() -> dict[str, Any]:
    return {k: APPLICATION[k] for k in ("first_name", "last_name", "maternal_surname", "curp")} | {
        "email": "juana.gomez@example.com",
        "phone": "5512345678",
    }


def test_production_refuses_sqlite_and_memory_databases_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SQLite is for the one-machine demo"):
        ApiSettings(
            environment="production",
            signing_secret=SecretStr("a-real-secret-from-the-vault"),
            stripe_webhook_secret=SecretStr("whsec_real"),
            database_url=sqlite_url(tmp_path / "prod.db"),
        )
    for url in ("sqlite://", "sqlite+pysqlite:///:memory:"):
        with pytest.raises(ValueError, match="must be a file"):
            make_engine(ApiSettings(database_url=url))


# --- accounts, sessions, limits ---------------------------------------------------------------


async def test_accounts_sessions_rate_limits_and_lockout(
    api: Api, make_user: Callable[..., Any], outbox: Path
) -> None:
    user = await make_user()  # register, verify by the mailed link, log in (cookie and Bearer)
    r = await user.client.get("/v1/auth/session", headers=user.bearer())
    assert r.status_code == 200 and r.json()["user"]["email"] == user.email

    # The same address in another case is the same account (the lower(email) unique index).
    again = api.client()
    r = await again.post(
        "/v1/auth/register", json={"email": user.email.upper(), "password": PASSWORD}
    )
    assert r.status_code == 202
    assert subject(read_mail(outbox, user.email)[-1]).startswith("Ya tienes una cuenta")

    # Five wrong passwords lock the account; the right one is refused while it is locked.
    attacker = api.client()
    for _ in range(5):
        r = await attacker.post(
            "/v1/auth/login", json={"email": user.email, "password": "Equivocada-123"}
        )
        assert r.status_code == 401, r.text
    r = await login(attacker, user.email)
    assert r.status_code == 429 and r.json()["type"].endswith("/account-locked")

    # A password reset lifts the lockout and ends every session.
    r = await api.client().post("/v1/auth/password-reset/request", json={"email": user.email})
    assert r.status_code == 202
    token = link_token(read_mail(outbox, user.email)[-1], "/v1/auth/password-reset/confirm")
    new_password = PASSWORD + "-nueva"
    r = await api.client().post(
        "/v1/auth/password-reset/confirm", json={"token": token, "password": new_password}
    )
    assert r.status_code == 204, r.text
    r = await user.client.get("/v1/auth/session", headers=user.bearer())
    assert r.status_code == 401
    fresh = api.client()
    r = await fresh.post("/v1/auth/login", json={"email": user.email, "password": new_password})
    assert r.status_code == 200, r.text
    csrf = r.json()["csrf_token"]
    r = await fresh.get("/v1/auth/sessions")
    assert r.status_code == 200 and [s["current"] for s in r.json()["items"]] == [True]
    r = await fresh.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert (await fresh.get("/v1/auth/session")).status_code == 401

    # Per-address limits are counted in the database (the upsert on rate_limit_buckets).
    limited = api.client(api.app(register_limit_per_address=2), address="192.0.2.7")
    for n in range(3):
        r = await limited.post(
            "/v1/auth/register", json={"email": f"limit.{n}@example.com", "password": PASSWORD}
        )
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0


# --- applications, payments, the permit loop --------------------------------------------------


async def test_pay_dispatch_mirror_notify_and_download(
    pay: Pay,
    make_user: Callable[..., Any],
    outbox: Path,
    engine: Engine,
    kubeconfig: Path,
    kube: AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await make_user()
    card = await pay.new_application(user)
    r = await user.client.patch(
        f"/v1/applications/{card}", json={"plates": "mno-1234"}, headers=user.bearer()
    )
    assert r.status_code == 200 and r.json()["plates"] == "MNO1234"
    cancelled = await pay.new_application(user)
    r = await user.client.post(f"/v1/applications/{cancelled}/cancel", headers=user.bearer())
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    # A declined card, then a good one: paid at once, and the webhook agrees.
    r = await pay.pay(user, card, method="card", payment_method="pm_card_chargeDeclined")
    assert r.status_code == 402 and r.json()["type"].endswith("/payment-declined")
    assert (await pay.application(user, card))["status"] == "awaiting_payment"
    r = await pay.pay(user, card, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201 and r.json()["application_status"] == "paid", r.text
    intent = r.json()["intent_id"]
    await pay.sim.wait_for_deliveries()
    with Session(engine) as db:
        outcomes = db.execute(
            select(PaymentEvent.type, PaymentEvent.outcome).where(
                PaymentEvent.payment_intent_id == intent
            )
        ).all()
    assert ("payment_intent.succeeded", "applied") in outcomes
    # A redelivered event is recognized by its id.
    [succeeded] = [e for e in pay.events_for(intent) if e["type"] == "payment_intent.succeeded"]
    r = await pay.post_event(succeeded)
    assert r.status_code == 200 and r.json()["outcome"] == "duplicate"

    # OXXO: a voucher, paid at the store later; the webhook marks the application paid.
    oxxo = await pay.new_application(user)
    r = await pay.pay(user, oxxo, method="oxxo")
    assert r.status_code == 201 and r.json()["voucher"]["number"], r.text
    assert (await pay.application(user, oxxo))["status"] == "payment_pending"
    pay.sim.pay_oxxo(r.json()["intent_id"])
    await pay.status_becomes(user, oxxo, "paid")

    # The dispatcher turns both paid applications into PermitRequests with their Secrets.
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    dispatcher = Dispatcher(
        pay.api.settings, engine, DispatcherMetrics(CollectorRegistry()), lambda: client(kubeconfig)
    )
    try:
        assert await dispatcher.run_once() == 2
        for app_id in (card, oxxo):
            request = as_dict(await kube.get(PermitRequest, app_id, namespace=NS))
            assert request["spec"]["applicationId"] == app_id
            secret = as_dict(await kube.get(Secret, f"{app_id}-applicant", namespace=NS))
            assert secret["metadata"]["ownerReferences"][0]["name"] == app_id
            assert application_row(engine, app_id).permit_request == app_id
        assert await dispatcher.run_once() == 0

        # The operator's mirror: one permit issued, the other rejected by the portal.
        mirror = Mirror(pay.api.settings.database_url)
        t0 = utcnow() - timedelta(minutes=1)
        artifacts = tuple(
            tuple(
                sorted(
                    {
                        "kind": kind,
                        "key": f"permits/{card}/{kind}-F-77.pdf",
                        "sha256": "0" * 64,
                        "bytes": 2048,
                    }.items()
                )
            )
            for kind in ("permit", "certificate", "placard")
        )
        try:
            for phase, attempt, seconds in (("Queued", 0, 0), ("Running", 1, 5)):
                for app_id in (card, oxxo):
                    snap = Snapshot(
                        uuid.UUID(app_id),
                        phase,
                        phase,
                        None,
                        attempt,
                        t0 + timedelta(seconds=seconds),
                        name=app_id,
                    )
                    assert mirror.record(snap)
            assert mirror.record(
                Snapshot(
                    uuid.UUID(card),
                    "Succeeded",
                    "PermitIssued",
                    None,
                    1,
                    t0 + timedelta(seconds=9),
                    folio="F-77",
                    artifacts=artifacts,
                    name=card,
                )
            )
            assert mirror.record(
                Snapshot(
                    uuid.UUID(oxxo),
                    "Failed",
                    "PortalRejected",
                    "Las placas ya tienen permiso",
                    1,
                    t0 + timedelta(seconds=9),
                    name=oxxo,
                )
            )
        finally:
            mirror.close()
        assert (await pay.application(user, card))["status"] == "permit_ready"
        assert (await pay.application(user, oxxo))["permit_message"] == (
            "Las placas ya tienen permiso"
        )

        # Notices ride on the dispatcher's pass: one mail per outcome, never twice.
        await dispatcher.run_once()
        await dispatcher.run_once()
    finally:
        await dispatcher.close()
    subjects = [subject(m) for m in read_mail(outbox, APPLICATION["email"])]
    assert subjects.count("Su permiso está listo") == 1
    assert subjects.count("No fue posible obtener su permiso") == 1

    # Downloads: a presigned URL for the owner, recorded in permit_downloads.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    downloads = pay.api.client(pay.api.app(s3_endpoint_url="http://127.0.0.1:9"))
    r = await downloads.get(f"/v1/applications/{card}/permits", headers=user.bearer())
    assert r.status_code == 200 and r.json()["folio"] == "F-77", r.text
    r = await downloads.get(f"/v1/applications/{card}/permits/placard", headers=user.bearer())
    assert r.status_code == 307, r.text
    assert f"/permits/{card}/placard-F-77.pdf" in r.headers["location"]
    r = await downloads.get(f"/v1/applications/{oxxo}/permits/permit", headers=user.bearer())
    assert r.status_code == 409

    # ARCO access: the history and the download are in the export, oldest first.
    r = await user.client.get("/v1/me/export", headers=user.bearer())
    assert r.status_code == 200, r.text
    export = r.json()
    phases = [h["phase"] for h in export["permit_history"] if h["application_id"] == card]
    assert phases == ["Queued", "Running", "Succeeded"]
    assert [d["kind"] for d in export["permit_downloads"]] == ["placard"]
    assert {p["status"] for p in export["payments"]} >= {"succeeded", "requires_payment_method"}


# --- admin ------------------------------------------------------------------------------------


async def test_admin_search_retry_refunds_and_accounts(
    pay: Pay, make_user: Callable[..., Any], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, admin = await make_user(), await make_user("admin")
    h = admin.bearer()
    card = await pay.new_application(owner, email="Dueno.Tarjeta@Example.com")
    r = await pay.pay(owner, card, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201, r.text
    # The simulator answers the API's confirming read on this test's event loop: let its
    # webhook finish before blocking the loop on the database.
    await pay.sim.wait_for_deliveries()
    failed_permit(pay.api.settings.database_url, card, name=None)

    r = await admin.client.get(
        "/v1/admin/applications", params={"email": "dueno.tarjeta@example.COM"}, headers=h
    )
    assert r.status_code == 200 and [a["id"] for a in r.json()["items"]] == [card], r.text
    r = await admin.client.get(f"/v1/admin/applications/{card}", headers=h)
    assert r.status_code == 200
    assert [e["phase"] for e in r.json()["permit_history"]] == ["Running", "Failed"]

    # A retry is a new PermitRequest, queued in the outbox in the same transaction.
    r = await admin.client.post(f"/v1/admin/applications/{card}/retry-permit", headers=h)
    assert r.status_code == 202 and r.json()["permit_request"] == f"{card}-r1", r.text
    with Session(engine) as db:
        kinds = db.scalars(select(Outbox.kind).where(Outbox.application_id == uuid.UUID(card)))
        assert sorted(kinds) == ["permit_request", "permit_request_r1"]
    # The old PermitRequest cannot move the application any more; the retry's can.
    failed_permit(pay.api.settings.database_url, card, name=card, attempt=2)
    assert (await pay.application(owner, card))["status"] == "paid"
    failed_permit(pay.api.settings.database_url, card, name=f"{card}-r1")
    assert (await pay.application(owner, card))["status"] == "permit_failed"

    # A card is refunded through Stripe; an OXXO payment is flagged and refunded by hand.
    r = await admin.client.post(f"/v1/admin/applications/{card}/refund", headers=h)
    assert r.status_code == 200 and r.json()["outcome"] == "refunded", r.text
    assert (await pay.application(owner, card))["status"] == "refunded"
    oxxo = await pay.new_application(owner)
    r = await pay.pay(owner, oxxo, method="oxxo")
    pay.sim.pay_oxxo(r.json()["intent_id"])
    await pay.status_becomes(owner, oxxo, "paid")
    failed_permit(pay.api.settings.database_url, oxxo)
    r = await admin.client.post(f"/v1/admin/applications/{oxxo}/refund", headers=h)
    assert r.status_code == 202 and r.json()["outcome"] == "manual_refund_required", r.text
    r = await admin.client.get("/v1/admin/refunds/manual", headers=h)
    [flagged] = [p for p in r.json()["items"] if p["application_id"] == oxxo]
    r = await admin.client.post(f"/v1/admin/payments/{flagged['id']}/manual-refund", headers=h)
    assert r.status_code == 200 and r.json()["refunded_at"], r.text
    assert (await pay.application(owner, oxxo))["status"] == "refunded"

    # Disabling ends the owner's sessions; enabling lets them log in again.
    r = await admin.client.post(f"/v1/admin/users/{owner.id}/disable", headers=h)
    assert r.status_code == 200 and r.json()["disabled_at"]
    assert (await owner.client.get("/v1/auth/session", headers=owner.bearer())).status_code == 401
    r = await admin.client.post(f"/v1/admin/users/{owner.id}/enable", headers=h)
    assert r.status_code == 200 and r.json()["disabled_at"] is None
    assert (await login(pay.api.client(), owner.email)).status_code == 200

    # The bootstrap command (a Helm hook in production) on the same file.
    monkeypatch.setenv("PERMISOS_API_DATABASE_URL", pay.api.settings.database_url)
    monkeypatch.setenv("PERMISOS_ADMIN_PASSWORD", PASSWORD)
    boss = f"Jefa.{uuid.uuid4().hex[:8]}@example.com"
    assert admin_cli.main(["create-admin", boss, "--role", "superadmin"]) == 0
    r = await pay.api.client().post(
        "/v1/auth/login", json={"email": boss.lower(), "password": PASSWORD}
    )
    assert r.status_code == 200 and r.json()["user"]["role"] == "superadmin", r.text


# --- reconciliation ---------------------------------------------------------------------------


async def test_reconcile_repairs_missed_webhooks_and_expires_lapsed_vouchers(
    pay: Pay, make_user: Callable[..., Any], engine: Engine
) -> None:
    user = await make_user()
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)  # every webhook is lost
    paid, lapsed = await pay.new_application(user), await pay.new_application(user)
    paid_intent = (await pay.pay(user, paid, method="oxxo")).json()["intent_id"]
    lapsed_intent = (await pay.pay(user, lapsed, method="oxxo")).json()["intent_id"]
    pay.sim.pay_oxxo(paid_intent)
    pay.sim.expire_oxxo(lapsed_intent)

    summary = await pay.reconcile_command(paid, lapsed)  # a process of its own on the file
    assert (summary["checked"], summary["repaired"], summary["paid"]) == (2, 2, 1), summary
    assert (await pay.application(user, paid))["status"] == "paid"
    assert (await pay.application(user, lapsed))["status"] == "awaiting_payment"

    # Past the grace days, the abandoned application expires (in process, with a later clock).
    services = pay.app.state.services
    report = await asyncio.to_thread(
        reconcile,
        services.settings,
        pay.app.state.sessionmaker,
        services.stripe,
        application_ids=[uuid.UUID(lapsed)],
        now=utcnow() + timedelta(days=services.settings.oxxo_expired_application_grace_days + 1),
    )
    assert report.expired_applications >= 1
    assert (await pay.application(user, lapsed))["status"] == "expired"


# --- ARCO cancellation ------------------------------------------------------------------------


async def test_account_deletion_anonymizes_and_waits_for_work_in_flight(
    api: Api, make_user: Callable[..., Any], engine: Engine
) -> None:
    user = await make_user()
    r = await user.client.post("/v1/applications", json=APPLICATION, headers=user.bearer())
    app_id = r.json()["id"]
    with engine.begin() as conn:
        conn.execute(
            update(Application).where(Application.id == uuid.UUID(app_id)).values(status="paid")
        )
    delete = {"password": PASSWORD}
    r = await user.client.request("DELETE", "/v1/me", json=delete, headers=user.bearer())
    assert r.status_code == 409, r.text
    with engine.begin() as conn:
        conn.execute(
            update(Application)
            .where(Application.id == uuid.UUID(app_id))
            .values(status="permit_ready")
        )
    r = await user.client.request(
        "DELETE", "/v1/me", json={"password": "no-es-la-buena"}, headers=user.bearer()
    )
    assert r.status_code == 401
    r = await user.client.request("DELETE", "/v1/me", json=delete, headers=user.bearer())
    assert r.status_code == 204, r.text
    assert (await login(api.client(), user.email)).status_code == 401
    app = application_row(engine, app_id)
    assert app.anonymized_at is not None and app.anonymized_at.tzinfo == UTC
    assert (app.first_name, app.curp, app.email) == (
        "ELIMINADO",
        "XXXX000000XXXXXX00",
        "eliminado@invalid",
    )
    assert app.plates == "JKL4821"  # the vehicle stays (fiscal records)
    with Session(engine) as db:
        stored = db.get(User, uuid.UUID(user.id))
        assert stored is not None and stored.email.startswith("deleted-")
