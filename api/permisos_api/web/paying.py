"""Paying from an application's page: an OXXO voucher (its reference, amount, expiry in Mexico
City time and Stripe's hosted voucher, printable), or a card through Stripe.js: the page creates
the PaymentIntent (or reuses the open one) and the browser confirms it with Stripe, 3-D Secure
included, so the card number never reaches this server."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..context import Services
from ..deps import Db, Svc
from ..es_mx import pesos
from ..models import Application, ApplicationStatus
from ..payments.paying import pay_application
from ..payments.service import PAYABLE
from ..payments.state import OPEN
from ..payments.stripe_client import StripeUnavailable
from ..problems import ProblemError
from ..security import stripe_js_policy
from . import csrf, forms
from .applying import show_application
from .cards import current_intent, open_card_payment
from .messages import EXPIRED_FORM, problem_message
from .render import page
from .visitor import Visitor, to_login

router = APIRouter(include_in_schema=False)


async def _form_refused(
    request: Request, db: Session, svc: Services, visitor: Principal, application_id: uuid.UUID
) -> Response | None:
    """The application's page again when the form lacks its CSRF token."""
    values = await forms.fields(request, ())
    if csrf.valid(request, values["csrf_token"], visitor):
        return None
    return await run_in_threadpool(
        show_application, request, db, svc, visitor, application_id, alert=EXPIRED_FORM, status=403
    )


def _pay(
    request: Request,
    db: Session,
    svc: Services,
    visitor: Principal,
    application_id: uuid.UUID,
    method: str,
) -> Response | None:
    """Creates the payment; the application's page with what went wrong, or None."""
    try:
        pay_application(db, svc, application_id, visitor.user.id, method)
    except ProblemError as problem:
        db.rollback()
        return show_application(
            request,
            db,
            svc,
            visitor,
            application_id,
            alert=problem_message(problem),
            status=problem.status,
        )
    return None


@router.post("/solicitudes/{application_id}/oxxo")
async def pay_at_oxxo(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    if visitor is None:
        return to_login()
    refused = await _form_refused(request, db, svc, visitor, application_id)
    # Stripe and the database block: in a worker thread, not the event loop.
    refused = refused or await run_in_threadpool(
        _pay, request, db, svc, visitor, application_id, "oxxo"
    )
    return refused or RedirectResponse(f"/solicitudes/{application_id}#ficha", status_code=303)


@router.post("/solicitudes/{application_id}/tarjeta")
async def pay_by_card(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    if visitor is None:
        return to_login()
    refused = await _form_refused(request, db, svc, visitor, application_id)
    if refused is not None:
        return refused
    # Stripe and the database block: in a worker thread, not the event loop.
    return await run_in_threadpool(_start_card_payment, request, db, svc, visitor, application_id)


def _start_card_payment(
    request: Request, db: Session, svc: Services, visitor: Principal, application_id: uuid.UUID
) -> Response:
    # Under the application's lock, so two clicks make one PaymentIntent.
    app = db.get(Application, application_id, with_for_update=True)
    if app is None or app.owner_id != visitor.user.id:
        db.rollback()
        return page(request, svc, "no-encontrada.html", visitor, status=404)
    if not svc.settings.stripe_publishable_key:  # card payment off: the page offers OXXO only
        db.rollback()
        return RedirectResponse(f"/solicitudes/{application_id}", status_code=303)
    if open_card_payment(db, app.id) is not None:
        db.rollback()
        return RedirectResponse(f"/solicitudes/{application_id}/tarjeta", status_code=303)
    # No payment_method: the browser confirms it with Stripe.js.
    refused = _pay(request, db, svc, visitor, application_id, "card")
    return refused or RedirectResponse(f"/solicitudes/{application_id}/tarjeta", status_code=303)


@router.get("/solicitudes/{application_id}/tarjeta")
def card_page(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    if visitor is None:
        return to_login()
    app = db.get(Application, application_id)
    if app is None or app.owner_id != visitor.user.id:
        return page(request, svc, "no-encontrada.html", visitor, status=404)
    payment = open_card_payment(db, app.id)
    settings = svc.settings
    # Only while the application can still be paid (open_card_payment is its newest attempt):
    # a card left open before a cancellation or an expiry must not take money.
    payable = app.status in PAYABLE or app.status == ApplicationStatus.payment_pending
    if payment is None or not settings.stripe_publishable_key or not payable:
        return RedirectResponse(f"/solicitudes/{application_id}", status_code=303)
    try:
        intent = current_intent(svc, payment)
    except StripeUnavailable:
        problem = ProblemError("payment-provider-error", "Stripe did not answer.")
        return show_application(
            request, db, svc, visitor, application_id, alert=problem_message(problem), status=502
        )
    if intent is None or intent.status not in OPEN or not intent.client_secret:
        return RedirectResponse(f"/solicitudes/{application_id}", status_code=303)
    response = page(
        request,
        svc,
        "pago-tarjeta.html",
        visitor,
        app=app,
        price=pesos(app.amount_centavos),
        stripe_js_url=str(settings.stripe_js_url),
        publishable_key=settings.stripe_publishable_key,
        client_secret=intent.client_secret,
        verify=intent.status == "requires_action",
    )
    # Only this page may run Stripe.js: its script, frames and API join the strict policy.
    response.headers["Content-Security-Policy"] = stripe_js_policy(str(settings.stripe_js_url))
    return response
