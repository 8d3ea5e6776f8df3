"""`python -m permisos_api.reminders`: one mail per permit that expires soon, and the migration.

Permits are issued the way production issues them: the application is paid, then the API's
phase mirror records the PermitRequest's `Succeeded` transition (its time is the issue time).
Each test has its own database, so the counts the command reports are exactly the test's rows.
"""

from __future__ import annotations

import email.header
import itertools
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import create_engine, insert, inspect, select

from permisos_api.db import Base, make_engine, make_sessionmaker
from permisos_api.es_mx import MEXICO_CITY
from permisos_api.mail import Mailer
from permisos_api.migrate import downgrade, upgrade
from permisos_api.mirror import Snapshot, record
from permisos_api.reminders import send_reminders
from permisos_api.settings import ApiSettings
from tests.api.conftest import (
    APPLICATION,
    BASE_URL,
    at_once,
    command_line,
    mail_text,
    read_mail,
    sql,
)
from tests.databases import fresh_database

MONTHS = "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre"
REMINDER_COLUMNS = {"expiry_reminder_claimed_at", "expiry_reminder_sent_at"}
_folios = itertools.count(1)


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of this test's own (overrides the session-wide one of conftest)."""
    with fresh_database("permisos_test_reminders") as url:
        yield url


def run_reminders(settings: ApiSettings, **kwargs: Any) -> Any:
    engine = make_engine(settings)
    try:
        return send_reminders(settings, make_sessionmaker(engine), Mailer(settings), **kwargs)
    finally:
        engine.dispose()


class Permits:
    """Issues permits for one user's applications, each to its own applicant address."""

    def __init__(self, settings: ApiSettings, user: Any) -> None:
        self.settings = settings
        self.user = user
        self.engine = make_engine(settings)

    async def issued(self, ago: timedelta, *, phase: str = "Succeeded") -> tuple[str, str]:
        """A paid application whose PermitRequest reached `phase` `ago`; (id, applicant email)."""
        address = f"titular.{uuid.uuid4().hex[:10]}@example.com"
        r = await self.user.client.post(
            "/v1/applications", json={**APPLICATION, "email": address}, headers=self.user.bearer()
        )
        assert r.status_code == 201, r.text
        app_id = str(r.json()["id"])
        paid_at = datetime.now(UTC) - ago - timedelta(minutes=5)
        sql(
            self.settings,
            "UPDATE applications SET status = 'paid', paid_at = %s, payment_method = 'card' "
            "WHERE id = %s",
            paid_at,
            app_id,
        )
        folio = f"PC-2026-{next(_folios):06d}" if phase == "Succeeded" else None
        recorded = record(
            self.engine,
            Snapshot(
                application_id=uuid.UUID(app_id),
                phase=phase,
                reason="PermitIssued" if phase == "Succeeded" else "PortalRejected",
                message=None,
                attempt=1,
                transitioned_at=datetime.now(UTC) - ago,
                folio=folio,
                name=app_id,
            ),
        )
        assert recorded
        return app_id, address

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
async def permits(settings: ApiSettings, make_user: Callable[..., Any]) -> Any:
    holder = Permits(settings, await make_user())
    yield holder
    holder.close()


def reminders_to(outbox: Path, address: str) -> list[Message]:
    return [
        m
        for m in read_mail(outbox, address)
        if "vence" in str(email.header.make_header(email.header.decode_header(m["Subject"])))
    ]


def text(msg: Message) -> tuple[str, str]:
    subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
    return subject, mail_text(msg)


def spanish_date(moment: datetime) -> str:
    day = moment.astimezone(MEXICO_CITY).date()
    return f"{day.day} de {MONTHS.split()[day.month - 1]} de {day.year}"


def reminder_state(settings: ApiSettings, app_id: str) -> tuple[Any, Any]:
    ((claimed, sent),) = sql(
        settings,
        "SELECT expiry_reminder_claimed_at, expiry_reminder_sent_at FROM applications "
        "WHERE id = %s",
        app_id,
    )
    return claimed, sent


