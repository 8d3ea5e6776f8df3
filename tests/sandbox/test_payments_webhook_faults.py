"""The payments simulator's webhook faults (`/__control/webhooks/faults`), as the chaos run turns
them: deliveries late, three times over, newest first, or lost; each event still signed as
Stripe signs it, and the PaymentIntent itself unchanged for whoever asks Stripe."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import stripe

from tests.sandbox.payments_fixtures import SECRET, Harness, harness, oxxo_params

CARD = {"amount": 42_000, "currency": "mxn", "payment_method": "pm_card_visa", "confirm": True}


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness() as value:
        yield value


async def put_faults(h: Harness, **changes: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        url = f"{h.sim.url}/__control/webhooks/faults"
        async with http.put(url, json=changes) as resp:
            return resp.status, await resp.json()


def of_intent(h: Harness, intent_id: str) -> list[dict[str, Any]]:
    return [e for e in h.receiver.events() if e["data"]["object"]["id"] == intent_id]


async def test_delayed_deliveries_arrive_late_and_in_order(h: Harness) -> None:
    status, faults = await put_faults(h, delay_seconds=0.6)
    assert status == 200 and faults["delay_seconds"] == 0.6
    sent = time.monotonic()
    pi = await h.call(h.client.v1.payment_intents.create, params=CARD)
    await h.receiver.wait_for("payment_intent.succeeded", pi.id, timeout=5)
    assert time.monotonic() - sent >= 0.6
    await h.sim.wait_for_deliveries()
    assert [e["type"] for e in of_intent(h, pi.id)] == [
        t for t in h.sim.event_types() if t.startswith("payment_intent.")
    ]


async def test_duplicated_deliveries_repeat_one_event_three_times(h: Harness) -> None:
    await put_faults(h, copies=3)
    pi = await h.call(h.client.v1.payment_intents.create, params=CARD)
    await h.sim.wait_for_deliveries()
    succeeded = [r for r in h.receiver.received if r.event["type"] == "payment_intent.succeeded"]
    assert len(succeeded) == 3 and len({r.event["id"] for r in succeeded}) == 1
    for received in succeeded:  # each one signed, and verifies with the endpoint's secret
        stripe.Webhook.construct_event(received.body, received.signature, SECRET)
    event = await h.call(h.client.v1.events.retrieve, succeeded[0].event["id"])
    assert event.data.object.id == pi.id and event.pending_webhooks == 0


async def test_reordered_deliveries_come_newest_first(h: Harness) -> None:
    await put_faults(h, reorder_seconds=0.5)
    pi = await h.call(h.client.v1.payment_intents.create, params=CARD)
    await h.receiver.wait_for("payment_intent.created", pi.id, timeout=5)
    await h.sim.wait_for_deliveries()
    published = [e["id"] for e in h.sim.store.events.values()]
    assert len(published) >= 2
    assert [e["id"] for e in h.receiver.events()] == published[::-1]
    # Back to in order once turned off.
    await put_faults(h, reorder_seconds=0)
    h.receiver.received.clear()
    again = await h.call(h.client.v1.payment_intents.create, params=CARD)
    await h.sim.wait_for_deliveries()
    assert [e["type"] for e in of_intent(h, again.id)][-1] == "payment_intent.succeeded"


async def test_a_lost_delivery_never_arrives_but_stripe_still_knows_the_payment(
    h: Harness,
) -> None:
    status, faults = await put_faults(h, lose_next=1, lose_types=["payment_intent.succeeded"])
    assert status == 200 and faults["lose_next"] == 1
    first = await h.call(h.client.v1.payment_intents.create, params=CARD)
    second = await h.call(h.client.v1.payment_intents.create, params=CARD)
    await h.receiver.wait_for("payment_intent.succeeded", second.id, timeout=5)
    await h.sim.wait_for_deliveries()
    # The first payment's other events came; its success never did, and is not retried.
    assert [e["type"] for e in of_intent(h, first.id)] == ["payment_intent.created"]
    lost = [d for d in h.sim.deliveries() if d["outcome"] == "lost"]
    assert [(d["event_type"], d["status"]) for d in lost] == [("payment_intent.succeeded", None)]
    event = await h.call(h.client.v1.events.retrieve, lost[0]["event_id"])
    assert event.data.object.id == first.id and event.pending_webhooks == 0
    # What the API's reconcile job asks Stripe: the payment succeeded.
    assert (await h.call(h.client.v1.payment_intents.retrieve, first.id)).status == "succeeded"
    status, faults = await put_faults(h)
    assert faults["lose_next"] == 0


async def test_a_lost_delivery_can_be_an_oxxo_payments_alone(h: Harness) -> None:
    """`lose_methods`: the card's success still arrives; the voucher paid at the store is the
    one lost, a payment only asking Stripe can find."""
    status, faults = await put_faults(
        h, lose_next=1, lose_types=["payment_intent.succeeded"], lose_methods=["oxxo"]
    )
    assert status == 200 and faults["lose_methods"] == ["oxxo"]
    card = await h.call(h.client.v1.payment_intents.create, params=CARD)
    await h.receiver.wait_for("payment_intent.succeeded", card.id, timeout=5)
    voucher = await h.call(h.client.v1.payment_intents.create, params=oxxo_params())
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{h.sim.url}/__control/oxxo/{voucher.id}/pay") as resp,
    ):
        assert resp.status == 200
    await h.sim.wait_for_deliveries()
    assert "payment_intent.succeeded" not in [e["type"] for e in of_intent(h, voucher.id)]
    lost = [d for d in h.sim.deliveries() if d["outcome"] == "lost"]
    assert len(lost) == 1
    event = await h.call(h.client.v1.events.retrieve, lost[0]["event_id"])
    assert event.data.object.id == voucher.id
    assert (await h.call(h.client.v1.payment_intents.retrieve, voucher.id)).status == "succeeded"


async def test_invalid_faults_are_refused_and_reset_clears_them(h: Harness) -> None:
    await put_faults(h, copies=2)
    status, body = await put_faults(h, copies=0)
    assert status == 400 and body["error"]["detail"][0]["loc"] == ["copies"]
    status, body = await put_faults(h, unknown=1)
    assert status == 400
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{h.sim.url}/__control/webhooks/faults") as resp:
            assert (await resp.json())["copies"] == 2  # the refused changes changed nothing
        async with http.post(f"{h.sim.url}/__control/reset") as resp:
            assert resp.status == 200
        async with http.get(f"{h.sim.url}/__control/webhooks/faults") as resp:
            assert await resp.json() == {
                "delay_seconds": 0.0,
                "copies": 1,
                "reorder_seconds": 0.0,
                "lose_next": 0,
                "lose_types": [],
                "lose_methods": [],
            }
