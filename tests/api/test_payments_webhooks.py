"""The webhook endpoint: replays and any order, forged and stale signatures, mismatches, and
events that Stripe's API does not confirm."""

from __future__ import annotations

import copy
import json
import random
import time
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


async def voucher_paid_at_the_store(pay: Pay, user: Any) -> tuple[str, dict[str, Any]]:
    """An application whose OXXO voucher was paid, with webhooks off: its id and Stripe's
    `payment_intent.succeeded` event, for the test to deliver."""
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="oxxo")
    intent_id = r.json()["intent_id"]
    pay.sim.pay_oxxo(intent_id)
    succeeded = next(e for e in pay.events_for(intent_id) if e["type"].endswith(".succeeded"))
    return app_id, succeeded


async def test_forged_missing_and_stale_signatures_are_refused_and_counted(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id, succeeded = await voucher_paid_at_the_store(pay, user)

    forged = await pay.post_event(succeeded, secret="whsec_someone_else")
    stale = await pay.post_event(succeeded, timestamp=int(time.time()) - 3600)
    for r in (forged, stale):
        assert r.status_code == 400
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("/invalid-signature")
    r = await pay.api.client(pay.app).post("/v1/webhooks/stripe", content=b"{}")
    assert r.status_code == 400
    assert "permisos_webhook_signature_failures_total 3.0" in await pay.metrics()
    assert pay.sql("SELECT count(*) FROM payment_events WHERE id = %s", succeeded["id"]) == [(0,)]
    assert (await pay.application(user, app_id))["status"] == "payment_pending"
    # The genuine one still works.
    assert (await pay.post_event(succeeded)).json()["outcome"] == "applied"
    assert (await pay.application(user, app_id))["status"] == "paid"


async def test_an_amount_mismatch_is_recorded_and_never_paid(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="oxxo")
    intent_id = r.json()["intent_id"]
    await pay.sim.wait_for_deliveries()
    # A signed event whose intent claims another amount (a tampered or buggy sender): Stripe,
    # asked, reports the real amount, so the payload is not trusted and nothing moves.
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
    event = copy.deepcopy(
        next(e for e in pay.events_for(intent_id) if e["type"].endswith(".requires_action"))
    )
    event["id"] = "evt_tampered_amount"
    event["type"] = "payment_intent.succeeded"
    event["data"]["object"].update(status="succeeded", amount=100, amount_received=100)
    r = await pay.post_event(event)
    assert r.status_code == 200 and r.json()["outcome"] == "rejected_unconfirmed"
    assert (await pay.application(user, app_id))["status"] == "payment_pending"
    assert pay.outbox_rows(app_id) == []
    assert pay.sql("SELECT outcome FROM payment_events WHERE id = %s", event["id"]) == [
        ("rejected_unconfirmed",)
    ]

    # An intent someone made for this application at another price, paid: not adopted.
    other_app = await pay.new_application(user)
    pay.sim.configure_webhook(pay.webhook_url, WEBHOOK_SECRET)
    intent = await pay.sim_call(
        pay.stripe.v1.payment_intents.create,
        params={
            "amount": 1_000,
            "currency": "mxn",
            "payment_method_types": ["card"],
            "payment_method": "pm_card_visa",
            "confirm": True,
            "metadata": {"application_id": other_app},
        },
    )
    await pay.sim.wait_for_deliveries()
    rows = pay.sql(
        "SELECT type, outcome FROM payment_events WHERE payment_intent_id = %s AND type = %s",
        intent.id,
        "payment_intent.succeeded",
    )
    assert rows == [("payment_intent.succeeded", "rejected_mismatch")]
    assert (await pay.application(user, other_app))["status"] == "draft"
    assert pay.outbox_rows(other_app) == []
    assert 'outcome="rejected_mismatch",type="payment_intent.succeeded"' in await pay.metrics()


def signed_succeeded_event(intent_id: str, application_id: str, amount: int) -> dict[str, Any]:
    """A correctly signed `payment_intent.succeeded` written by whoever holds the secret."""
    return {
        "id": f"evt_forged_{intent_id}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "livemode": False,
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "status": "succeeded",
                "amount": amount,
                "amount_received": amount,
                "currency": "mxn",
                "payment_method_types": ["card"],
                "metadata": {"application_id": application_id},
            }
        },
    }


async def test_a_signed_event_for_an_intent_stripe_does_not_have_changes_nothing(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    # The alert's series exists at 0 before the first forgery, so that one is an increase.
    unconfirmed = (
        'permisos_webhook_events_total{outcome="rejected_unconfirmed",'
        'type="payment_intent.succeeded"}'
    )
    assert f"{unconfirmed} 0.0" in await pay.metrics()
    user = await make_user()
    app_id = await pay.new_application(user)
    price = (await pay.application(user, app_id))["amount_centavos"]
    event = signed_succeeded_event("pi_never_created_at_stripe", app_id, price)

    r = await pay.post_event(event)
    assert r.status_code == 200 and r.json()["outcome"] == "rejected_unconfirmed"
    assert (await pay.application(user, app_id))["status"] == "draft"
    assert pay.outbox_rows(app_id) == []
    assert pay.sql("SELECT count(*) FROM payments WHERE application_id = %s", app_id) == [(0,)]
    assert pay.sql("SELECT outcome FROM payment_events WHERE id = %s", event["id"]) == [
        ("rejected_unconfirmed",)
    ]
    assert f"{unconfirmed} 1.0" in await pay.metrics()
    # Delivered again, it stays a duplicate of the refused one.
    assert (await pay.post_event(event)).json()["outcome"] == "duplicate"


async def test_a_signed_succeeded_for_an_intent_stripe_says_is_unpaid_changes_nothing(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    pay.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
    app_id = await pay.new_application(user)
    r = await pay.pay(user, app_id, method="oxxo")
    intent_id = r.json()["intent_id"]
    price = (await pay.application(user, app_id))["amount_centavos"]
    # The voucher is issued, not paid: Stripe reports requires_action.
    r = await pay.post_event(signed_succeeded_event(intent_id, app_id, price))
    assert r.status_code == 200 and r.json()["outcome"] == "rejected_unconfirmed"
    assert (await pay.application(user, app_id))["status"] == "payment_pending"
    assert pay.sql("SELECT status FROM payments WHERE application_id = %s", app_id) == [
        ("requires_action",)
    ]
    assert pay.outbox_rows(app_id) == []

    # Once the voucher is paid at the store, Stripe's own event is applied.
    pay.sim.pay_oxxo(intent_id)
    genuine = next(e for e in pay.events_for(intent_id) if e["type"].endswith(".succeeded"))
    assert (await pay.post_event(genuine)).json()["outcome"] == "applied"
    assert (await pay.application(user, app_id))["status"] == "paid"
    assert len(pay.outbox_rows(app_id)) == 1


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
    app_id, succeeded = await voucher_paid_at_the_store(pay, user)

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
