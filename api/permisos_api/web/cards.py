"""The card payment a browser is finishing with Stripe.js: which one is open, its client_secret as
Stripe has it now, and whether Stripe already took the money while its webhook is on its way."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..context import Services
from ..models import Application, ApplicationStatus, Payment
from ..payments.intents import IntentSnapshot
from ..payments.service import PAYABLE
from ..payments.state import OPEN
from ..payments.stripe_client import StripeUnavailable, stripe_retriever

# Stripe has the money, or is settling it: the webhook will make the application paid.
TAKEN = frozenset({"succeeded", "processing"})


def open_card_payment(db: Session, application_id: uuid.UUID) -> Payment | None:
    """The application's newest payment, when it is a card payment still open: paying again by
    card reuses it rather than making a second PaymentIntent."""
    newest = db.scalars(
        select(Payment)
        .where(Payment.application_id == application_id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(1)
    ).first()
    if newest is None or newest.method != "card" or newest.status not in OPEN:
        return None
    return newest


def current_intent(svc: Services, payment: Payment) -> IntentSnapshot | None:
    """The intent as Stripe has it now (the client_secret is not stored here); None when Stripe
    has none. Raises StripeUnavailable."""
    return stripe_retriever(svc.stripe_reads)(payment.stripe_payment_intent_id)


def confirming(db: Session, svc: Services, app: Application, intent_id: str | None) -> bool:
    """Whether the browser just came back from paying `intent_id` by card and Stripe took the
    money, but its webhook has not marked the application paid yet."""
    waiting = PAYABLE | {ApplicationStatus.payment_pending}
    if not intent_id or app.status not in waiting:
        return False
    payment = open_card_payment(db, app.id)
    if payment is None or payment.stripe_payment_intent_id != intent_id:
        return False
    try:
        intent = current_intent(svc, payment)
    except StripeUnavailable:
        return False
    return intent is not None and intent.status in TAKEN
