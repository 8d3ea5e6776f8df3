"""Refunding an application whose permit failed: a card through Stripe, an OXXO payment by hand
(Stripe cannot refund cash), recorded when an admin says it was done."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import Principal
from ..db import utcnow
from ..models import Application, ApplicationStatus, Payment, PaymentMethod
from ..payments.service import provider_problem
from ..problems import ProblemError
from . import audit
from .failed import failed_application


def refund_key(payment_id: uuid.UUID) -> str:
    """The same payment always sends the same key: a retried refund refunds once."""
    return f"{payment_id}:refund"


@dataclass(frozen=True)
class Refunded:
    application_id: uuid.UUID
    payment_id: uuid.UUID
    outcome: Literal["refunded", "manual_refund_required"]
    refund_id: str | None


def refund_application(
    db: Session, client: stripe.StripeClient, admin: Principal, application_id: uuid.UUID
) -> Refunded:
    """Only while `permit_failed` with a payment not yet refunded. Commits."""
    app = failed_application(db, application_id, "refunded")
    payment = db.scalars(
        select(Payment)
        .where(
            Payment.application_id == app.id,
            Payment.status == "succeeded",
            Payment.refunded_at.is_(None),
            # An extra payment (money for an application already paid) is a human's refund,
            # listed apart: this refunds the payment that paid the application.
            Payment.manual_refund_required.is_(False),
        )
        .order_by(Payment.succeeded_at.desc())
        .with_for_update()
    ).first()
    if payment is None:
        raise ProblemError("invalid-state", "The application has no payment left to refund.")
    if payment.method == PaymentMethod.oxxo:
        payment.manual_refund_required = True
        db.commit()
        audit.record(admin, "flag_manual_refund", application=app.id, payment=payment.id)
        return Refunded(app.id, payment.id, "manual_refund_required", None)
    try:
        refund = client.v1.refunds.create(
            params={"payment_intent": payment.stripe_payment_intent_id},
            options={"idempotency_key": refund_key(payment.id)},
        )
    except stripe.StripeError as exc:
        raise provider_problem(exc) from None
    now = utcnow()
    payment.refund_id = refund.id
    payment.refunded_at = now
    app.status = ApplicationStatus.refunded.value
    app.updated_at = now
    db.commit()
    audit.record(admin, "refund", application=app.id, payment=payment.id, refund=refund.id)
    return Refunded(app.id, payment.id, "refunded", refund.id)


def awaiting_manual_refund(db: Session, admin: Principal) -> list[Payment]:
    """Flagged and not yet refunded, oldest first."""
    rows = db.scalars(
        select(Payment)
        .where(Payment.manual_refund_required.is_(True), Payment.refunded_at.is_(None))
        .order_by(Payment.updated_at, Payment.id)
    ).all()
    audit.record(admin, "list_manual_refunds")
    return list(rows)


def record_manual_refund(db: Session, admin: Principal, payment_id: uuid.UUID) -> Payment:
    """The money went back by hand: the payment is refunded, and an application whose permit
    failed becomes `refunded` (an extra payment leaves its application as it is). Commits."""
    payment = db.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise ProblemError("not-found", "No such payment.")
    if not payment.manual_refund_required or payment.refunded_at is not None:
        raise ProblemError("invalid-state", "This payment is not awaiting a manual refund.")
    now = utcnow()
    payment.refunded_at = now
    app = db.get(Application, payment.application_id, with_for_update=True)
    if app is not None and app.status == ApplicationStatus.permit_failed:
        app.status = ApplicationStatus.refunded.value
        app.updated_at = now
    db.commit()
    audit.record(admin, "manual_refund", application=payment.application_id, payment=payment.id)
    return payment
