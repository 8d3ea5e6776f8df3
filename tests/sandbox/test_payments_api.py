"""The API envelope through the real `stripe` SDK: idempotency, authentication, errors, lists."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import aiohttp
import pytest
import stripe

from tests.sandbox.payments_fixtures import API_KEY, Harness, harness, make_client

CARD = {"amount": 42_000, "currency": "mxn", "payment_method": "pm_card_visa", "confirm": True}


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


async def test_idempotent_replay_returns_the_same_intent(h: Harness) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "application-7-payment-1"}
    first = await h.call(h.client.v1.payment_intents.create, params=CARD, options=options)
    second = await h.call(h.client.v1.payment_intents.create, params=CARD, options=options)
    assert second.id == first.id and second.status == "succeeded"
    assert first.last_response is not None and second.last_response is not None
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert second.last_response.headers["Idempotent-Replayed"] == "true"
    page = await h.call(h.client.v1.payment_intents.list)
    assert [pi.id for pi in page.data] == [first.id]
    assert h.sim.event_types().count("payment_intent.succeeded") == 1


async def test_idempotency_key_reused_with_other_parameters(h: Harness) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "application-8-payment-1"}
    await h.call(h.client.v1.payment_intents.create, params=CARD, options=options)
    with pytest.raises(stripe.IdempotencyError) as caught:
        await h.call(
            h.client.v1.payment_intents.create, params={**CARD, "amount": 43_000}, options=options
        )
    assert caught.value.http_status == 400
    assert caught.value.error is not None and caught.value.error.type == "idempotency_error"


async def test_a_decline_is_replayed_but_a_validation_error_is_not(h: Harness) -> None:
    declined = {**CARD, "payment_method": "pm_card_chargeDeclined"}
    options: stripe.RequestOptions = {"idempotency_key": "decline-1"}
    errors = []
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            await h.call(h.client.v1.payment_intents.create, params=declined, options=options)
        errors.append(caught.value)
    assert errors[0].error is not None and errors[1].error is not None
    assert errors[0].error.payment_intent is not None and errors[1].error.payment_intent is not None
    assert errors[0].error.payment_intent.id == errors[1].error.payment_intent.id
    assert errors[1].headers is not None and errors[1].headers["Idempotent-Replayed"] == "true"
    # Invalid parameters never start executing, so a corrected retry under the key runs.
    options = {"idempotency_key": "fix-and-retry"}
    with pytest.raises(stripe.InvalidRequestError):
        await h.call(
            h.client.v1.payment_intents.create, params={**CARD, "amount": 5}, options=options
        )
    fixed = await h.call(h.client.v1.payment_intents.create, params=CARD, options=options)
    assert fixed.status == "succeeded"


async def test_authentication(h: Harness) -> None:
    wrong = make_client(h.sim.url, api_key="sk_test_not_the_right_key_0000")
    with pytest.raises(stripe.AuthenticationError) as caught:
        await h.call(wrong.v1.payment_intents.list)
    assert caught.value.http_status == 401
    assert "sk_test_" in str(caught.value) and "not_the_right" not in str(caught.value)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{h.sim.url}/v1/payment_intents") as resp:
            assert resp.status == 401
            body = await resp.json()
        assert body["error"]["type"] == "invalid_request_error"
        assert "did not provide an API key" in body["error"]["message"]
        basic = base64.b64encode(f"{API_KEY}:".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        async with http.get(f"{h.sim.url}/v1/payment_intents", headers=headers) as resp:
            assert resp.status == 200
            assert (await resp.json())["object"] == "list"


async def test_errors_name_the_parameter_and_the_missing_resource(h: Harness) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.retrieve, "pi_doesnotexist")
    assert caught.value.http_status == 404 and caught.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.create, params={"currency": "mxn"})
    assert caught.value.code == "parameter_missing" and caught.value.param == "amount"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(
            h.client.v1.payment_intents.create,
            params={"amount": 20_000, "currency": "mxn", "colour": "blue"},
        )
    assert caught.value.code == "parameter_unknown" and caught.value.param == "colour"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(h.client.v1.payment_intents.create, params={"amount": 999, "currency": "mxn"})
    assert caught.value.code == "amount_too_small"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        await h.call(
            h.client.v1.payment_intents.create,
            params={**CARD, "payment_method": "pm_nope"},
        )
    assert caught.value.code == "resource_missing" and caught.value.param == "payment_method"
    async with aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with http.get(f"{h.sim.url}/v1/customers", headers=headers) as resp:
            assert resp.status == 404
            assert "Unrecognized request URL" in (await resp.json())["error"]["message"]


async def test_list_pagination_and_events(h: Harness) -> None:
    ids = []
    for amount in (20_000, 21_000, 22_000):
        pi = await h.call(
            h.client.v1.payment_intents.create, params={"amount": amount, "currency": "mxn"}
        )
        ids.append(pi.id)
    page = await h.call(h.client.v1.payment_intents.list, params={"limit": 2})
    assert page.object == "list" and page.has_more is True
    assert [pi.id for pi in page.data] == ids[::-1][:2]
    rest = await h.call(
        h.client.v1.payment_intents.list, params={"limit": 2, "starting_after": page.data[-1].id}
    )
    assert [pi.id for pi in rest.data] == [ids[0]] and rest.has_more is False
    events = await h.call(
        h.client.v1.events.list, params={"type": "payment_intent.created", "limit": 10}
    )
    assert [e.data.object.id for e in events.data] == ids[::-1]
    event = await h.call(h.client.v1.events.retrieve, events.data[0].id)
    assert event.id.startswith("evt_") and event.object == "event"
    assert event.type == "payment_intent.created" and event.livemode is False
    assert event.api_version == h.sim.config.api_version
    assert event.request.idempotency_key
    with pytest.raises(stripe.InvalidRequestError):
        await h.call(h.client.v1.events.retrieve, "evt_missing")
