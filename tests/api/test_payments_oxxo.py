"""OXXO through the simulator: voucher, payment at the store, expiry and abandoned applications."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from permisos_api.payments.service import expire_abandoned_applications
from tests.api.conftest import APPLICATION, CURP, mail_text, read_mail
from tests.api.payments_support import UNREACHABLE, WEBHOOK_SECRET, Pay, eventually
from tests.api.test_payments_card import mails_received


async def test_oxxo_voucher_paid_at_the_store_is_paid_with_one_outbox_row(
    pay: Pay, make_user: Callable[..., Any], outbox: Path
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    before = datetime.now(UTC)
    r = await pay.pay(user, app_id, method="oxxo")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "requires_action" and body["application_status"] == "payment_pending"
    voucher = body["voucher"]
    assert voucher["number"].isdigit() and len(voucher["number"]) == 14
    assert voucher["hosted_voucher_url"].startswith(pay.sim.url)
    expires = datetime.fromisoformat(voucher["expires_at"])
    assert before + timedelta(days=2) < expires <= before + timedelta(days=4)
    intent_id = body["intent_id"]
    # The voucher by mail too: its reference, amount and expiry, and Stripe's hosted voucher.
    (voucher_mail,) = [m for m in read_mail(outbox, APPLICATION["email"]) if "OXXO" in m["Subject"]]
    text = mail_text(voucher_mail)
    assert f"Referencia: {voucher['number']}" in text and "Monto: $1,500.00 MXN" in text
    assert "(hora del centro de México)" in text
    assert voucher["hosted_voucher_url"] in mail_text(voucher_mail, "html")

    pay.sim.pay_oxxo(intent_id)
    await pay.status_becomes(user, app_id, "paid")
    await pay.sim.wait_for_deliveries()
    assert pay.outbox_rows(app_id) == [("permit_request", None)]
    assert len(mails_received(outbox)) == 1 and "OXXO" in mails_received(outbox)[0]

    # payment_events: every event the simulator sent, none with personal data.
    sent = {e["id"] for e in pay.events_for(intent_id)}
    rows = pay.sql(
        "SELECT id, type, outcome, detail::text, application_id::text FROM payment_events "
        "WHERE payment_intent_id = %s",
        intent_id,
    )
    assert {row[0] for row in rows} == sent
    outcomes = {row[1]: row[2] for row in rows}
    assert outcomes["payment_intent.succeeded"] == "applied"
    assert outcomes["payment_intent.created"] == "ignored_unknown"
    text = json.dumps([list(row) for row in rows]).lower()
    for personal in (APPLICATION["email"], "juana", "gómez", "gomez", "díaz", CURP.lower()):
        assert personal not in text
    assert all(row[4] == app_id for row in rows)
    payment = pay.sql(
        "SELECT status, voucher_number, succeeded_at IS NOT NULL, last_event_at IS NOT NULL "
        "FROM payments WHERE stripe_payment_intent_id = %s",
        intent_id,
    )
    assert payment == [("succeeded", voucher["number"], True, True)]


async def test_an_expired_voucher_returns_the_application_then_grace_expires_it(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="oxxo")
    assert r.status_code == 201, r.text
    intent_id = r.json()["intent_id"]
    pay.sim.expire_oxxo(intent_id)
    await pay.status_becomes(user, app_id, "awaiting_payment")
    [listed] = (
        await user.client.get(f"/v1/applications/{app_id}/payments", headers=user.bearer())
    ).json()["items"]
    assert listed["status"] == "expired"
    assert listed["last_error_code"] == "payment_intent_payment_attempt_expired"
    assert pay.outbox_rows(app_id) == []

    factory = pay.app.state.sessionmaker
    now = datetime.now(UTC)
    with factory() as db, db.begin():
        assert app_id not in {str(i) for i in expire_abandoned_applications(db, 7, now)}
    assert (await pay.application(user, app_id))["status"] == "awaiting_payment"
    with factory() as db, db.begin():
        expired = expire_abandoned_applications(db, 7, now + timedelta(days=8))
    assert app_id in {str(i) for i in expired}
    assert (await pay.application(user, app_id))["status"] == "expired"
    # An expired application is no longer payable.
    assert (await pay.pay(user, app_id, method="oxxo")).status_code == 409


async def test_a_new_voucher_after_expiry_can_still_be_paid(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    first = (await pay.pay(user, app_id, method="oxxo")).json()["intent_id"]
    pay.sim.expire_oxxo(first)
    await pay.status_becomes(user, app_id, "awaiting_payment")
    r = await pay.pay(user, app_id, method="oxxo")
    assert r.status_code == 201, r.text
    pay.sim.pay_oxxo(r.json()["intent_id"])
    await pay.status_becomes(user, app_id, "paid")
    keys = pay.sql(
        "SELECT idempotency_key FROM payments WHERE application_id = %s ORDER BY created_at",
        app_id,
    )
    assert keys == [(f"{app_id}:pi:oxxo:1",), (f"{app_id}:pi:oxxo:2",)]

    async def one_row() -> bool:
        return len(pay.outbox_rows(app_id)) == 1

    await eventually(one_row)


async def test_oxxo_amount_limits_answer_422_before_stripe(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user, service_type="carga")  # 12,000.00 MXN here
    r = await pay.pay(user, app_id, method="oxxo")
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["rule"] == "oxxo_amount_limits"
    assert pay.sql("SELECT count(*) FROM payments WHERE application_id = %s", app_id) == [(0,)]
    assert (await pay.application(user, app_id))["status"] == "draft"


async def test_money_for_an_erased_application_is_flagged_for_refund_not_turned_into_a_permit(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)  # this test delivers the event
    app_id = await pay.new_application(user)
    intent_id = (await pay.pay(user, app_id, method="oxxo")).json()["intent_id"]
    pay.sim.pay_oxxo(intent_id)
    # Meanwhile the application was erased (what the cleanup and the account deletion leave).
    pay.sql(
        "UPDATE applications SET status = 'expired', anonymized_at = now(), "
        "first_name = 'x', curp = 'x' WHERE id = %s RETURNING id",
        app_id,
    )
    [succeeded] = [e for e in pay.events_for(intent_id) if e["type"] == "payment_intent.succeeded"]
    r = await pay.post_event(succeeded)
    assert r.status_code == 200, r.text
    rows = pay.sql(
        "SELECT a.status, p.status, p.manual_refund_required FROM applications a "
        "JOIN payments p ON p.application_id = a.id WHERE a.id = %s",
        app_id,
    )
    assert rows == [("expired", "succeeded", True)]
    assert pay.outbox_rows(app_id) == []
    # What pages the engineer (PermisosPaymentNeedsManualRefund).
    assert "permisos_payments_manual_refund_required_total 1.0" in await pay.metrics()