async def test_one_reminder_per_permit_expiring_within_the_window(
    permits: Permits, settings: ApiSettings, outbox: Path
) -> None:
    due_soon, due_soon_to = await permits.issued(timedelta(days=27))  # expires in 3 days
    edge, edge_to = await permits.issued(timedelta(days=25, hours=1))  # in 4 days 23 hours
    quiet = {
        "far": await permits.issued(timedelta(days=10)),
        "just outside": await permits.issued(timedelta(days=24)),  # in 6 days
        "already expired": await permits.issued(timedelta(days=31)),
        "failed": await permits.issued(timedelta(days=27), phase="Failed"),
        "anonymized": await permits.issued(timedelta(days=27)),
        "already reminded": await permits.issued(timedelta(days=27)),
    }
    sql(
        settings,
        "UPDATE applications SET anonymized_at = now() WHERE id = %s",
        quiet["anonymized"][0],
    )
    reminded_at = datetime.now(UTC) - timedelta(days=1)
    sql(
        settings,
        "UPDATE applications SET expiry_reminder_sent_at = %s WHERE id = %s",
        reminded_at,
        quiet["already reminded"][0],
    )

    report = run_reminders(settings)

    assert (report.due, report.sent, report.mail_errors) == (2, 2, 0)
    for app_id, address, ago in (
        (due_soon, due_soon_to, timedelta(days=27)),
        (edge, edge_to, timedelta(days=25, hours=1)),
    ):
        [msg] = reminders_to(outbox, address)
        subject, body = text(msg)
        ((issued_at, folio),) = sql(
            settings, "SELECT updated_at, folio FROM permits WHERE application_id = %s", app_id
        )
        assert abs(issued_at - (datetime.now(UTC) - ago)) < timedelta(minutes=5)
        expires = spanish_date(issued_at + timedelta(days=30))
        assert subject == f"Tu permiso vence el {expires} — Permisos Digitales"
        assert f"Hola {APPLICATION['first_name']}:" in body
        assert f"placas JKL4821 (folio {folio}) vence el {expires}." in body
        assert f"{BASE_URL}/solicitudes/{app_id}" in body
        assert f"{BASE_URL}/solicitudes/nueva" in body
        assert "solicita un nuevo permiso" in body
        # Only what the reminder needs: no CURP, no phone.
        assert APPLICATION["curp"] not in body and "5512345678" not in body
        claimed, sent = reminder_state(settings, app_id)
        assert claimed is not None and sent is not None
    for name, (_, address) in quiet.items():
        assert reminders_to(outbox, address) == [], name
    assert reminder_state(settings, quiet["already reminded"][0])[1] == reminded_at
    assert reminder_state(settings, quiet["far"][0]) == (None, None)

    # A second run (the next day's CronJob) sends nothing more.
    again = run_reminders(settings)
    assert (again.due, again.sent) == (0, 0)
    assert len(reminders_to(outbox, due_soon_to)) == 1
    assert len(reminders_to(outbox, edge_to)) == 1

    # Days later the far one enters the window: it gets its one reminder then.
    later = run_reminders(settings, now=datetime.now(UTC) + timedelta(days=16))
    assert later.sent == 1
    assert len(reminders_to(outbox, quiet["far"][1])) == 1


async def test_dry_run_counts_and_sends_nothing(
    permits: Permits, settings: ApiSettings, outbox: Path
) -> None:
    _, address = await permits.issued(timedelta(days=28))
    await permits.issued(timedelta(days=3))
    before = sql(settings, "SELECT * FROM applications ORDER BY id")

    report = run_reminders(settings, dry_run=True)
    assert report.dry_run and (report.due, report.sent) == (1, 0)
    assert reminders_to(outbox, address) == []
    assert sql(settings, "SELECT * FROM applications ORDER BY id") == before

    assert run_reminders(settings).sent == 1
    assert len(reminders_to(outbox, address)) == 1


async def test_two_runs_at_once_send_no_duplicate(
    permits: Permits, settings: ApiSettings, outbox: Path
) -> None:
    issued = [await permits.issued(timedelta(days=26, hours=i)) for i in range(12)]
    small_batches = settings.model_copy(update={"reminder_batch_size": 2})
    reports = at_once(lambda: run_reminders(small_batches))
    assert sum(r.sent for r in reports) == 12
    for _, address in issued:
        assert len(reminders_to(outbox, address)) == 1, address
    assert sql(
        settings, "SELECT count(*) FROM applications WHERE expiry_reminder_sent_at IS NOT NULL"
    ) == [(12,)]


async def test_a_mail_outage_gives_the_reminder_back_for_the_next_run(
    permits: Permits, settings: ApiSettings, outbox: Path
) -> None:
    app_id, address = await permits.issued(timedelta(days=27))
    # An SMTP server that is not there (the discard port): the send fails at once.
    no_smtp = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": 9})
    report = run_reminders(no_smtp)
    assert (report.sent, report.mail_errors) == (0, 1)
    assert reminder_state(settings, app_id) == (None, None)

    assert run_reminders(settings).sent == 1
    assert len(reminders_to(outbox, address)) == 1


async def test_a_crashed_runs_claim_lapses_after_its_lease(
    permits: Permits, settings: ApiSettings, outbox: Path
) -> None:
    app_id, address = await permits.issued(timedelta(days=27))
    # Another run claimed it a minute ago and may be mailing right now: leave it.
    claimed = datetime.now(UTC) - timedelta(minutes=1)
    sql(
        settings,
        "UPDATE applications SET expiry_reminder_claimed_at = %s WHERE id = %s",
        claimed,
        app_id,
    )
    assert run_reminders(settings).sent == 0
    assert reminders_to(outbox, address) == []
    # That run died: after the lease the reminder goes out.
    stale = datetime.now(UTC) - timedelta(minutes=20)
    sql(
        settings,
        "UPDATE applications SET expiry_reminder_claimed_at = %s WHERE id = %s",
        stale,
        app_id,
    )
    assert run_reminders(settings).sent == 1
    assert len(reminders_to(outbox, address)) == 1


