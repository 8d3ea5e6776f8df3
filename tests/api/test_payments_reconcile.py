"""Reconciliation repairs a missed webhook; the CLI does the same from a shell."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from permisos_api.reconcile import reconcile
from tests.api.conftest import command_line
from tests.api.payments_support import UNREACHABLE, WEBHOOK_SECRET, Pay
from tests.api.test_payments_card import mails_received


async def test_reconcile_repairs_a_missed_webhook(
    pay: Pay, make_user: Callable[..., Any], outbox: Path
) -> None:
    user = await make_user()
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)  # every webhook is lost
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="oxxo")
    intent_id = r.json()["intent_id"]
    pay.sim.pay_oxxo(intent_id)
    await asyncio.sleep(0.2)
    assert (await pay.application(user, app_id))["status"] == "payment_pending"

    services = pay.app.state.services
    factory = pay.app.state.sessionmaker
    # Too recent for a 30-minute threshold: left alone.
    mine = [uuid.UUID(app_id)]
    report = await asyncio.to_thread(
        reconcile, services.settings, factory, services.stripe, application_ids=mine
    )
    assert report.checked == 0
    report = await asyncio.to_thread(
        reconcile,
        services.settings,
        factory,
        services.stripe,
        older_than_minutes=0,
        application_ids=mine,
        mailer=services.mailer,
        metrics=services.metrics,
    )
    assert (report.checked, report.repaired, report.paid, report.errors) == (1, 1, 1, 0)
    app = await pay.application(user, app_id)
    assert app["status"] == "paid" and app["payment_method"] == "oxxo"
    assert len(pay.outbox_rows(app_id)) == 1
    assert len(mails_received(outbox)) == 1
    # Again: nothing left to do.
    report = await asyncio.to_thread(
        reconcile,
        services.settings,
        factory,
        services.stripe,
        older_than_minutes=0,
        application_ids=mine,
    )
    assert report.checked == 0 and report.repaired == 0


async def test_the_reconcile_command_repairs_a_card_challenge_completed_without_webhook(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_threeDSecure2Required")
    pay.sim.complete_3ds(r.json()["intent_id"])
    summary = await pay.reconcile_command(app_id)
    assert summary["checked"] == summary["repaired"] == summary["paid"] == 1
    assert summary["errors"] == 0
    assert (await pay.application(user, app_id))["status"] == "paid"
    assert len(pay.outbox_rows(app_id)) == 1


def test_the_command_says_when_the_database_is_unreachable() -> None:
    """The CronJob's log gets one line and exit code 2, like cleanup's and reminders'."""
    down = command_line(
        "permisos_api.reconcile",
        env={"PERMISOS_API_DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:9/permisos"},
    )
    assert down.returncode == 2, down.stderr
    assert down.stderr.startswith("python -m permisos_api.reconcile: database unreachable")
    assert "Traceback" not in down.stderr and "127.0.0.1:9/permisos" not in down.stderr
