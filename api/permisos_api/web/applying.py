"""The application form (identity and vehicle, with the price before paying) and an
application's own page: its status in plain Spanish, why its permit waits, and the three PDFs
once they are ready."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from permisos import catalog

from .. import drafts
from ..auth import Principal
from ..context import Services
from ..deps import Db, Svc
from ..es_mx import mexico_city_clock, pesos
from ..models import Application, Payment
from ..payments.service import PAYABLE
from ..problems import ProblemError
from ..schemas import ApplicationIn, ApplicationOut
from . import cards, csrf, forms
from .home import STATUS
from .messages import EXPIRED_FORM, field_messages
from .render import page
from .visitor import Visitor, to_login

router = APIRouter(include_in_schema=False)

# The form's fields are the API's: one model says what an application holds.
FIELDS = tuple(ApplicationIn.model_fields)
SERVICE_NAMES = {"particular": "Particular", "publico": "Público", "carga": "Carga"}
DOCUMENTS = (("permit", "Permiso"), ("certificate", "Certificado"), ("placard", "Placa"))
# While a payment is confirmed or the permit is on its way the page follows it (`avance.js`
# asks the API every so often); an OXXO voucher waits for the store, days at most, so its page
# does not.
REFRESH_SECONDS = 10
# Stripe's webhook usually follows a card payment within seconds.
CONFIRMING_SECONDS = 2
CONFIRMING = "Confirmando tu pago con tarjeta"


def _choices(svc: Svc) -> dict[str, Any]:
    low, high = catalog.model_year_range()
    return {
        "makes": catalog.MAKES,
        "years": list(range(high, low - 1, -1)),
        "services": [
            (code, SERVICE_NAMES[code], pesos(svc.settings.price_centavos(code)))
            for code in catalog.SERVICE_TYPES
        ],
    }


@router.get("/solicitudes/nueva")
def application_form(request: Request, svc: Svc, visitor: Visitor) -> Response:
    if visitor is None:
        return to_login()
    # The account's email is the likely contact; the applicant may change it.
    values = {"email": visitor.user.email, "service_type": "particular"}
    return page(request, svc, "solicitud.html", visitor, values=values, errors={}, **_choices(svc))


@router.post("/solicitudes/nueva")
async def file_application(request: Request, db: Db, svc: Svc, visitor: Visitor) -> Response:
    if visitor is None:
        return to_login()
    values = await forms.fields(request, FIELDS)
    kept = {name: values[name] for name in FIELDS}
    choices = _choices(svc)
    if not csrf.valid(request, values["csrf_token"], visitor):
        return page(
            request,
            svc,
            "solicitud.html",
            visitor,
            status=403,
            alert=EXPIRED_FORM,
            values=kept,
            errors={},
            **choices,
        )
    parsed = forms.parse(ApplicationIn, {k: v for k, v in values.items() if k in FIELDS})
    try:
        if isinstance(parsed, list):
            raise ProblemError("validation-error", errors=parsed)
        # The database in a worker thread, not the event loop.
        owner = visitor.user.id
        app = await run_in_threadpool(drafts.file_application, db, svc, owner, parsed)
    except ProblemError as problem:
        errors = field_messages(problem.errors or [])
        return page(
            request,
            svc,
            "solicitud.html",
            visitor,
            status=422,
            alert=f"Revisa {len(errors)} campo{'s' if len(errors) != 1 else ''} marcado"
            f"{'s' if len(errors) != 1 else ''}.",
            values=kept,
            errors=errors,
            **choices,
        )
    return RedirectResponse(f"/solicitudes/{app.id}", status_code=303)


def open_voucher(db: Session, application_id: uuid.UUID) -> Payment | None:
    """The application's newest OXXO voucher, if it has one."""
    return db.scalars(
        select(Payment)
        .where(
            Payment.application_id == application_id,
            Payment.method == "oxxo",
            Payment.voucher_number.is_not(None),
        )
        .order_by(Payment.created_at.desc())
        .limit(1)
    ).first()


def _voucher(payment: Payment) -> dict[str, str | None]:
    expires = payment.voucher_expires_at
    return {
        "number": payment.voucher_number,
        "amount": pesos(payment.amount_centavos),
        "expires": mexico_city_clock(expires) if expires else None,
        "url": payment.voucher_url,
    }


@router.get("/solicitudes/{application_id}")
def application_page(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    if visitor is None:
        return to_login()
    return show_application(request, db, svc, visitor, application_id)


def show_application(
    request: Request,
    db: Session,
    svc: Services,
    visitor: Principal,
    application_id: uuid.UUID,
    *,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    row = db.get(Application, application_id)
    if row is None or row.owner_id != visitor.user.id:
        return page(request, svc, "no-encontrada.html", visitor, status=404)
    shown = ApplicationOut.model_validate(row)
    voucher = open_voucher(db, row.id) if shown.status == "payment_pending" else None
    card = cards.open_card_payment(db, row.id)
    # Back from Stripe.js with the money taken, before Stripe's webhook: say so and follow it,
    # rather than offer to pay again.
    taken = cards.confirming(db, svc, row, request.query_params.get("payment_intent"))
    following = shown.status == "paid" or (shown.status == "payment_pending" and voucher is None)
    return page(
        request,
        svc,
        "solicitud-detalle.html",
        visitor,
        status=status,
        alert=alert,
        app=shown,
        payable=shown.status in PAYABLE and not taken,
        card_payments=bool(svc.settings.stripe_publishable_key),
        card_challenge=card is not None and card.status == "requires_action" and not taken,
        voucher=_voucher(voucher) if voucher else None,
        status_text=CONFIRMING if taken else STATUS.get(shown.status, shown.status),
        service=SERVICE_NAMES.get(shown.service_type, shown.service_type),
        price=pesos(shown.amount_centavos),
        documents=DOCUMENTS if shown.status == "permit_ready" else (),
        refresh=CONFIRMING_SECONDS if taken else REFRESH_SECONDS if following else None,
        following=following,
    )
