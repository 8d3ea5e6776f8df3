"""The payment's life in the database: creation, the one transition function, expiry.

`apply_intent` is the only place a payment or its application changes state because of Stripe.
The payment request's synchronous answer, every webhook (through a fresh retrieval of its
intent) and the reconciliation command all go through it, inside the caller's transaction and
without any network call of its own, so each path is idempotent and they cannot disagree. It
locks the application row first, then the payment row, the same order payment creation uses.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from permisos.database import upsert

from ..db import utcnow
from ..mail import Mailer
from ..metrics import Metrics
from ..models import Application, ApplicationStatus, Outbox, Payment, PaymentMethod
from ..problems import FieldError, ProblemError, validation_problem
from ..settings import ApiSettings
from . import mails
from .intents import IntentSnapshot
from .state import FINAL, PENDING, SUCCEEDED, Decision, decide
from .stripe_client import intent_key

log = logging.getLogger("permisos_api.payments")

# OXXO's limits in MXN: 10.00 to 10,000.00.
OXXO_MIN_CENTAVOS = 1_000
OXXO_MAX_CENTAVOS = 1_000_000
PERMIT_REQUEST = "permit_request"

PAYABLE = frozenset({ApplicationStatus.draft, ApplicationStatus.awaiting_payment})
# Where a payment may still move the application (besides money arriving, which always counts).
_FOLLOWS_PAYMENT = frozenset(
    {
        ApplicationStatus.draft,
        ApplicationStatus.awaiting_payment,
        ApplicationStatus.payment_pending,
    }
)
_PAID_FROM = _FOLLOWS_PAYMENT | {ApplicationStatus.expired}


@dataclass
class Mail:
    to: str
    kind: str  # of `letters.py`
    context: dict[str, Any]


@dataclass
class Transition:
    """What `apply_intent` did; `deliver` does the rest after the transaction commits."""

    outcome: str  # applied | ignored_stale | ignored_unknown | rejected_mismatch
    payment: Payment | None = None
    changed: bool = False
    became_paid: bool = False
    payment_outcome: str | None = None  # for permisos_payments_total
    refund_flagged: bool = False  # money a human must give back (permisos_payments_manual_...)
    mail: Mail | None = None


def deliver(transition: Transition, mailer: Mailer | None, metrics: Metrics | None) -> None:
    """The effects that must not happen inside the transaction: metrics and mail."""
    payment = transition.payment
    if metrics is not None and transition.payment_outcome and payment is not None:
        metrics.payments.labels(payment.method, transition.payment_outcome).inc()
    if metrics is not None and transition.refund_flagged:
        metrics.manual_refunds_flagged.inc()
    if mailer is not None and transition.mail is not None:
        m = transition.mail
        mailer.send_or_log(m.to, m.kind, **m.context)  # a mail outage must not undo a payment


def _is_failed(status: str, error_code: str | None) -> bool:
    return status == "requires_payment_method" and error_code is not None


def apply_intent(db: Session, snap: IntentSnapshot, *, now: datetime | None = None) -> Transition:
    """Move the payment (and its application) to what Stripe says, if the state machine allows.

    `snap` is what Stripe's API answered for the intent (a retrieval, or the answer to the call
    that created or confirmed it), never a webhook's payload.
    """
    now = now or utcnow()
    known = db.scalar(
        select(Payment.application_id).where(Payment.stripe_payment_intent_id == snap.id)
    )
    application_id = known or snap.application_uuid
    if application_id is None:
        return Transition("ignored_unknown")
    app = db.get(Application, application_id, with_for_update=True, populate_existing=True)
    if app is None:
        return Transition("ignored_unknown")
    payment = db.scalars(
        select(Payment)
        .where(Payment.stripe_payment_intent_id == snap.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if payment is None:
        adopted = _adopt(db, app, snap, now)
        if isinstance(adopted, Transition):
            return adopted
        payment = adopted

    mismatch = _mismatch(app, payment, snap)
    if mismatch:
        # Alert-worthy; ids only, never the person.
        log.error(
            "ALERT payment mismatch, not applied: intent=%s payment=%s field=%s",
            snap.id,
            payment.id,
            mismatch,
        )
        return Transition("rejected_mismatch", payment, payment_outcome="rejected_mismatch")

    new = snap.local_status
    new_failed = _is_failed(new, snap.error_code)
    decision = decide(
        payment.status, _is_failed(payment.status, payment.last_error_code), new, new_failed
    )
    if decision is Decision.stale:
        return Transition("ignored_stale", payment)
    if decision is Decision.same:
        return Transition("applied", payment)

    payment.status = new
    payment.updated_at = now
    if new_failed or new == "expired":
        payment.last_error_code = snap.error_code
        payment.decline_code = snap.decline_code
    elif new in PENDING:
        payment.last_error_code = payment.decline_code = None
    if snap.voucher is not None and snap.voucher.number:
        payment.voucher_number = snap.voucher.number
        payment.voucher_url = snap.voucher.url
        payment.voucher_expires_at = snap.voucher.expires_at
    transition = Transition("applied", payment, changed=True)
    if new == SUCCEEDED:
        payment.succeeded_at = now
        transition.payment_outcome = "succeeded"
        _paid(db, app, payment, now, transition)
    else:
        if new_failed:
            transition.payment_outcome = "declined" if payment.method == "card" else "failed"
        elif new in FINAL:
            transition.payment_outcome = new
        elif new == "requires_action":
            transition.payment_outcome = "requires_action"
        _follow(db, app, payment, new, new_failed, now)
    return transition


def _adopt(
    db: Session, app: Application, snap: IntentSnapshot, now: datetime
) -> Payment | Transition:
    """An intent for one of our applications that we have no row for (the request that created it
    died before committing): keep it if Stripe reports it with this application's metadata, its
    price and currency, and a state that shows money moving (pending or succeeded)."""
    if snap.application_id != str(app.id) or snap.local_status not in PENDING | {SUCCEEDED}:
        return Transition("ignored_unknown")
    if snap.amount != app.amount_centavos or snap.currency != app.currency:
        log.error(
            "ALERT unknown intent with a wrong amount or currency: intent=%s application=%s",
            snap.id,
            app.id,
        )
        return Transition("rejected_mismatch")
    db.execute(
        upsert(db, Payment)
        .values(
            id=uuid.uuid4(),
            application_id=app.id,
            method=snap.method,
            stripe_payment_intent_id=snap.id,
            idempotency_key=f"adopted:{snap.id}",
            status="requires_payment_method",
            amount_centavos=snap.amount,
            currency=app.currency,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    log.warning("adopted an intent created without a record: intent=%s", snap.id)
    return db.scalars(
        select(Payment).where(Payment.stripe_payment_intent_id == snap.id).with_for_update()
    ).one()


def _mismatch(app: Application, payment: Payment, snap: IntentSnapshot) -> str | None:
    if snap.application_id != str(app.id) or payment.application_id != app.id:
        return "metadata.application_id"
    if snap.currency != payment.currency or snap.currency != app.currency:
        return "currency"
    if snap.amount != payment.amount_centavos:
        return "amount"
    if snap.local_status == SUCCEEDED and snap.amount != app.amount_centavos:
        return "amount"
    return None


def _paid(
    db: Session, app: Application, payment: Payment, now: datetime, transition: Transition
) -> None:
    # An erased application (account deletion, cleanup) carries placeholders, not a person: a
    # permit for it would be for nobody, so its money is refunded like a cancelled one's.
    if app.status in _PAID_FROM and app.anonymized_at is None:
        app.status = ApplicationStatus.paid.value
        app.paid_at = now
        app.payment_method = payment.method
        app.updated_at = now
        # In this same transaction: the dispatcher turns it into a PermitRequest.
        db.execute(
            upsert(db, Outbox)
            .values(
                application_id=app.id,
                kind=PERMIT_REQUEST,
                created_at=now,
                attempts=0,
                next_attempt_at=now,
            )
            .on_conflict_do_nothing(index_elements=["application_id", "kind"])
        )
        transition.became_paid = True
        transition.mail = Mail(app.email, "payment_received", mails.payment_received(app))
        log.info("application paid: application=%s payment=%s", app.id, payment.id)
        return
    # Money for an application already paid by another payment, cancelled or erased: a human
    # refunds it.
    payment.manual_refund_required = True
    transition.refund_flagged = True
    log.error(
        "ALERT payment succeeded for an application in status %s: application=%s payment=%s; "
        "flagged for a manual refund",
        app.status,
        app.id,
        payment.id,
    )


def _follow(
    db: Session, app: Application, payment: Payment, new: str, failed: bool, now: datetime
) -> None:
    """The application follows its latest payment attempt; older attempts do not move it."""
    if app.status not in _FOLLOWS_PAYMENT:
        return
    latest = db.scalar(
        select(Payment.id)
        .where(Payment.application_id == app.id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(1)
    )
    if latest != payment.id:
        return
    if new in PENDING:
        target = ApplicationStatus.payment_pending
    elif failed or new in FINAL:
        target = ApplicationStatus.awaiting_payment
    elif app.status == ApplicationStatus.draft:
        target = ApplicationStatus.awaiting_payment  # a card intent awaiting Stripe.js
    else:
        return
    if app.status != target:
        app.status = target.value
        app.updated_at = now


# --- creation ---------------------------------------------------------------------------------


@dataclass
class Created:
    payment: Payment
    snapshot: IntentSnapshot
    transition: Transition
    declined: bool


def check_oxxo_amount(amount_centavos: int) -> None:
    if not OXXO_MIN_CENTAVOS <= amount_centavos <= OXXO_MAX_CENTAVOS:
        raise validation_problem(
            [
                FieldError(
                    field="method",
                    rule="oxxo_amount_limits",
                    detail="OXXO accepts amounts from 10.00 to 10,000.00 MXN",
                )
            ]
        )


def _intent_params(
    app: Application,
    method: str,
    payment_method: str | None,
    return_url: str | None,
    attempt: int,
    s: ApiSettings,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "amount": app.amount_centavos,
        "currency": app.currency.lower(),
        "payment_method_types": [method],
        "metadata": {"application_id": str(app.id), "attempt": str(attempt)},
    }
    if method == PaymentMethod.oxxo:
        names = " ".join(n for n in (app.first_name, app.last_name, app.maternal_surname) if n)
        # Stripe requires the buyer's name and email for OXXO; they go to Stripe only.
        params["payment_method_data"] = {
            "type": "oxxo",
            "billing_details": {"name": names, "email": app.email},
        }
        params["payment_method_options"] = {
            "oxxo": {"expires_after_days": s.oxxo_expires_after_days}
        }
        params["confirm"] = True
    elif payment_method:
        params["payment_method"] = payment_method
        params["confirm"] = True
        if return_url:
            params["return_url"] = return_url
    return params


def create_payment(
    db: Session,
    client: stripe.StripeClient,
    settings: ApiSettings,
    app: Application,
    method: str,
    payment_method: str | None,
    return_url: str | None = None,
) -> Created:
    """Create (and for OXXO or a given card method, confirm) a PaymentIntent for `app`.

    The caller holds the application's row lock, so attempts of one application are serialized
    and a webhook for the new intent waits until this transaction commits.
    """
    if method == PaymentMethod.oxxo:
        check_oxxo_amount(app.amount_centavos)
    count = db.scalar(
        select(func.count()).select_from(Payment).where(Payment.application_id == app.id)
    )
    attempt = (count or 0) + 1
    key = intent_key(app.id, method, attempt)
    params = _intent_params(app, method, payment_method, return_url, attempt, settings)
    declined = False
    try:
        intent = client.v1.payment_intents.create(
            params=params,  # type: ignore[arg-type]
            options={"idempotency_key": key},
        )
        snap = IntentSnapshot.from_object(intent)
    except stripe.CardError as exc:
        failed = exc.error.payment_intent if exc.error is not None else None
        if failed is None:
            raise provider_problem(exc) from None
        snap = IntentSnapshot.from_object(failed)
        declined = True
    except stripe.InvalidRequestError as exc:
        if exc.param and exc.param.startswith("payment_method"):
            raise validation_problem(
                [
                    FieldError(
                        field="payment_method",
                        rule=exc.code or "invalid",
                        detail="Stripe does not accept this payment method",
                    )
                ]
            ) from None
        raise provider_problem(exc) from None
    except stripe.StripeError as exc:
        raise provider_problem(exc) from None

    now = utcnow()
    db.execute(
        upsert(db, Payment)
        .values(
            id=uuid.uuid4(),
            application_id=app.id,
            method=method,
            stripe_payment_intent_id=snap.id,
            idempotency_key=key,
            # The state every intent starts in; apply_intent moves it to what Stripe answered.
            status="requires_payment_method",
            amount_centavos=app.amount_centavos,
            currency=app.currency,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    transition = apply_intent(db, snap, now=now)
    payment = db.scalars(select(Payment).where(Payment.stripe_payment_intent_id == snap.id)).one()
    if not transition.changed and transition.outcome == "applied":
        # Still in its first state (a card intent awaiting Stripe.js): the draft awaits payment.
        _follow(db, app, payment, payment.status, False, now)
    outcome = "declined" if declined else "initiated"
    if transition.payment_outcome is None:
        transition.payment_outcome = outcome
    log.info("payment created: payment=%s method=%s status=%s", payment.id, method, payment.status)
    return Created(payment, snap, transition, declined)


def provider_problem(exc: stripe.StripeError) -> ProblemError:
    log.warning(
        "stripe call failed: %s status=%s code=%s request=%s",
        type(exc).__name__,
        exc.http_status,
        exc.code,
        exc.request_id,
    )
    return ProblemError(
        "payment-provider-error",
        "The payment provider could not be reached or refused the request; try again.",
        headers={"Retry-After": "10"},
    )


# --- expiry -----------------------------------------------------------------------------------


def expire_abandoned_applications(
    db: Session, grace_days: int, now: datetime | None = None
) -> list[uuid.UUID]:
    """Applications back in awaiting_payment because their latest OXXO voucher expired more
    than `grace_days` ago become `expired`. Returns their ids; the caller commits."""
    now = now or utcnow()
    cutoff = now - timedelta(days=grace_days)
    ranked = select(
        Payment.application_id,
        Payment.status,
        Payment.updated_at,
        func.row_number()
        .over(
            partition_by=Payment.application_id,
            order_by=(Payment.created_at.desc(), Payment.id.desc()),
        )
        .label("n"),
    ).subquery()
    lapsed = select(ranked.c.application_id).where(
        ranked.c.n == 1, ranked.c.status == "expired", ranked.c.updated_at < cutoff
    )
    apps = db.scalars(
        select(Application)
        .where(
            Application.status == ApplicationStatus.awaiting_payment,
            Application.id.in_(lapsed),
        )
        .with_for_update(skip_locked=True)
    ).all()
    for app in apps:
        app.status = ApplicationStatus.expired.value
        app.updated_at = now
    if apps:
        log.info("applications expired after an unpaid OXXO voucher: %d", len(apps))
    return [app.id for app in apps]
