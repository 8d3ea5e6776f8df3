"""Card payments through the real `stripe` SDK: success, declines, 3-D Secure, cancel, refunds."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import stripe

from tests.sandbox.payments_fixtures import Harness, harness


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


def card_params(pm: str, **extra: object) -> dict[str, object]:
    return {
        "amount": 74_900,
        "currency": "mxn",
        "payment_method_types": ["card"],
        "payment_method": pm,
        "confirm": True,
        "metadata": {"application_id": "app-1"},
        **extra,
    }


async def test_card_success_charges_and_emits_succeeded(h: Harness) -> None:
    pi = await h.call(h.client.v1.payment_intents.create, params=card_params("pm_card_visa"))
    assert pi.object == "payment_intent" and pi.id.startswith("pi_")
    assert pi.status == "succeeded"
    assert pi.amount == pi.amount_received == 74_900
    assert pi.currency == "mxn" and pi.livemode is False
    assert pi.client_secret.startswith(f"{pi.id}_secret_")
    assert pi.metadata["application_id"] == "app-1"
    assert pi.payment_method.startswith("pm_") and pi.last_payment_error is None
    charge = await h.call(h.client.v1.charges.retrieve, pi.latest_charge)
    assert charge.id.startswith("ch_") and charge.status == "succeeded" and charge.paid
    assert charge.payment_intent == pi.id
    assert charge.payment_method_details.type == "card"
    assert charge.payment_method_details.card.last4 == "4242"
    received = await h.receiver.wait_for("payment_intent.succeeded", pi.id)
    assert received.event["data"]["object"]["status"] == "succeeded"
    assert h.receiver.events("payment_intent.created")[0]["data"]["object"]["id"] == pi.id


async def test_decline_raises_card_error_and_leaves_requires_payment_method(h: Harness) -> None:
    with pytest.raises(stripe.CardError) as caught:
        await h.call(
            h.client.v1.payment_intents.create, params=card_params("pm_card_chargeDeclined")
        )
    err = caught.value
    assert err.http_status == 402
    assert err.code == "card_declined"
    assert err.error is not None
    assert err.error.type == "card_error"
    assert err.error.decline_code == "generic_decline"
    assert err.error.payment_intent is not None
    intent_id = err.error.payment_intent.id
    assert err.error.payment_intent.status == "requires_payment_method"
    pi = await h.call(h.client.v1.payment_intents.retrieve, intent_id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "card_declined"
    assert pi.last_payment_error.decline_code == "generic_decline"
    assert pi.payment_method is None and pi.amount_received == 0
    await h.receiver.wait_for("payment_intent.payment_failed", intent_id)


async def test_declined_card_number_and_insufficient_funds(h: Harness) -> None:
    by_number = card_params("")
    del by_number["payment_method"]
    by_number["payment_method_data"] = {"type": "card", "card": {"number": "4000000000000002"}}
    with pytest.raises(stripe.CardError) as caught:
        await h.call(h.client.v1.payment_intents.create, params=by_number)
    assert caught.value.error is not None
    assert caught.value.error.decline_code == "generic_decline"
    with pytest.raises(stripe.CardError) as caught:
        await h.call(
            h.client.v1.payment_intents.create,
            params=card_params("pm_card_chargeDeclinedInsufficientFunds"),
        )
    assert caught.value.error is not None
    assert caught.value.error.decline_code == "insufficient_funds"


async def test_retry_with_a_new_card_after_a_decline_succeeds(h: Harness) -> None:
    pi = await h.call(
        h.client.v1.payment_intents.create,
        params={"amount": 50_000, "currency": "mxn", "payment_method_types": ["card"]},
    )
    assert pi.status == "requires_payment_method"
    with pytest.raises(stripe.CardError):
        await h.call(
            h.client.v1.payment_intents.confirm,
            pi.id,
            params={"payment_method": "pm_card_chargeDeclined"},
        )
    pi = await h.call(
        h.client.v1.payment_intents.confirm, pi.id, params={"payment_method": "pm_card_visa"}
    )
    assert pi.status == "succeeded" and pi.last_payment_error is None


async def test_three_d_secure_requires_action_then_completes(h: Harness) -> None:
    pi = await h.call(
        h.client.v1.payment_intents.create, params=card_params("pm_card_threeDSecure2Required")
    )
    assert pi.status == "requires_action"
    assert pi.next_action.type == "use_stripe_sdk"
    await h.receiver.wait_for("payment_intent.requires_action", pi.id)
    # The control endpoint plays the cardholder passing the bank's challenge.
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{h.sim.url}/__control/3ds/{pi.id}/complete") as resp:
            assert resp.status == 200
            assert (await resp.json())["status"] == "succeeded"
        async with http.post(f"{h.sim.url}/__control/3ds/{pi.id}/complete") as resp:
            assert resp.status == 409
    pi = await h.call(h.client.v1.payment_intents.retrieve, pi.id)
    assert pi.status == "succeeded" and pi.amount_received == pi.amount
    await h.receiver.wait_for("payment_intent.succeeded", pi.id)


async def test_three_d_secure_failure_and_redirect_flow(h: Harness) -> None:
    card = await h.call(
        h.client.v1.payment_methods.create,
        params={"type": "card", "card": {"number": "4000002760003184"}},
    )
    assert card.card.last4 == "3184"
    pi = await h.call(
        h.client.v1.payment_intents.create,
        params=card_params(card.id, return_url="https://app.example/pagos/regreso"),
    )
    assert pi.status == "requires_action"
    assert pi.next_action.type == "redirect_to_url"
    assert pi.next_action.redirect_to_url.return_url == "https://app.example/pagos/regreso"
    async with aiohttp.ClientSession() as http:
        async with http.get(pi.next_action.redirect_to_url.url) as resp:
            assert resp.status == 200
        async with http.post(f"{h.sim.url}/3ds/{pi.id}/fail", allow_redirects=False) as resp:
            assert resp.status == 303
            location = resp.headers["Location"]
    assert location.startswith("https://app.example/pagos/regreso?payment_intent=" + pi.id)
    assert "redirect_status=failed" in location
    pi = await h.call(h.client.v1.payment_intents.retrieve, pi.id)
    assert pi.status == "requires_payment_method"
    assert pi.last_payment_error.code == "payment_intent_authentication_failure"
    await h.receiver.wait_for("payment_intent.payment_failed", pi.id)


async def test_update_then_confirm(h: Harness) -> None:
    pi = await h.call(
        h.client.v1.payment_intents.create,
        params={"amount": 20_000, "currency": "mxn", "metadata": {"application_id": "a"}},
    )
    pi = await h.call(
        h.client.v1.payment_intents.update,
        pi.id,
        params={
            "amount": 30_000,
            "metadata": {"plates": "ABC1234"},
            "payment_method": "pm_card_visa",
        },
    )
    assert pi.amount == 30_000
    assert pi.metadata.to_dict() == {"application_id": "a", "plates": "ABC1234"}
    assert pi.status == "requires_confirmation"
    pi = await h.call(h.client.v1.payment_intents.confirm, pi.id)
    assert pi.status == "succeeded" and pi.amount_received == 30_000
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.update, pi.id, params={"amount": 1_500})
    assert caught.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.confirm, pi.id)
    assert caught.value.code == "payment_intent_unexpected_state"


async def test_cancel(h: Harness) -> None:
    pi = await h.call(
        h.client.v1.payment_intents.create, params={"amount": 20_000, "currency": "mxn"}
    )
    pi = await h.call(
        h.client.v1.payment_intents.cancel,
        pi.id,
        params={"cancellation_reason": "requested_by_customer"},
    )
    assert pi.status == "canceled"
    assert pi.cancellation_reason == "requested_by_customer" and pi.canceled_at
    await h.receiver.wait_for("payment_intent.canceled", pi.id)
    paid = await h.call(h.client.v1.payment_intents.create, params=card_params("pm_card_visa"))
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.cancel, paid.id)
    assert caught.value.http_status == 400
    assert caught.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError):
        await h.call(
            h.client.v1.payment_intents.confirm, pi.id, params={"payment_method": "pm_card_visa"}
        )


async def test_card_refunds_partial_then_full(h: Harness) -> None:
    pi = await h.call(h.client.v1.payment_intents.create, params=card_params("pm_card_visa"))
    partial = await h.call(
        h.client.v1.refunds.create, params={"payment_intent": pi.id, "amount": 10_000}
    )
    assert partial.id.startswith("re_") and partial.object == "refund"
    assert partial.status == "succeeded" and partial.amount == 10_000
    assert partial.payment_intent == pi.id and partial.charge == pi.latest_charge
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.refunds.create, params={"payment_intent": pi.id, "amount": 70_000})
    assert caught.value.code == "amount_too_large" and caught.value.param == "amount"
    rest = await h.call(h.client.v1.refunds.create, params={"payment_intent": pi.id})
    assert rest.amount == 64_900
    charge = await h.call(h.client.v1.charges.retrieve, pi.latest_charge)
    assert charge.amount_refunded == 74_900 and charge.refunded is True
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.refunds.create, params={"payment_intent": pi.id})
    assert caught.value.code == "charge_already_refunded"
    await h.sim.wait_for_deliveries()
    refunded = h.receiver.events("charge.refunded")
    assert [e["data"]["object"]["amount_refunded"] for e in refunded] == [10_000, 74_900]
    unpaid = await h.call(
        h.client.v1.payment_intents.create, params={"amount": 20_000, "currency": "mxn"}
    )
    with pytest.raises(stripe.InvalidRequestError):
        await h.call(h.client.v1.refunds.create, params={"payment_intent": unpaid.id})
