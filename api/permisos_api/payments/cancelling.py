"""Cancelling the PaymentIntents an application no longer needs, as Stripe advises for an order
that will not be paid: a card intent left open (its client_secret still in a browser tab) could
take money after the applicant cancelled or chose OXXO instead, and that money would wait for a
person to refund it.

Each open intent is cancelled at Stripe (idempotently) and Stripe's answer is applied like any
other read of it (`service.apply_intent`). One Stripe no longer lets us cancel has moved on (paid,
settling): what Stripe has now is applied instead, and the caller sees the application move. A
failure to reach Stripe leaves the intent open and logged; money arriving on it is still flagged
for a refund, as before.
"""

from __future__ import annotations

import logging

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..context import Services
from ..models import Application, Payment
from ..problems import ProblemError
from .intents import IntentSnapshot
from .service import PAYABLE, Transition, apply_intent, deliver
from .state import OPEN
from .stripe_client import cancel_key

log = logging.getLogger("permisos_api.payments")


def cancel_open_intents(
    db: Session, client: stripe.StripeClient, app: Application, method: str | None = None
) -> list[Transition]:
    """Cancels `app`'s open intents (of `method` only, if given). The caller holds the
    application's row lock and commits; it delivers the transitions' mails after that."""
    query = select(Payment).where(Payment.application_id == app.id, Payment.status.in_(OPEN))
    if method is not None:
        query = query.where(Payment.method == method)
    transitions = []
    for payment in db.scalars(query).all():
        intent_id = payment.stripe_payment_intent_id
        try:
            try:
                intent = client.v1.payment_intents.cancel(
                    intent_id,
                    params={"cancellation_reason": "abandoned"},
                    options={"idempotency_key": cancel_key(app.id, intent_id)},
                )
            except stripe.InvalidRequestError:
                # Not cancellable any more: it took the money or is taking it.
                intent = client.v1.payment_intents.retrieve(intent_id)
        except stripe.StripeError as exc:
            log.warning(
                "payment intent left open: payment=%s intent=%s: %s status=%s",
                payment.id,
                intent_id,
                type(exc).__name__,
                exc.http_status,
            )
            continue
        transitions.append(apply_intent(db, IntentSnapshot.from_object(intent)))
    return transitions


def cancel_or_refuse(
    db: Session, svc: Services, app: Application, method: str | None = None
) -> list[Transition]:
    """`cancel_open_intents`, for a change only an unpaid application allows (cancelling it,
    choosing OXXO): when one of the intents took the money meanwhile, the application is paid;
    that is committed, its mails sent, and the change refused (409 invalid-state)."""
    moved = cancel_open_intents(db, svc.stripe, app, method)
    if app.status not in PAYABLE:
        db.commit()
        for transition in moved:
            deliver(transition, svc.mailer, svc.metrics)
        raise ProblemError("invalid-state", f"The application was {app.status} meanwhile.")
    return moved
