"""`python -m permisos_api.cleanup`: abandoned, never-paid applications lose their personal data.

Each test has its own database (migrated by Alembic), so the counts the command reports are
exactly the rows the test made.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from permisos_api.cleanup import cleanup
from permisos_api.db import make_engine, make_sessionmaker
from permisos_api.privacy import PLACEHOLDERS
from permisos_api.settings import ApiSettings
from tests.api.conftest import APPLICATION, CURP, ROOT, at_once, command_line, sql
from tests.api.payments_support import Pay
from tests.databases import fresh_database

LONG_AGO = timedelta(days=40)  # beyond the default retention of 30 days


@pytest.fixture
def database_url() -> Iterator[str]:
    """A database of this test's own (overrides the session-wide one of conftest)."""
    with fresh_database("permisos_test_cleanup") as url:
        yield url


def run_cleanup(settings: ApiSettings, **kwargs: Any) -> Any:
    engine = make_engine(settings)
    try:
        return cleanup(settings, make_sessionmaker(engine), **kwargs)
    finally:
        engine.dispose()


async def new_application(user: Any, **changes: Any) -> str:
    r = await user.client.post(
        "/v1/applications", json={**APPLICATION, **changes}, headers=user.bearer()
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def set_state(settings: ApiSettings, app_id: str, idle: timedelta, **columns: Any) -> None:
    """Puts the application in a state and makes it (and its payments) idle for `idle`."""
    when = datetime.now(UTC) - idle
    assignments = ", ".join(f"{name} = %s" for name in columns)
    sql(
        settings,
        f"UPDATE applications SET {assignments}{', ' if columns else ''}updated_at = %s "
        "WHERE id = %s",
        *columns.values(),
        when,
        app_id,
    )
    sql(settings, "UPDATE payments SET updated_at = %s WHERE application_id = %s", when, app_id)


def add_payment(settings: ApiSettings, app_id: str, status: str, **columns: Any) -> str:
    intent = f"pi_{uuid.uuid4().hex[:20]}"
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "application_id": app_id,
        "method": "card",
        "stripe_payment_intent_id": intent,
        "idempotency_key": f"key-{intent}",
        "status": status,
        "amount_centavos": 150_000,
        "created_at": datetime.now(UTC),
        "updated_at": datetime.now(UTC),
        **columns,
    }
    sql(
        settings,
        f"INSERT INTO payments ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
        *row.values(),
    )
    return intent


def personal_data(settings: ApiSettings, app_id: str) -> dict[str, Any]:
    ((status, first, last, maternal, curp, email, phone, plates, anonymized_at),) = sql(
        settings,
        "SELECT status, first_name, last_name, maternal_surname, curp, email, phone, plates, "
        "anonymized_at FROM applications WHERE id = %s",
        app_id,
    )
    return {
        "status": status,
        "first_name": first,
        "last_name": last,
        "maternal_surname": maternal,
        "curp": curp,
        "email": email,
        "phone": phone,
        "plates": plates,
        "anonymized_at": anonymized_at,
    }


def assert_erased(settings: ApiSettings, app_id: str, status: str) -> None:
    row = personal_data(settings, app_id)
    assert row["anonymized_at"] is not None, app_id
    assert {k: row[k] for k in PLACEHOLDERS} == PLACEHOLDERS
    assert row["status"] == status
    # The vehicle stays, as with the account deletion.
    assert row["plates"] == "JKL4821"


def assert_kept(settings: ApiSettings, app_id: str, status: str) -> None:
    row = personal_data(settings, app_id)
    assert row["anonymized_at"] is None, app_id
    assert row["curp"] == CURP and row["first_name"] == APPLICATION["first_name"]
    assert row["status"] == status


