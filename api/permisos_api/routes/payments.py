"""/v1/applications/{id}/payments: pay an application by card or OXXO, and list its payments.

Only the applicant pays (admins may list); anyone else gets 404, as for the application itself.
The answer reports what Stripe said at once; the webhook is the source of truth for the outcome.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import select

from ..auth import Principal
from ..context import Services
from ..deps import CurrentPrincipal, Db, Svc
from ..models import Application, Payment
from ..payments.intents import IntentSnapshot
from ..payments.paying import pay_application
from ..payments.stripe_client import StripeUnavailable, stripe_retriever
from ..problems import ProblemError, problem_responses
from ..schemas import (
    NextAction,
    PaymentCreated,
    PaymentIn,
    PaymentList,
    PaymentOut,
    RedirectToUrl,
    VoucherOut,
)

router = APIRouter(prefix="/v1/applications", tags=["payments"])


def _visible(app: Application | None, principal: Principal) -> Application:
    if app is None or (app.owner_id != principal.user.id and not principal.is_admin):
        raise ProblemError("not-found", "No such application.")
    return app


@router.post(
    "/{application_id}/payments",
    status_code=status.HTTP_201_CREATED,
    response_model=PaymentCreated,
    summary="Pay an application (card or OXXO)",
    description="Only the applicant, while `draft` or `awaiting_payment`. **card**: a "
    "PaymentIntent; confirm it with Stripe.js and `client_secret`, or pass a test "
    "`payment_method` to confirm it here. A card that needs 3-D Secure answers `requires_action` "
    "with `next_action`: `redirect_to_url.url` (the challenge page, when `return_url` was given) "
    "or `use_stripe_sdk` (for Stripe.js); the outcome arrives by webhook and shows in the "
    "application's status. **oxxo**: a "
    "voucher (number, hosted URL, expiry) payable at any OXXO store; 10.00 to 10,000.00 MXN. "
    "A declined card answers 402 `payment-declined`.",
    responses=problem_responses(401, 402, 403, 404, 409, 422, 502),
)
def pay(
    application_id: uuid.UUID, body: PaymentIn, principal: CurrentPrincipal, db: Db, svc: Svc
) -> PaymentCreated:
    app, created = pay_application(
        db,
        svc,
        application_id,
        principal.user.id,
        body.method,
        body.payment_method,
        body.return_url,
        admin_may_see=principal.is_admin,
    )
    snap, payment = created.snapshot, created.payment
    voucher = None
    if payment.method == "oxxo":
        voucher = VoucherOut(
            number=payment.voucher_number,
            hosted_voucher_url=payment.voucher_url,
            expires_at=payment.voucher_expires_at,
        )
    return PaymentCreated(
        payment_id=payment.id,
        intent_id=payment.stripe_payment_intent_id,
        method=payment.method,
        status=payment.status,
        amount_centavos=payment.amount_centavos,
        currency="MXN",
        application_status=app.status,
        client_secret=snap.client_secret,
        next_action=_next_action(snap),
        voucher=voucher,
    )


def _next_action(snap: IntentSnapshot) -> NextAction | None:
    if not snap.next_action_type:
        return None
    redirect = snap.next_action_redirect
    return NextAction(
        type=snap.next_action_type,
        redirect_to_url=RedirectToUrl(
            url=str(redirect.get("url") or ""), return_url=redirect.get("return_url")
        )
        if redirect and redirect.get("url")
        else None,
        use_stripe_sdk=dict(snap.next_action_sdk) if snap.next_action_sdk else None,
    )


@router.get(
    "/{application_id}/payments",
    response_model=PaymentList,
    summary="List an application's payments",
    description="The applicant or an admin; newest first. For the applicant, a card payment "
    "awaiting 3-D Secure also carries its open `next_action` and `client_secret`, read from "
    "Stripe.",
    responses=problem_responses(401, 403, 404, 422),
)
def list_payments(
    application_id: uuid.UUID, principal: CurrentPrincipal, db: Db, svc: Svc
) -> PaymentList:
    app = _visible(db.get(Application, application_id), principal)
    rows = db.scalars(
        select(Payment)
        .where(Payment.application_id == application_id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
    ).all()
    items = [PaymentOut.model_validate(row) for row in rows]
    is_owner = app.owner_id == principal.user.id
    db.rollback()  # nothing is written; no transaction stays open across the Stripe read
    if is_owner:
        for item in items:
            if item.method == "card" and item.status == "requires_action":
                _open_challenge(svc, item)
    return PaymentList(items=items)


def _open_challenge(svc: Services, item: PaymentOut) -> None:
    """The challenge as Stripe has it now; left out when Stripe cannot say."""
    try:
        current = stripe_retriever(svc.stripe_reads)(item.intent_id)
    except StripeUnavailable:
        return
    if current is not None and current.status == "requires_action":
        item.next_action = _next_action(current)
        item.client_secret = current.client_secret
