"""The webhook endpoint: replays in any order, stale states, intents adopted as Stripe reports
them, and Stripe unreachable. The attacks (forged, stale and replayed deliveries, payloads Stripe
does not confirm, amounts and currencies that do not match) are in tests/security."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from permisos_sandbox.payments import sign
from tests.api.payments_support import API_KEY, UNREACHABLE, WEBHOOK_SECRET, Pay


def final_state(pay: Pay, app_id: str) -> list[tuple[Any, ...]]:
    return pay.sql(
        "SELECT a.status, a.payment_method, p.status, p.succeeded_at IS NOT NULL, "
        "(SELECT count(*) FROM outbox o WHERE o.application_id = a.id) "
        "FROM applications a JOIN payments p ON p.application_id = a.id WHERE a.id = %s",
        app_id,
    )


async def test_events_replayed_three_times_in_any_order_give_one_state_and_one_outbox_row(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    # Webhooks off: this test is the only sender, in the order it chooses.
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
    apps = []
    for pm in ("pm_card_threeDSecure2Required", None):
        app_id = await pay.new_application(user)
        body = {"method": "card", "payment_method": pm} if pm else {"method": "oxxo"}
        r = await pay.pay(user, app_id, **body)
        assert r.status_code == 201, r.text
        intent_id = r.json()["intent_id"]
        if pm:
            pay.sim.complete_3ds(intent_id)
        else:
            pay.sim.mark_processing(intent_id)
            pay.sim.pay_oxxo(intent_id)
        apps.append((app_id, intent_id))
    await pay.sim.wait_for_deliveries()

    rng = random.Random(20261126)
    for app_id, intent_id in apps:
        events = pay.events_for(intent_id)
        assert "payment_intent.succeeded" in {e["type"] for e in events}
        # The succeeded event first (the worst order), then everything else three times shuffled.
        deliveries = sorted(events, key=lambda e: e["type"] != "payment_intent.succeeded")
        rest = events * 3
        rng.shuffle(rest)
        outcomes: dict[str, list[str]] = {}
        for event in deliveries[:1] + rest:
            r = await pay.post_event(event)
            assert r.status_code == 200, r.text
            outcomes.setdefault(event["id"], []).append(r.json()["outcome"])
        for event_outcomes in outcomes.values():
            assert event_outcomes[1:] == ["duplicate"] * (len(event_outcomes) - 1)
        method = "card" if intent_id == apps[0][1] else "oxxo"
        assert final_state(pay, app_id) == [("paid", method, "succeeded", True, 1)]

        # New event ids for the same snapshots (Stripe re-emitting), shuffled: still nothing moves.
        fresh = []
        for n in range(3):
            for event in events:
                clone = copy.deepcopy(event)
                clone["id"] = f"{event['id']}_again{n}"
                fresh.append(clone)
        rng.shuffle(fresh)
        for event in fresh:
            r = await pay.post_event(event)
            assert r.status_code == 200 and r.json()["outcome"] != "duplicate", r.text
            if event["type"] in ("payment_intent.requires_action", "payment_intent.processing"):
                assert r.json()["outcome"] == "ignored_stale"
        state = final_state(pay, app_id)
        assert state[0][0] == "paid" and state[0][2] == "succeeded" and state[0][4] == 1
        count = pay.sql(
            "SELECT count(*) FROM payment_events WHERE payment_intent_id = %s", intent_id
        )
        assert count == [(len(events) * 4,)]


async def test_an_event_about_a_state_stripe_has_left_is_stale_whatever_its_time(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="card", payment_method="pm_card_threeDSecure2Required")
    intent_id = r.json()["intent_id"]
    pay.sim.complete_3ds(intent_id, ok=False)
    events = {e["type"]: e for e in pay.events_for(intent_id)}
    failed = events["payment_intent.payment_failed"]
    challenge = copy.deepcopy(events["payment_intent.requires_action"])
    challenge["created"] = failed["created"] + 60  # a payload's time decides nothing
    assert (await pay.post_event(failed)).json()["outcome"] == "applied"
    assert (await pay.post_event(challenge)).json()["outcome"] == "ignored_stale"
    assert (await pay.application(user, app_id))["status"] == "awaiting_payment"


async def test_an_unknown_intent_is_adopted_only_as_stripe_reports_it(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    """The request that created an intent died before recording it: Stripe's answer, with our
    metadata, price and currency and a paid state, is what lets the application be paid."""
    user = await make_user()
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
    app_id = await pay.new_application(user)
    price = (await pay.application(user, app_id))["amount_centavos"]
    intent = await pay.sim_call(
        pay.stripe.v1.payment_intents.create,
        params={
            "amount": price,
            "currency": "mxn",
            "payment_method_types": ["card"],
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"application_id": app_id},
        },
    )
    succeeded = next(e for e in pay.events_for(intent.id) if e["type"].endswith(".succeeded"))
    assert (await pay.post_event(succeeded)).json()["outcome"] == "applied"
    assert (await pay.application(user, app_id))["status"] == "paid"
    assert pay.sql(
        "SELECT status, amount_centavos FROM payments WHERE stripe_payment_intent_id = %s",
        intent.id,
    ) == [("succeeded", price)]


async def deliver_through(pay: Pay, stripe_base: str, event: dict[str, Any]) -> Any:
    """The event, signed, to the same API configured with another Stripe address."""
    client = pay.api.client(
        pay.api.app(
            stripe_secret_key=SecretStr(API_KEY),
            stripe_api_base=stripe_base,
            stripe_webhook_secret=SecretStr(WEBHOOK_SECRET),
        )
    )
    payload = json.dumps(event)
    return await client.post(
        "/v1/webhooks/stripe",
        content=payload,
        headers={
            "Stripe-Signature": sign(payload, WEBHOOK_SECRET),
            "Content-Type": "application/json",
        },
    )


async def test_when_stripe_cannot_be_asked_the_event_is_refused_for_a_retry(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id, succeeded = await pay.paid_voucher(user)

    # The same API, but its Stripe address answers nothing (the discard port).
    r = await deliver_through(pay, "http://127.0.0.1:9", succeeded)
    assert r.status_code == 502, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"].endswith("/payment-provider-error") and r.headers["retry-after"]
    # Nothing recorded, so Stripe's next delivery is not a duplicate, and it is applied.
    assert pay.sql("SELECT count(*) FROM payment_events WHERE id = %s", succeeded["id"]) == [(0,)]
    assert (await pay.application(user, app_id))["status"] == "payment_pending"

    # A wrong Stripe address answers 404 too, but not Stripe's "resource_missing": an outage,
    # never mistaken for a forgery (which would be answered 200 and lost).
    r = await deliver_through(pay, pay.url, succeeded)  # our own API: 404 for the intent
    assert r.status_code == 502, r.text
    assert pay.sql("SELECT count(*) FROM payment_events WHERE id = %s", succeeded["id"]) == [(0,)]

    assert (await pay.post_event(succeeded)).json()["outcome"] == "applied"
    assert (await pay.application(user, app_id))["status"] == "paid"
