"""Stripe webhook events: verified, deduplicated by event id, audited, confirmed, applied.

`verify` checks the signature on the raw body (and the timestamp's age) with the SDK. A verified
event is still only a notification: as Stripe's guide says, its payload may be stale, out of
order, or (if the signing secret leaked) invented. `process_event` runs in ONE transaction: it
inserts the event into payment_events (a redelivery finds it there and stops), locks the
application, retrieves the PaymentIntent from Stripe's API, and applies what Stripe answered
through `service.apply_intent`, then records the outcome on the event row. Retrieving under the
application's lock keeps the reads of one application in order. An intent Stripe does not have,
or a payload that contradicts Stripe (another amount, currency or application, or "succeeded"
for an intent that has not), changes nothing and is recorded as `rejected_unconfirmed`. When
Stripe cannot be asked, the transaction rolls back (the event is not recorded) and the endpoint
answers 502, so Stripe delivers the event again; the reconcile command also finds the payment.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from permisos.database import upsert

from ..db import utcnow
from ..metrics import PAYMENT_EVENT_TYPES
from ..models import Application, Payment, PaymentEvent
from .intents import IntentSnapshot
from .service import Transition, apply_intent
from .state import SUCCEEDED
from .stripe_client import Retrieve

log = logging.getLogger("permisos_api.webhooks")

HANDLED = frozenset(PAYMENT_EVENT_TYPES)


class SignatureError(Exception):
    """`reason` is one of metrics.SIGNATURE_FAILURE_REASONS."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def verify(payload: bytes, header: str | None, secret: str, tolerance: int) -> dict[str, Any]:
    if not secret:
        raise SignatureError("unconfigured")
    if not header:
        raise SignatureError("missing")
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        raise SignatureError("malformed") from None
    try:
        # Without a tolerance first: a forgery and a replayed old delivery are told apart.
        stripe.WebhookSignature.verify_header(text, header, secret)
    except stripe.SignatureVerificationError:
        raise SignatureError("mismatch") from None
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, tolerance)
    except stripe.SignatureVerificationError:
        raise SignatureError("stale") from None
    try:
        event = json.loads(text)
    except ValueError:
        raise SignatureError("malformed") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise SignatureError("malformed")
    return event


@dataclass
class Processed:
    event_type: str
    # applied | ignored_stale | ignored_unknown | rejected_mismatch | rejected_unconfirmed
    # | duplicate
    outcome: str
    transition: Transition | None = None


def metric_type(event_type: str) -> str:
    """Bounded label values: the handled types, else `other`."""
    return event_type if event_type in HANDLED else "other"


def _application_id(db: Session, snap: IntentSnapshot | None) -> uuid.UUID | None:
    """The application the event belongs to, if it exists (the column is a foreign key)."""
    if snap is None:
        return None
    known = db.scalar(
        select(Payment.application_id).where(Payment.stripe_payment_intent_id == snap.id)
    )
    if known is not None:
        return known
    candidate = snap.application_uuid
    if candidate is None:
        return None
    return db.scalar(select(Application.id).where(Application.id == candidate))


def _contradiction(claimed: IntentSnapshot, current: IntentSnapshot) -> str | None:
    """The field in which an event's payload contradicts what Stripe reports, if any."""
    for field in ("amount", "currency", "application_id"):
        if getattr(claimed, field) != getattr(current, field):
            return field
    if claimed.local_status == SUCCEEDED and current.local_status != SUCCEEDED:
        return "status"
    return None


def _confirm_and_apply(
    db: Session, claimed: IntentSnapshot, application_id: uuid.UUID, retrieve: Retrieve
) -> Transition:
    """The caller holds the application's row lock: one application's reads stay in order."""
    current = retrieve(claimed.id)
    wrong = "intent" if current is None else _contradiction(claimed, current)
    if current is None or wrong:
        # Alert-worthy (PermisosWebhookUnconfirmed): a correctly signed event that Stripe denies.
        log.error(
            "ALERT webhook not confirmed by Stripe, not applied: intent=%s application=%s field=%s",
            claimed.id,
            application_id,
            wrong,
        )
        return Transition("rejected_unconfirmed")
    transition = apply_intent(db, current)
    if (
        transition.outcome == "applied"
        and not transition.changed
        and claimed.local_status != current.local_status
    ):
        transition.outcome = "ignored_stale"  # the event told of a state Stripe has left
    return transition


def process_event(db: Session, event: Mapping[str, Any], retrieve: Retrieve) -> Processed:
    """Apply one verified event, as Stripe confirms it. The caller's session must not be in a
    transaction. Raises StripeUnavailable (nothing recorded) when Stripe cannot be asked."""
    event_type = str(event.get("type") or "")
    created = event.get("created")
    event_at = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else utcnow()
    obj = (event.get("data") or {}).get("object") or {}
    snap = IntentSnapshot.from_object(obj) if obj.get("object") == "payment_intent" else None
    with db.begin():
        application_id = _application_id(db, snap)
        if application_id is not None:
            # Before the event row, whose foreign key would take a weaker lock on it first: two
            # events of one application then queue here instead of deadlocking.
            db.get(Application, application_id, with_for_update=True)
        if snap is not None:
            detail: dict[str, Any] = snap.audit()
            intent_id: str | None = snap.id
        else:
            related = obj.get("payment_intent")
            intent_id = related if isinstance(related, str) else None
            detail = {"object": obj.get("object"), "id": obj.get("id"), "intent": intent_id}
        inserted = db.execute(
            upsert(db, PaymentEvent)
            .values(
                id=str(event["id"])[:64],
                application_id=application_id,
                payment_intent_id=intent_id[:64] if intent_id else None,
                type=event_type[:64],
                status=snap.status[:32] if snap else None,
                amount_centavos=snap.amount if snap else None,
                currency=snap.currency[:3] if snap and snap.currency else None,
                stripe_created_at=event_at,
                received_at=utcnow(),
                outcome="ignored_unknown",
                detail=detail,
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(PaymentEvent.id)
        ).scalar_one_or_none()
        if inserted is None:
            return Processed(event_type, "duplicate")
        if snap is None or event_type not in HANDLED or application_id is None:
            return Processed(event_type, "ignored_unknown")
        transition = _confirm_and_apply(db, snap, application_id, retrieve)
        payment = transition.payment
        # A refused event leaves the payment as it was (its updated_at too, which reconcile reads).
        refused = transition.outcome == "rejected_mismatch"
        if (
            payment is not None
            and not refused
            and (payment.last_event_at is None or event_at > payment.last_event_at)
        ):
            payment.last_event_at = event_at  # when Stripe last told us about it
        db.execute(
            update(PaymentEvent)
            .where(PaymentEvent.id == inserted)
            .values(outcome=transition.outcome)
        )
    return Processed(event_type, transition.outcome, transition)