async def test_erases_what_was_never_paid_and_idle_and_keeps_everything_else(
    settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    old = datetime.now(UTC) - LONG_AGO

    # Abandoned: erased.
    draft = await new_application(user)
    set_state(settings, draft, LONG_AGO)
    cancelled = await new_application(user)
    set_state(settings, cancelled, LONG_AGO, status="cancelled", cancelled_at=old)
    lapsed_oxxo = await new_application(user)
    add_payment(settings, lapsed_oxxo, "expired", method="oxxo", last_error_code="expired")
    set_state(settings, lapsed_oxxo, LONG_AGO, status="expired")

    # Not abandoned, or not long enough: kept.
    recent_draft = await new_application(user)
    set_state(settings, recent_draft, timedelta(days=29))
    # Idle application, but its payment moved a week ago.
    recent_payment = await new_application(user)
    add_payment(settings, recent_payment, "requires_payment_method", last_error_code="x")
    set_state(settings, recent_payment, LONG_AGO, status="awaiting_payment")
    sql(
        settings,
        "UPDATE payments SET updated_at = %s WHERE application_id = %s",
        datetime.now(UTC) - timedelta(days=7),
        recent_payment,
    )
    # Paid, in every later status: money was accepted, never touched.
    paid_ones = {}
    for status in ("paid", "permit_ready", "permit_failed", "refunded"):
        app_id = await new_application(user)
        add_payment(settings, app_id, "succeeded", succeeded_at=old)
        set_state(settings, app_id, timedelta(days=400), status=status, paid_at=old)
        paid_ones[app_id] = status
    # Money that arrived after the applicant cancelled: a refund is owed, the data stays.
    refund_owed = await new_application(user)
    add_payment(settings, refund_owed, "succeeded", succeeded_at=old, manual_refund_required=True)
    set_state(settings, refund_owed, LONG_AGO, status="cancelled", cancelled_at=old)
    # An OXXO voucher still open (in flight, as for the account deletion).
    pending = await new_application(user)
    add_payment(settings, pending, "requires_action", method="oxxo")
    set_state(settings, pending, LONG_AGO, status="payment_pending")

    report = run_cleanup(settings)

    assert report.erased == 3
    assert report.by_status == {"draft": 1, "cancelled": 1, "expired": 1}
    # An erased draft can no longer be edited or paid: it is expired.
    assert_erased(settings, draft, "expired")
    assert_erased(settings, cancelled, "cancelled")
    assert_erased(settings, lapsed_oxxo, "expired")
    assert_kept(settings, recent_draft, "draft")
    assert_kept(settings, recent_payment, "awaiting_payment")
    for app_id, status in paid_ones.items():
        assert_kept(settings, app_id, status)
    assert_kept(settings, refund_owed, "cancelled")
    assert_kept(settings, pending, "payment_pending")
    # Payment records are fiscal records: kept, erased application or not.
    assert sql(settings, "SELECT status FROM payments WHERE application_id = %s", lapsed_oxxo) == [
        ("expired",)
    ]

    # What the applicant sees: the erased application, expired, without their data.
    r = await user.client.get(f"/v1/applications/{draft}", headers=user.bearer())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "expired"
    assert body["curp"] != CURP and body["email"] == PLACEHOLDERS["email"]
    r = await user.client.patch(
        f"/v1/applications/{draft}", json={"first_name": "Otra"}, headers=user.bearer()
    )
    assert r.status_code == 409, r.text
    r = await user.client.post(
        f"/v1/applications/{draft}/payments", json={"method": "oxxo"}, headers=user.bearer()
    )
    assert r.status_code == 409, r.text
    # The account itself is untouched: the applicant still works with it.
    r = await user.client.get(f"/v1/applications/{recent_draft}", headers=user.bearer())
    assert r.status_code == 200 and r.json()["curp"] == CURP

    # Idempotent: the second run finds nothing, and the first erasure's time stays.
    first_erasure = personal_data(settings, draft)["anonymized_at"]
    again = run_cleanup(settings)
    assert again.erased == 0 and again.by_status == {}
    assert personal_data(settings, draft)["anonymized_at"] == first_erasure


async def test_real_payments_paid_card_kept_declined_card_erased(
    pay: Pay, settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    paid = await pay.new_application(user)
    r = await pay.pay(user, paid, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201 and r.json()["application_status"] == "paid", r.text
    declined = await pay.new_application(user)
    r = await pay.pay(user, declined, method="card", payment_method="pm_card_chargeDeclined")
    assert r.status_code == 402, r.text
    await pay.sim.wait_for_deliveries()  # the webhooks are in too

    # A month and more later, nothing happened to either.
    for app_id in (paid, declined):
        set_state(settings, app_id, LONG_AGO)

    report = run_cleanup(settings)
    assert report.erased == 1 and report.by_status == {"awaiting_payment": 1}
    assert_erased(settings, declined, "expired")
    assert_kept(settings, paid, "paid")
    # The declined payment and its Stripe events stay, pointing at the erased application.
    assert sql(
        settings,
        "SELECT status, last_error_code FROM payments WHERE application_id = %s",
        declined,
    ) == [("requires_payment_method", "card_declined")]
    assert (
        sql(settings, "SELECT count(*) FROM payment_events WHERE application_id = %s", declined)[0][
            0
        ]
        >= 1
    )


async def test_dry_run_counts_and_changes_nothing(
    settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    ids = [await new_application(user) for _ in range(3)]
    for app_id in ids:
        set_state(settings, app_id, LONG_AGO)
    set_state(settings, ids[2], LONG_AGO, status="cancelled")
    before = sql(settings, "SELECT * FROM applications ORDER BY id")

    report = run_cleanup(settings, dry_run=True)
    assert report.dry_run and report.erased == 3 and report.batches == 0
    assert report.by_status == {"draft": 2, "cancelled": 1}
    assert sql(settings, "SELECT * FROM applications ORDER BY id") == before

    # The real run erases what the dry run counted, in batches of the configured size.
    report = run_cleanup(settings.model_copy(update={"cleanup_batch_size": 2}))
    assert report.erased == 3 and report.batches == 2
    for app_id in ids[:2]:
        assert_erased(settings, app_id, "expired")
    assert_erased(settings, ids[2], "cancelled")


async def test_retention_comes_from_the_setting(
    settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await new_application(user)
    set_state(settings, app_id, timedelta(days=10))
    assert run_cleanup(settings).erased == 0  # default 30 days
    assert run_cleanup(settings.model_copy(update={"abandoned_retention_days": 7})).erased == 1
    assert_erased(settings, app_id, "expired")


async def test_two_runs_at_once_erase_each_application_once(
    settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    template = await new_application(user)
    set_state(settings, template, LONG_AGO)
    # 59 more copies of the abandoned draft, straight in SQL (the API would take a while).
    sql(
        settings,
        "INSERT INTO applications (id, owner_id, status, first_name, last_name, "
        "maternal_surname, curp, email, phone, plates, make, line, service_type, model_year, vin, "
        "amount_centavos, currency, created_at, updated_at) "
        "SELECT gen_random_uuid(), owner_id, status, first_name, last_name, maternal_surname, "
        "curp, email, phone, plates, make, line, service_type, model_year, vin, "
        "amount_centavos, currency, created_at, updated_at "
        "FROM applications, generate_series(1, 59) WHERE id = %s",
        template,
    )
    small_batches = settings.model_copy(update={"cleanup_batch_size": 4})
    reports = at_once(lambda: run_cleanup(small_batches))
    assert sum(r.erased for r in reports) == 60
    assert sql(settings, "SELECT count(*) FROM applications WHERE anonymized_at IS NULL") == [(0,)]
    assert sql(settings, "SELECT DISTINCT curp FROM applications") == [(PLACEHOLDERS["curp"],)]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PERMISOS_API_DATABASE_URL": url, "PERMISOS_API_LOG_LEVEL": "INFO"}
    return command_line("permisos_api.cleanup", *args, env=env)


async def test_command_line_exit_codes_and_counts_only_output(
    settings: ApiSettings, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await new_application(user)
    set_state(settings, app_id, LONG_AGO)

    dry = cli(settings.database_url, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert '"erased": 1' in dry.stdout and '"dry_run": true' in dry.stdout
    assert_kept(settings, app_id, "draft")

    real = cli(settings.database_url)
    assert real.returncode == 0, real.stderr
    assert '"erased": 1' in real.stdout and '"draft": 1' in real.stdout
    assert_erased(settings, app_id, "expired")
    # Counts only: nothing of the person, nor an id, in what the command prints or logs.
    output = real.stdout + real.stderr + dry.stdout + dry.stderr
    for value in (CURP, APPLICATION["email"], APPLICATION["first_name"], app_id, user.email):
        assert value not in output

    down = cli("postgresql+psycopg://postgres@127.0.0.1:9/permisos")  # the discard port
    assert down.returncode == 2
    assert "database unreachable" in down.stderr
    assert "Traceback" not in down.stderr


def test_imports_no_web_framework() -> None:
    """The CronJob's start-up: the erasure comes from `permisos_api.privacy`, not the routes, so
    neither FastAPI nor Starlette is imported (a fresh interpreter: this one has the app)."""
    code = (
        "import sys\n"
        "import permisos_api.cleanup\n"
        "loaded = [m for m in sys.modules\n"
        "          if m.split('.')[0] in ('fastapi', 'starlette') or m == 'permisos_api.routes'\n"
        "          or m.startswith('permisos_api.routes.')]\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
