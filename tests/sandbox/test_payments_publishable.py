"""The publishable key (what Stripe.js holds in a buyer's browser), as Stripe allows it: create a
PaymentMethod, read and confirm one PaymentIntent with its client_secret, from any origin (CORS);
refused for everything else with Stripe's error object."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import stripe

from tests.sandbox.payments_fixtures import Harness, harness, make_client

PK = "pk_test_contract_publishable_0000"
ELSEWHERE = {"Origin": "https://tienda.example"}


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness(publishable_key=PK) as value:
        yield value


async def browser(
    http: aiohttp.ClientSession, method: str, url: str, **params: str
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """A call as Stripe.js makes it: form-encoded, the key as a parameter, from another origin."""
    fields = {"key": PK, **params}
    if method == "GET":
        request = http.get(url, params=fields, headers=ELSEWHERE)
    else:
        request = http.post(url, data=fields, headers=ELSEWHERE)
    async with request as resp:
        return resp.status, await resp.json(), resp


async def pay_with(
    http: aiohttp.ClientSession, h: Harness, intent: Any, number: str
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    """Stripe.js's two calls: the card becomes a PaymentMethod, which confirms the intent."""
    _, pm, _ = await browser(
        http, "POST", f"{h.sim.url}/v1/payment_methods", **{"type": "card", "card[number]": number}
    )
    return await browser(
        http,
        "POST",
        f"{h.sim.url}/v1/payment_intents/{intent.id}/confirm",
        client_secret=intent.client_secret,
        payment_method=pm["id"],
    )


async def card_intent(h: Harness) -> Any:
    return await h.call(
        h.client.v1.payment_intents.create,
        params={"amount": 150_000, "currency": "mxn", "metadata": {"application_id": "app-7"}},
    )


async def test_a_browser_pays_with_the_publishable_key_and_the_client_secret(h: Harness) -> None:
    intent = await card_intent(h)
    async with aiohttp.ClientSession() as http:
        status, pm, resp = await browser(
            http,
            "POST",
            f"{h.sim.url}/v1/payment_methods",
            **{"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12"},
        )
        assert status == 200 and pm["id"].startswith("pm_") and pm["card"]["last4"] == "4242"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "Request-Id" in resp.headers["Access-Control-Expose-Headers"]
        status, confirmed, resp = await browser(
            http,
            "POST",
            f"{h.sim.url}/v1/payment_intents/{intent.id}/confirm",
            client_secret=intent.client_secret,
            payment_method=pm["id"],
        )
        assert status == 200 and confirmed["status"] == "succeeded"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        # The client-side view: what the buyer may see, not the merchant's metadata or charge.
        assert confirmed["client_secret"] == intent.client_secret
        assert "metadata" not in confirmed and "latest_charge" not in confirmed
        status, read, _ = await browser(
            http,
            "GET",
            f"{h.sim.url}/v1/payment_intents/{intent.id}",
            client_secret=intent.client_secret,
        )
        assert status == 200 and read["status"] == "succeeded" and "metadata" not in read
    # The merchant's secret key still sees everything.
    full = await h.call(h.client.v1.payment_intents.retrieve, intent.id)
    assert full.metadata["application_id"] == "app-7" and full.latest_charge
    await h.receiver.wait_for("payment_intent.succeeded", intent.id)


async def test_a_decline_and_3d_secure_as_a_browser_sees_them(h: Harness) -> None:
    intent = await card_intent(h)
    async with aiohttp.ClientSession() as http:
        status, body, resp = await pay_with(http, h, intent, "4000000000000002")
        assert status == 402 and resp.headers["Access-Control-Allow-Origin"] == "*"
        error = body["error"]
        assert (error["type"], error["code"], error["decline_code"]) == (
            "card_error",
            "card_declined",
            "generic_decline",
        )
        assert error["payment_intent"]["status"] == "requires_payment_method"
        assert "metadata" not in error["payment_intent"]
        # The same intent takes another card: one that asks for 3-D Secure, through Stripe.js.
        status, pending, _ = await pay_with(http, h, intent, "4000002760003184")
        assert status == 200 and pending["status"] == "requires_action"
        assert pending["next_action"]["type"] == "use_stripe_sdk"
        challenge = pending["next_action"]["use_stripe_sdk"]["stripe_js"]
        # The cardholder fails the bank's page in a browser: the page tells its frame's parent.
        async with http.post(f"{challenge}/fail", headers={"Accept": "text/html"}) as resp:
            assert resp.status == 200 and "stripe-3ds-result" in await resp.text()
        status, failed, _ = await browser(
            http,
            "GET",
            f"{h.sim.url}/v1/payment_intents/{intent.id}",
            client_secret=intent.client_secret,
        )
        assert failed["status"] == "requires_payment_method"
        assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"


async def test_preflight_answers_any_origin(h: Harness) -> None:
    async with aiohttp.ClientSession() as http:
        headers = {
            **ELSEWHERE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, stripe-version",
        }
        async with http.options(f"{h.sim.url}/v1/payment_methods", headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            assert "POST" in resp.headers["Access-Control-Allow-Methods"]
            assert resp.headers["Access-Control-Allow-Headers"] == "authorization, stripe-version"


async def test_the_publishable_key_is_refused_for_everything_else(h: Harness) -> None:
    intent = await card_intent(h)
    # The official SDK sends a key as Bearer; a publishable one only reaches the three calls.
    public = make_client(h.sim.url, api_key=PK)
    refused = [
        lambda: public.v1.payment_intents.list(),
        lambda: public.v1.payment_intents.create(params={"amount": 150_000, "currency": "mxn"}),
        lambda: public.v1.payment_intents.update(intent.id, params={"description": "x"}),
        lambda: public.v1.payment_intents.cancel(intent.id),
        lambda: public.v1.refunds.create(params={"payment_intent": intent.id}),
        lambda: public.v1.events.list(),
    ]
    for call in refused:
        with pytest.raises(stripe.AuthenticationError) as caught:
            await h.call(call)
        assert caught.value.http_status == 401
        assert "cannot be made with a publishable API key" in str(caught.value)
    # The intent's own calls need its client_secret, and the right one.
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await h.call(public.v1.payment_intents.retrieve, intent.id)
    assert missing.value.param == "client_secret"
    async with aiohttp.ClientSession() as http:
        other = await card_intent(h)
        status, body, _ = await browser(
            http,
            "POST",
            f"{h.sim.url}/v1/payment_intents/{intent.id}/confirm",
            client_secret=other.client_secret,
            payment_method="pm_card_visa",
        )
        assert status == 400
        assert body["error"]["param"] == "client_secret"
        assert "does not match" in body["error"]["message"]
        # Another account's publishable key is an invalid key, as a wrong secret key is.
        async with http.get(
            f"{h.sim.url}/v1/payment_intents/{intent.id}",
            params={"key": "pk_test_someone_else_000000", "client_secret": intent.client_secret},
        ) as resp:
            assert resp.status == 401
            assert "Invalid API Key" in (await resp.json())["error"]["message"]
    assert (await h.call(h.client.v1.payment_intents.retrieve, intent.id)).status == (
        "requires_payment_method"
    )
