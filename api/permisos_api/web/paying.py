"""Paying from an application's page: an OXXO voucher (its reference, amount, expiry in Mexico
City time and Stripe's hosted voucher, printable). Card payment on the web (Stripe.js) is not
built yet; the JSON API takes cards."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from ..deps import Db, Svc
from ..payments.paying import pay_application
from ..problems import ProblemError
from . import csrf, forms
from .applying import show_application
from .messages import EXPIRED_FORM, problem_message
from .visitor import Visitor, to_login

router = APIRouter(include_in_schema=False)


@router.post("/solicitudes/{application_id}/oxxo")
async def pay_at_oxxo(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    if visitor is None:
        return to_login()
    values = await forms.fields(request, ())
    if not csrf.valid(request, values["csrf_token"], visitor):
        return show_application(
            request, db, svc, visitor, application_id, alert=EXPIRED_FORM, status=403
        )
    try:
        pay_application(db, svc, application_id, visitor.user.id, "oxxo")
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
    return RedirectResponse(f"/solicitudes/{application_id}#ficha", status_code=303)