async def test_validity_and_window_come_from_the_settings(
    permits: Permits, settings: ApiSettings, outbox: Path
) -> None:
    sixty = settings.model_copy(update={"permit_validity_days": 60, "expiry_reminder_days": 10})
    _, not_yet_to = await permits.issued(timedelta(days=27))  # 33 days left of 60
    due, due_to = await permits.issued(timedelta(days=52))  # 8 days left
    report = run_reminders(sixty)
    assert (report.validity_days, report.reminder_days, report.sent) == (60, 10, 1)
    [msg] = reminders_to(outbox, due_to)
    ((issued_at,),) = sql(settings, "SELECT updated_at FROM permits WHERE application_id = %s", due)
    assert spanish_date(issued_at + timedelta(days=60)) in text(msg)[0]
    assert reminders_to(outbox, not_yet_to) == []

    # A window as long as the validity would remind every permit the day it is issued.
    with pytest.raises(ValidationError, match="EXPIRY_REMINDER_DAYS"):
        ApiSettings(permit_validity_days=5, expiry_reminder_days=5)


def cli(url: str, outbox: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PERMISOS_API_DATABASE_URL": url,
        "PERMISOS_API_MAIL_OUTBOX_DIR": str(outbox),
        "PERMISOS_API_PUBLIC_BASE_URL": BASE_URL,
    }
    return command_line("permisos_api.reminders", *args, env=env)


async def test_command_line(permits: Permits, settings: ApiSettings, outbox: Path) -> None:
    _, address = await permits.issued(timedelta(days=27))
    dry = cli(settings.database_url, outbox, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert '"due": 1' in dry.stdout and '"sent": 0' in dry.stdout
    assert reminders_to(outbox, address) == []

    real = cli(settings.database_url, outbox)
    assert real.returncode == 0, real.stderr
    assert '"sent": 1' in real.stdout
    assert len(reminders_to(outbox, address)) == 1
    # No personal data in what the command prints or logs.
    for value in (address, APPLICATION["curp"], APPLICATION["first_name"]):
        assert value not in real.stdout + real.stderr

    down = cli("postgresql+psycopg://postgres@127.0.0.1:9/permisos", outbox)
    assert down.returncode == 2
    assert "database unreachable" in down.stderr and "Traceback" not in down.stderr


def columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("applications")}
    finally:
        engine.dispose()


def permit_of(url: str, app_id: uuid.UUID) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            apps = Base.metadata.tables["applications"]
            return conn.scalar(select(apps.c.status).where(apps.c.id == app_id))
    finally:
        engine.dispose()


def reminder_columns_of(url: str, app_id: uuid.UUID) -> tuple[Any, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            apps = Base.metadata.tables["applications"]
            row = conn.execute(
                select(apps.c.expiry_reminder_claimed_at, apps.c.expiry_reminder_sent_at).where(
                    apps.c.id == app_id
                )
            ).one()
            return row[0], row[1]
    finally:
        engine.dispose()


def test_migration_0005_upgrades_and_downgrades() -> None:
    with fresh_database("permisos_test_mig5", migrate=False) as url:
        upgrade(url, "0004")
        assert not REMINDER_COLUMNS & columns(url)
        # A permit issued before the upgrade, written with the columns 0004 knows.
        app_id = uuid.uuid4()
        fields = {k: v for k, v in APPLICATION.items() if k not in ("phone", "plates")}
        engine = create_engine(url)
        with engine.begin() as conn:
            owner = uuid.uuid4()
            conn.execute(
                insert(Base.metadata.tables["users"]).values(
                    id=owner, email="mig@example.com", password_hash="x", role="client"
                )
            )
            conn.execute(
                insert(Base.metadata.tables["applications"]).values(
                    id=app_id,
                    owner_id=owner,
                    status="permit_ready",
                    phone="5512345678",
                    plates="JKL4821",
                    amount_centavos=150_000,
                    **fields,
                )
            )
        engine.dispose()

        upgrade(url)
        assert columns(url) >= REMINDER_COLUMNS
        engine = create_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        engine.dispose()
        assert diff == [], diff  # the model's new columns are the migration's

        assert reminder_columns_of(url, app_id) == (None, None)

        downgrade(url, "0004")
        assert not REMINDER_COLUMNS & columns(url)
        assert permit_of(url, app_id) == "permit_ready"  # the data survives the way down
        upgrade(url)
        assert columns(url) >= REMINDER_COLUMNS
        assert reminder_columns_of(url, app_id) == (None, None)
