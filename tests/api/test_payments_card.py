"""Card payments through the simulator and the real SDK: success, decline, 3-D Secure."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.api.conftest import mail_text, read_mail
from tests.api.payments_support import Pay, eventually

EMAIL = "juana.gomez@example.com"


def mails_received(outbox: Path) -> list[str]:
    out = []
    for msg in read_mail(outbox, EMAIL):
        body = mail_text(msg)
        if "Recibimos tu pago" in body:
            out.append(body)
    return out


async def test_card_success_is_paid_once_with_one_outbox_row_and_one_mail(
    pay: Pay, make_user: Callable[..., Any], outbox: Path
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "succeeded" and body["application_status"] == "paid"
    assert body["amount_centavos"] == 150_000 and body["currency"] == "MXN"
    assert body["client_secret"].startswith(body["intent_id"])
    intent_id = body["intent_id"]

    # The webhook arrives too, and changes nothing.
    async def webhook_seen() -> bool:
        rows = pay.sql(
            "SELECT outcome FROM payment_events WHERE payment_intent_id = %s AND type = %s",
            intent_id,
            "payment_intent.succeeded",
        )
        return rows == [("applied",)]

    await eventually(webhook_seen)
    await pay.sim.wait_for_deliveries()
    app = await pay.application(user, app_id)
    assert app["status"] == "paid" and app["payment_method"] == "card" and app["paid_at"]
    assert len(pay.outbox_rows(app_id)) == 1
    await eventually(lambda: _true(len(mails_received(outbox)) == 1))
    mail = mails_received(outbox)[0]
    assert "$1,500.00 MXN" in mail and "tarjeta" in mail and "4242" not in mail

    r = await user.client.get(f"/v1/applications/{app_id}/payments", headers=user.bearer())
    assert r.status_code == 200
    [listed] = r.json()["items"]
    assert listed["status"] == "succeeded" and listed["succeeded_at"] and listed["method"] == "card"
    key = pay.sql("SELECT idempotency_key FROM payments WHERE id = %s", listed["id"])[0][0]
    assert key == f"{app_id}:pi:card:1"

    metrics = await pay.metrics()
    assert 'permisos_payments_total{method="card",outcome="succeeded"} 1.0' in metrics
    assert (
        'permisos_webhook_events_total{outcome="applied",type="payment_intent.succeeded"} 1.0'
        in metrics
    )
    # Paid: not payable again.
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_visa")
    assert r.status_code == 409


async def _true(value: bool) -> bool:
    return value


async def test_card_decline_returns_to_awaiting_payment_then_a_new_card_pays(
    pay: Pay, make_user: Callable[..., Any], outbox: Path
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_chargeDeclined")
    assert r.status_code == 402, r.text
    assert r.json()["type"].endswith("/payment-declined")
    assert "generic_decline" in r.json()["detail"]
    assert (await pay.application(user, app_id))["status"] == "awaiting_payment"
    r = await user.client.get(f"/v1/applications/{app_id}/payments", headers=user.bearer())
    [failed] = r.json()["items"]
    assert failed["status"] == "requires_payment_method"
    assert failed["last_error_code"] == "card_declined"
    assert failed["decline_code"] == "generic_decline"

    async def failure_recorded() -> bool:
        return bool(
            pay.sql(
                "SELECT 1 FROM payment_events WHERE payment_intent_id = %s AND type = %s",
                failed["intent_id"],
                "payment_intent.payment_failed",
            )
        )

    await eventually(failure_recorded)
    assert (await pay.application(user, app_id))["status"] == "awaiting_payment"
    assert pay.outbox_rows(app_id) == []

    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_visa")
    assert r.status_code == 201 and r.json()["status"] == "succeeded", r.text
    keys = {row[0] for row in pay.sql("SELECT idempotency_key FROM payments")}
    assert {f"{app_id}:pi:card:1", f"{app_id}:pi:card:2"} <= keys
    assert len(pay.outbox_rows(app_id)) == 1
    assert 'permisos_payments_total{method="card",outcome="declined"}' in await pay.metrics()


async def test_three_d_secure_requires_action_then_the_webhook_marks_it_paid(
    pay: Pay, make_user: Callable[..., Any], outbox: Path
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_threeDSecure2Required")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "requires_action"
    assert body["next_action"]["type"] == "use_stripe_sdk"
    assert body["next_action"]["use_stripe_sdk"]["type"] == "three_d_secure_redirect"
    assert body["next_action"]["redirect_to_url"] is None
    assert body["client_secret"].startswith(f"{body['intent_id']}_secret_")
    assert body["application_status"] == "payment_pending"
    # Not payable while the challenge is open.
    assert (await pay.pay(user, app_id, method="oxxo")).status_code == 409

    pay.sim.complete_3ds(body["intent_id"])  # the cardholder passes the bank's challenge
    await pay.status_becomes(user, app_id, "paid")
    await pay.sim.wait_for_deliveries()
    assert len(pay.outbox_rows(app_id)) == 1
    assert len(mails_received(outbox)) == 1


async def test_an_api_client_completes_3d_secure_from_the_answer_alone(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    """What the README tells a newcomer: pay with a return_url, open the challenge page it gets
    back, press "Complete authentication", land on the return_url, and the application is paid."""
    user = await make_user()
    app_id = await pay.new_application(user)
    done = "https://tienda.example/pago-terminado?pedido=7"
    r = await pay.pay(
        user,
        app_id,
        method="card",
        payment_method="pm_card_threeDSecure2Required",
        return_url=done,
    )
    assert r.status_code == 201, r.text
    action = r.json()["next_action"]
    assert action["type"] == "redirect_to_url"
    assert action["redirect_to_url"]["return_url"] == done
    challenge = action["redirect_to_url"]["url"]
    # A client that lost that answer finds the open challenge in the payment list.
    listed = await user.client.get(f"/v1/applications/{app_id}/payments", headers=user.bearer())
    [open_payment] = listed.json()["items"]
    assert open_payment["next_action"]["redirect_to_url"]["url"] == challenge
    assert open_payment["client_secret"] == r.json()["client_secret"]

    async with httpx.AsyncClient() as browser:
        page = await browser.get(challenge)
        assert page.status_code == 200 and "Complete authentication" in page.text
        form = re.search(r'<form method="post" action="([^"]+/complete)"', page.text)
        assert form is not None, page.text
        landed = await browser.post(httpx.URL(challenge).join(form.group(1)))
    assert landed.status_code == 303
    back = httpx.URL(landed.headers["location"])
    assert str(back).startswith(done + "&")
    assert back.params["redirect_status"] == "succeeded"
    assert back.params["payment_intent"] == r.json()["intent_id"]
    await pay.status_becomes(user, app_id, "paid")
    listed = await user.client.get(f"/v1/applications/{app_id}/payments", headers=user.bearer())
    assert [(p["status"], p["next_action"]) for p in listed.json()["items"]] == [
        ("succeeded", None)
    ]


async def test_a_return_url_needs_a_card_the_api_confirms(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", return_url="https://tienda.example/fin")
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["return_url"]
    r = await pay.pay(
        user, app_id, method="card", payment_method="pm_card_visa", return_url="ftp:x"
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["return_url"]


async def test_a_card_intent_for_stripe_js_leaves_the_application_payable(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "requires_payment_method" and r.json()["client_secret"]
    assert r.json()["application_status"] == "awaiting_payment"
    # The browser confirms with Stripe.js (here: the SDK, as Stripe.js would).
    await pay.sim_call(
        pay.stripe.v1.payment_intents.confirm,
        r.json()["intent_id"],
        params={"payment_method": "pm_card_visa"},
    )
    await pay.status_becomes(user, app_id, "paid")
