"""OXXO through the real `stripe` SDK: vouchers, expiry at 23:59 Mexico City, limits, pay, lapse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import stripe

from tests.sandbox.payments_fixtures import Harness, harness, oxxo_params

MEXICO_CITY = ZoneInfo("America/Mexico_City")


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


def expected_expiry(created: int, days: int) -> int:
    day = (datetime.fromtimestamp(created, MEXICO_CITY) + timedelta(days=days)).date()
    return int(datetime(day.year, day.month, day.day, 23, 59, tzinfo=MEXICO_CITY).timestamp())


async def test_voucher_details_and_hosted_page(h: Harness) -> None:
    pi = await h.call(h.client.v1.payment_intents.create, params=oxxo_params())
    assert pi.status == "requires_action"
    assert pi.payment_method_types == ["oxxo"]
    assert pi.payment_method_options.oxxo.expires_after_days == 3
    details = pi.next_action.oxxo_display_details
    assert pi.next_action.type == "oxxo_display_details"
    assert details.number.isdigit() and len(details.number) >= 14
    assert details.expires_after == expected_expiry(pi.created, 3)
    assert details.hosted_voucher_url == f"{h.sim.url}/vouchers/{pi.id}"
    async with aiohttp.ClientSession() as http, http.get(details.hosted_voucher_url) as resp:
        assert resp.status == 200
        page = await resp.text()
    assert details.number in page and "374.50" in page
    assert "Juana" not in page and "juana@example.com" not in page
    await h.receiver.wait_for("payment_intent.requires_action", pi.id)


async def test_expires_after_days_is_honoured_and_bounded(h: Harness) -> None:
    pi = await h.call(
        h.client.v1.payment_intents.create,
        params=oxxo_params(payment_method_options={"oxxo": {"expires_after_days": 7}}),
    )
    details = pi.next_action.oxxo_display_details
    assert details.expires_after == expected_expiry(pi.created, 7)
    for days in (0, 8):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            await h.call(
                h.client.v1.payment_intents.create,
                params=oxxo_params(payment_method_options={"oxxo": {"expires_after_days": days}}),
            )
        assert caught.value.param == "payment_method_options[oxxo][expires_after_days]"


async def test_amount_limits(h: Harness) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.create, params=oxxo_params(amount=999))
    assert caught.value.http_status == 400
    assert caught.value.code == "amount_too_small" and caught.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.create, params=oxxo_params(amount=1_000_001))
    assert caught.value.code == "amount_too_large" and caught.value.param == "amount"
    edge = await h.call(h.client.v1.payment_intents.create, params=oxxo_params(amount=1_000_000))
    assert edge.status == "requires_action"


async def test_billing_details_are_required(h: Harness) -> None:
    params = oxxo_params()
    params["payment_method_data"] = {"type": "oxxo", "billing_details": {"email": "a@b.mx"}}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.create, params=params)
    assert caught.value.param == "payment_method_data[billing_details][name]"


async def test_paid_at_the_store_succeeds_with_webhook(h: Harness) -> None:
    pi = await h.call(h.client.v1.payment_intents.create, params=oxxo_params())
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{h.sim.url}/__control/oxxo/{pi.id}/pay") as resp:
            assert resp.status == 200
        async with http.post(f"{h.sim.url}/__control/oxxo/{pi.id}/pay") as resp:
            assert resp.status == 409
    received = await h.receiver.wait_for("payment_intent.succeeded", pi.id)
    obj = received.event["data"]["object"]
    assert obj["status"] == "succeeded" and obj["amount_received"] == 37_450
    assert obj["metadata"] == {"application_id": "app-123"}
    pi = await h.call(h.client.v1.payment_intents.retrieve, pi.id)
    assert pi.status == "succeeded" and pi.next_action is None
    charge = await h.call(h.client.v1.charges.retrieve, pi.latest_charge)
    assert charge.payment_method_details.type == "oxxo"
    # OXXO payments cannot be refunded through Stripe.
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.refunds.create, params={"payment_intent": pi.id})
    assert caught.value.code == "charge_not_refundable"


async def test_expired_voucher_fails_the_payment(h: Harness) -> None:
    pi = await h.call(h.client.v1.payment_intents.create, params=oxxo_params())
    h.sim.expire_oxxo(pi.id)
    received = await h.receiver.wait_for("payment_intent.payment_failed", pi.id)
    obj = received.event["data"]["object"]
    assert obj["status"] == "requires_payment_method"
    assert obj["last_payment_error"]["code"] == "payment_intent_payment_attempt_expired"
    pi = await h.call(h.client.v1.payment_intents.retrieve, pi.id)
    assert pi.status == "requires_payment_method" and pi.next_action is None
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{h.sim.url}/__control/oxxo/{pi.id}/pay") as resp,
    ):
        assert resp.status == 409
    # A new voucher can be issued for the same intent.
    again = await h.call(
        h.client.v1.payment_intents.confirm,
        pi.id,
        params={"payment_method_data": oxxo_params()["payment_method_data"]},
    )
    assert again.status == "requires_action"
    assert again.next_action.oxxo_display_details.number != obj.get("number")


async def test_cancel_voids_the_voucher(h: Harness) -> None:
    pi = await h.call(h.client.v1.payment_intents.create, params=oxxo_params())
    pi = await h.call(h.client.v1.payment_intents.cancel, pi.id)
    assert pi.status == "canceled"
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{h.sim.url}/__control/oxxo/{pi.id}/pay") as resp,
    ):
        assert resp.status == 409


async def test_magic_test_email_pays_by_itself(h: Harness) -> None:
    params = oxxo_params()
    params["payment_method_data"]["billing_details"]["email"] = "succeed_immediately@example.com"
    pi = await h.call(h.client.v1.payment_intents.create, params=params)
    await h.receiver.wait_for("payment_intent.succeeded", pi.id)


async def test_processing_control_emits_processing(h: Harness) -> None:
    pi = await h.call(h.client.v1.payment_intents.create, params=oxxo_params())
    assert h.sim.mark_processing(pi.id)["status"] == "processing"
    await h.receiver.wait_for("payment_intent.processing", pi.id)
    h.sim.pay_oxxo(pi.id)
    await h.receiver.wait_for("payment_intent.succeeded", pi.id)
