"""Stripe webhook events: verified, deduplicated by event id, audited, applied.

`verify` checks the signature on the raw body (and the timestamp's age) with the SDK.
`process_event` runs in ONE transaction and makes no network call: it first inserts the event
into payment_events (a redelivery finds it there and stops), then applies the intent through
`service.apply_intent`, then records the outcome on the event row.
"""

from __future__ import annotations

import json
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
from ..models import Application, Payment, PaymentEvent
from .intents import IntentSnapshot
from .service import Transition, apply_intent

HANDLED = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.processing",
        "payment_intent.canceled",
    }
)


class SignatureError(Exception):
    pass


def verify(payload: bytes, header: str | None, secret: str, tolerance: int) -> dict[str, Any]:
    if not header or not secret:
        raise SignatureError("missing signature or secret")
    try:
        stripe.Webhook.construct_event(payload, header, secret, tolerance=tolerance)
    except (stripe.SignatureVerificationError, ValueError) as exc:
        raise SignatureError(type(exc).__name__) from exc
    event = json.loads(payload)
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise SignatureError("not an event")
    return event


@dataclass
class Processed:
    event_type: str
    outcome: str  # applied | ignored_stale | ignored_unknown | rejected_mismatch | duplicate
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


def process_event(db: Session, event: Mapping[str, Any]) -> Processed:
    """Apply one verified event. The caller's session must not be in a transaction."""
    event_type = str(event.get("type") or "")
    created = event.get("created")
    event_at = datetime.fromtimestamp(created, UTC) if isinstance(created, int) else utcnow()
    obj = (event.get("data") or {}).get("object") or {}
    snap = IntentSnapshot.from_object(obj) if obj.get("object") == "payment_intent" else None
    with db.begin():
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
                application_id=_application_id(db, snap),
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
        if snap is None or event_type not in HANDLED:
            return Processed(event_type, "ignored_unknown")
        transition = apply_intent(db, snap, event_at=event_at)
        db.execute(
            update(PaymentEvent)
            .where(PaymentEvent.id == inserted)
            .values(outcome=transition.outcome)
        )
    return Processed(event_type, transition.outcome, transition)
