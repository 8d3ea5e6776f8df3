"""Attacks on POST /v1/webhooks/stripe: deliveries without a signature, signed with another
secret, tampered after signing, too old, replayed; signed events whose payload Stripe does not
confirm (an intent it does not have, another amount, currency or state); intents Stripe confirms
at another amount or currency than the application's. Each is refused or ignored, leaves the
application and payment rows as they were, and is counted in /metrics as Prometheus reads it."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from permisos_api.metrics import PAYMENT_EVENT_TYPES
from permisos_sandbox.payments import sign
from tests.api.conftest import User
from tests.api.payments_support import WEBHOOK_SECRET, Pay

SUCCEEDED = "payment_intent.succeeded"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def increases(before: str, after: str) -> dict[str, float]:
    """The webhook counters that went up between two scrapes, as `name{k=v,...}`: increase."""
    old, new = samples(before), samples(after)
    return {
        f"{name}{{{','.join(f'{k}={v}' for k, v in sorted(labels))}}}": value - old.get(key, 0)
        for key, value in new.items()
        for name, labels in [key]
        if name.startswith("permisos_webhook_")
        and name.endswith("_total")  # not the series' `_created` times
        and value != old.get(key, 0)
    }


def refused(reason: str) -> dict[str, float]:
    return {f"permisos_webhook_signature_failures_total{{reason={reason}}}": 1.0}


def counted(event_type: str, outcome: str) -> dict[str, float]:
    label = event_type if event_type in PAYMENT_EVENT_TYPES else "other"  # bounded values
    return {f"permisos_webhook_events_total{{outcome={outcome},type={label}}}": 1.0}


def rows(pay: Pay, app_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """What a webhook could change: the application, its payments and its outbox."""
    return {
        "application": pay.sql(
            "SELECT status, payment_method, paid_at, amount_centavos, currency "
            "FROM applications WHERE id = %s",
            app_id,
        ),
        "payments": pay.sql(
            "SELECT id, status, amount_centavos, currency, succeeded_at, last_error_code, "
            "last_event_at, updated_at FROM payments WHERE application_id = %s ORDER BY created_at",
            app_id,
        ),
        "outbox": pay.sql("SELECT kind FROM outbox WHERE application_id = %s", app_id),
    }


def event_outcome(pay: Pay, event_id: str) -> list[tuple[Any, ...]]:
    return pay.sql("SELECT outcome FROM payment_events WHERE id = %s", event_id)


def signed_succeeded_event(intent_id: str, application_id: str, amount: int) -> dict[str, Any]:
    """A correctly signed `payment_intent.succeeded` written by whoever holds the secret."""
    return {
        "id": f"evt_forged_{intent_id}",
        "object": "event",
        "type": SUCCEEDED,
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


def claiming(event: dict[str, Any], name: str, **intent: Any) -> dict[str, Any]:
    """The event under a new id, its intent saying `intent` instead."""
    forged = copy.deepcopy(event)
    forged["id"] = f"{event['id']}_{name}"
    forged["data"]["object"].update(intent)
    return forged


async def test_unsigned_forged_tampered_stale_and_malformed_deliveries_are_refused(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    user = await make_user()
    app_id, succeeded = await pay.paid_voucher(user)
    before = rows(pay, app_id)
    assert before["application"][0][0] == "payment_pending"
    genuine = json.dumps(succeeded)
    tampered = json.dumps(claiming(succeeded, "tampered", amount=100, amount_received=100))
    tolerance = pay.api.settings.stripe_webhook_tolerance_seconds
    cases: dict[str, tuple[str | bytes, str | None]] = {
        "missing": (genuine, None),
        "mismatch": (genuine, sign(genuine, "whsec_someone_else")),
        # Stripe's own signature, on a body changed after signing.
        "tampered": (tampered, sign(genuine, WEBHOOK_SECRET)),
        # A genuine delivery captured and sent again after the tolerance.
        "stale": (genuine, sign(genuine, WEBHOOK_SECRET, int(time.time()) - tolerance - 5)),
        "malformed": ('["not", "an", "event"]', sign('["not", "an", "event"]', WEBHOOK_SECRET)),
        "not UTF-8": (b"\xff\xfe{}", sign("{}", WEBHOOK_SECRET)),
    }
    for case, (payload, signature) in cases.items():
        scrape = await pay.metrics()
        r = await pay.deliver(payload, signature)
        assert r.status_code == 400, (case, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["type"].endswith("/invalid-signature")
        reason = {"tampered": "mismatch", "not UTF-8": "malformed"}.get(case, case)
        assert increases(scrape, await pay.metrics()) == refused(reason), case
        assert rows(pay, app_id) == before, case
        assert event_outcome(pay, succeeded["id"]) == [], case

    # An API without a webhook secret refuses everything, whatever the signature.
    unconfigured = pay.api.app(stripe_webhook_secret=SecretStr(""))
    client = pay.api.client(unconfigured)
    scrape = (await client.get("/metrics")).text
    signature = sign(genuine, WEBHOOK_SECRET)
    r = await client.post(
        "/v1/webhooks/stripe", content=genuine, headers={"Stripe-Signature": signature}
    )
    assert r.status_code == 400
    assert increases(scrape, (await client.get("/metrics")).text) == refused("unconfigured")
    assert rows(pay, app_id) == before

    # The genuine delivery is applied: the refusals were about the deliveries, nothing else.
    scrape = await pay.metrics()
    assert (await pay.post_event(succeeded)).json()["outcome"] == "applied"
    assert rows(pay, app_id)["application"][0][0] == "paid"
    assert increases(scrape, await pay.metrics()) == counted(SUCCEEDED, "applied")


async def test_a_replayed_delivery_is_a_counted_duplicate_that_changes_nothing(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    """Stripe's own deliveries (the simulator's, over HTTP), then each sent again."""
    user = await make_user()
    app_id = await pay.new_application(user)
    intent_id = (await pay.pay(user, app_id, method="oxxo")).json()["intent_id"]
    pay.sim.pay_oxxo(intent_id)
    await pay.sim.wait_for_deliveries()
    await pay.status_becomes(user, app_id, "paid")
    delivered = pay.events_for(intent_id)
    assert SUCCEEDED in {e["type"] for e in delivered}
    after_delivery = rows(pay, app_id)
    assert len(after_delivery["outbox"]) == 1

    for event in delivered:
        scrape = await pay.metrics()
        r = await pay.post_event(event)
        assert r.status_code == 200 and r.json()["outcome"] == "duplicate", r.text
        assert increases(scrape, await pay.metrics()) == counted(event["type"], "duplicate")
        assert rows(pay, app_id) == after_delivery
    count = pay.sql("SELECT count(*) FROM payment_events WHERE payment_intent_id = %s", intent_id)
    assert count == [(len(delivered),)]


async def test_signed_events_that_stripe_does_not_confirm_change_nothing(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    """Whoever holds the webhook secret still cannot pay an application: each event's intent is
    asked of Stripe, and a payload that Stripe contradicts is recorded and not applied."""
    # The alert's series exists at 0 before the first forgery, so that one is an increase.
    assert (
        samples(await pay.metrics())[
            (
                "permisos_webhook_events_total",
                frozenset({"type": SUCCEEDED, "outcome": "rejected_unconfirmed"}.items()),
            )
        ]
        == 0
    )
    user = await make_user()
    app_id, succeeded = await pay.paid_voucher(user)  # Stripe holds the money, we do not know yet
    unpaid_app = await pay.new_application(user)
    unpaid_intent = (await pay.pay(user, unpaid_app, method="oxxo")).json()["intent_id"]
    price = succeeded["data"]["object"]["amount"]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("unknown intent", signed_succeeded_event("pi_never_at_stripe", app_id, price), app_id),
        ("another amount", claiming(succeeded, "amount", amount=100, amount_received=100), app_id),
        ("another currency", claiming(succeeded, "currency", currency="usd"), app_id),
        (
            "another application",
            claiming(succeeded, "app", metadata={"application_id": unpaid_app}),
            app_id,
        ),
        # The voucher is issued, not paid: Stripe reports requires_action.
        ("unpaid intent", signed_succeeded_event(unpaid_intent, unpaid_app, price), unpaid_app),
    ]
    for case, event, target in cases:
        before = rows(pay, target)
        scrape = await pay.metrics()
        r = await pay.post_event(event)
        assert r.status_code == 200 and r.json()["outcome"] == "rejected_unconfirmed", case
        assert increases(scrape, await pay.metrics()) == counted(SUCCEEDED, "rejected_unconfirmed")
        assert rows(pay, target) == before, case
        assert event_outcome(pay, event["id"]) == [("rejected_unconfirmed",)], case

    # An intent of no application of ours: recorded, ignored, counted.
    stranger = signed_succeeded_event("pi_of_someone_else", "", price)
    stranger["data"]["object"]["metadata"] = {}
    scrape = await pay.metrics()
    assert (await pay.post_event(stranger)).json()["outcome"] == "ignored_unknown"
    assert increases(scrape, await pay.metrics()) == counted(SUCCEEDED, "ignored_unknown")
    assert event_outcome(pay, stranger["id"]) == [("ignored_unknown",)]

    # Stripe's own event is applied; the unpaid application never moved.
    assert (await pay.post_event(succeeded)).json()["outcome"] == "applied"
    assert (await pay.application(user, app_id))["status"] == "paid"
    assert (await pay.application(user, unpaid_app))["status"] == "payment_pending"


async def test_intents_stripe_confirms_at_another_amount_or_currency_are_never_paid(
    pay: Pay, make_user: Callable[..., Any]
) -> None:
    """Stripe itself reports the intent succeeded, but not at the application's price in pesos
    (repriced at Stripe after we created it, or made at Stripe by someone with our key)."""
    user: User = await make_user()
    pay.sim.configure_webhook(pay.webhook_url, WEBHOOK_SECRET)  # Stripe's deliveries, over HTTP

    async def succeeded_event(intent_id: str) -> dict[str, Any]:
        await pay.sim.wait_for_deliveries()
        return next(e for e in pay.events_for(intent_id) if e["type"] == SUCCEEDED)

    for change in ({"amount": 1_000}, {"currency": "usd"}):
        # Our own card intent, waiting for the browser's Stripe.js, repriced at Stripe.
        app_id = await pay.new_application(user)
        r = await pay.pay(user, app_id, method="card")
        assert r.status_code == 201, r.text
        intent_id = r.json()["intent_id"]
        await pay.sim.wait_for_deliveries()
        before = rows(pay, app_id)
        scrape = await pay.metrics()
        await pay.sim_call(pay.stripe.v1.payment_intents.update, intent_id, params=change)
        await pay.sim_call(
            pay.stripe.v1.payment_intents.confirm,
            intent_id,
            params={"payment_method": "pm_card_visa"},
        )
        event = await succeeded_event(intent_id)
        assert event_outcome(pay, event["id"]) == [("rejected_mismatch",)], change
        assert increases(scrape, await pay.metrics()) == counted(SUCCEEDED, "rejected_mismatch")
        assert rows(pay, app_id) == before, change

        # An intent made at Stripe for a draft application, with its id but not its terms.
        app_id = await pay.new_application(user)
        price = (await pay.application(user, app_id))["amount_centavos"]
        terms = {"amount": price, "currency": "mxn", **change}
        scrape = await pay.metrics()
        intent = await pay.sim_call(
            pay.stripe.v1.payment_intents.create,
            params={
                **terms,
                "payment_method_types": ["card"],
                "payment_method": "pm_card_visa",
                "confirm": True,
                "metadata": {"application_id": app_id},
            },
        )
        event = await succeeded_event(intent.id)
        assert event_outcome(pay, event["id"]) == [("rejected_mismatch",)], change
        # Its creation too, an event the endpoint does not act on.
        created = counted("payment_intent.created", "ignored_unknown")
        mismatch = counted(SUCCEEDED, "rejected_mismatch")
        assert increases(scrape, await pay.metrics()) == created | mismatch
        assert rows(pay, app_id) == {
            "application": [("draft", None, None, price, "MXN")],
            "payments": [],
            "outbox": [],
        }
