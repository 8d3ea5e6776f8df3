"""An application's open PaymentIntents are cancelled at Stripe when they are no longer wanted
(the application cancelled, OXXO chosen instead of a card), so a card form left open in a
browser cannot take money afterwards; money Stripe already took still counts."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from pydantic import SecretStr

from tests.api.payments_support import API_KEY, WEBHOOK_SECRET, Pay


async def open_card_intent(pay: Pay, user: Any) -> tuple[str, str]:
    """An application and its card intent waiting for Stripe.js (no card yet)."""
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card")
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "requires_payment_method"
    return app_id, r.json()["intent_id"]


async def paid_unbeknown_to_the_api(pay: Pay, user: Any) -> str:
    """An application whose card the browser confirmed, Stripe's webhook about it lost: the
    API does not know it is paid yet."""
    app_id, intent_id = await open_card_intent(pay, user)
    pay.sim.webhooks.faults.lose_types = ["payment_intent.succeeded"]
    pay.sim.webhooks.faults.lose_next = 1
    await pay.sim_call(
        pay.stripe.v1.payment_intents.confirm, intent_id, params={"payment_method": "pm_card_visa"}
    )
    return app_id


async def stripe_status(pay: Pay, intent_id: str) -> str:
    return str((await pay.sim_call(pay.stripe.v1.payment_intents.retrieve, intent_id)).status)


async def test_cancelling_the_application_cancels_its_open_card_intent(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id, intent_id = await open_card_intent(pay, user)

    r = await user.client.post(f"/v1/applications/{app_id}/cancel", headers=user.bearer())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert await stripe_status(pay, intent_id) == "canceled"
    # The browser tab's Stripe.js can no longer take the money.
    with pytest.raises(stripe.InvalidRequestError):
        await pay.sim_call(
            pay.stripe.v1.payment_intents.confirm,
            intent_id,
            params={"payment_method": "pm_card_visa"},
        )
    r = await user.client.get(f"/v1/applications/{app_id}/payments", headers=user.bearer())
    assert [p["status"] for p in r.json()["items"]] == ["canceled"]
    assert (await pay.application(user, app_id))["status"] == "cancelled"


async def test_choosing_oxxo_cancels_the_open_card_intent(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id, card = await open_card_intent(pay, user)

    r = await pay.pay(user, app_id, method="oxxo")
    assert r.status_code == 201, r.text
    oxxo = r.json()["intent_id"]
    assert await stripe_status(pay, card) == "canceled"
    assert await stripe_status(pay, oxxo) == "requires_action"
    assert (await pay.application(user, app_id))["status"] == "payment_pending"
    assert pay.sql(
        "SELECT method, status FROM payments WHERE application_id = %s ORDER BY created_at",
        app_id,
    ) == [("card", "canceled"), ("oxxo", "requires_action")]


async def test_a_card_that_paid_before_the_cancellation_keeps_the_application_paid(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await paid_unbeknown_to_the_api(pay, user)

    r = await user.client.post(f"/v1/applications/{app_id}/cancel", headers=user.bearer())
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/invalid-state")
    assert (await pay.application(user, app_id))["status"] == "paid"
    assert len(pay.outbox_rows(app_id)) == 1  # on its way to a permit


async def test_a_card_that_paid_before_oxxo_was_chosen_keeps_the_application_paid(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await paid_unbeknown_to_the_api(pay, user)

    r = await pay.pay(user, app_id, method="oxxo")
    assert r.status_code == 409, r.text
    assert r.json()["type"].endswith("/invalid-state")
    assert (await pay.application(user, app_id))["status"] == "paid"
    # No voucher was made: the applicant is not asked to pay twice.
    assert pay.sql("SELECT method, status FROM payments WHERE application_id = %s", app_id) == [
        ("card", "succeeded")
    ]
    assert len(pay.outbox_rows(app_id)) == 1


async def test_with_stripe_unreachable_the_cancellation_holds_and_the_intent_is_logged(
    pay: Pay, make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    user = await make_user()
    app_id, intent_id = await open_card_intent(pay, user)
    # The same API, its Stripe address answering nothing (the discard port).
    cut_off = pay.api.client(
        pay.api.app(
            stripe_secret_key=SecretStr(API_KEY),
            stripe_api_base="http://127.0.0.1:9",
            stripe_webhook_secret=SecretStr(WEBHOOK_SECRET),
        )
    )
    caplog.set_level(logging.WARNING, logger="permisos_api.payments")

    r = await cut_off.post(f"/v1/applications/{app_id}/cancel", headers=user.bearer())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    left = [x.getMessage() for x in caplog.records if "left open" in x.getMessage()]
    assert len(left) == 1 and intent_id in left[0]
    assert await stripe_status(pay, intent_id) == "requires_payment_method"
