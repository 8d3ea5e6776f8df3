"""The admin console's actions, each a form posted from the application's page (or the manual
refunds list): retry a failed permit, refund, record a refund made by hand, disable or enable
the applicant's account. A refund or a disabling asks for a ticked confirmation first. Each one
calls its service in `backoffice/` and goes back to the page it came from."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..backoffice import refunds, retries, users
from ..context import Services
from ..deps import Db, Svc
from ..models import Application
from ..problems import ProblemError
from . import csrf, forms
from .admin import gate, show_detail, show_manual_refunds
from .messages import EXPIRED_FORM
from .visitor import Visitor

router = APIRouter(include_in_schema=False)

UNCONFIRMED = "Marca la casilla para confirmar; esta acción no se puede deshacer."
# What went wrong, in the admin's words, per action and problem.
REFUSED = {
    ("retry", "invalid-state"): "Solo se puede reintentar un permiso que falló y cuyo pago "
    "no se ha reembolsado ni marcado para reembolso.",
    ("refund", "invalid-state"): "Solo se puede reembolsar una solicitud cuyo permiso falló y "
    "que tiene un pago sin reembolsar.",
    ("manual", "invalid-state"): "Ese pago no espera un reembolso a mano.",
    ("user", "invalid-state"): "Esa cuenta no se puede cambiar: no puedes cambiar la tuya, y "
    "una cuenta eliminada no se puede activar.",
    ("user", "forbidden"): "Solo un superadministrador puede cambiar la cuenta de otro "
    "superadministrador.",
    # Stripe may have refunded before the answer was lost; the same key never refunds twice.
    ("refund", "payment-provider-error"): "Stripe no confirmó el reembolso. Vuelve a "
    "intentarlo en unos minutos: si ya se hizo, no se devolverá dos veces.",
}

Act = Callable[[Session, Principal], str]


async def _act(
    request: Request,
    db: Session,
    svc: Services,
    visitor: Principal | None,
    application_id: uuid.UUID,
    kind: str,
    act: Act,
    *,
    confirm: bool = False,
) -> Response:
    """Checks who and the form, runs `act` (which answers what was done), and goes back to the
    application's page, saying what happened."""
    if isinstance(admin := gate(request, svc, visitor), Response):
        return admin
    values = await forms.fields(request, ("confirmo",))
    alert, status = None, 200
    if not csrf.valid(request, values["csrf_token"], admin):
        alert, status = EXPIRED_FORM, 403
    elif confirm and values["confirmo"] != "si":
        alert, status = UNCONFIRMED, 422
    else:
        # In a worker thread, as the sync pages run: the services block on the database and
        # Stripe, and the page reads the cluster through the event loop.
        try:
            done = await run_in_threadpool(act, db, admin)
        except ProblemError as problem:
            await run_in_threadpool(db.rollback)
            alert = REFUSED.get((kind, problem.slug), "No se pudo hacer; vuelve a intentarlo.")
            status = problem.status
    if alert:
        return await run_in_threadpool(
            show_detail, request, db, svc, admin, application_id, alert=alert, status=status
        )
    return RedirectResponse(
        f"/admin/solicitudes/{application_id}?hecho={done}#resultado", status_code=303
    )


@router.post("/admin/solicitudes/{application_id}/reintentar")
async def retry(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    def act(db: Session, admin: Principal) -> str:
        retries.retry_permit(db, admin, application_id)
        return "reintento"

    return await _act(request, db, svc, visitor, application_id, "retry", act)


@router.post("/admin/solicitudes/{application_id}/reembolsar")
async def refund(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    def act(db: Session, admin: Principal) -> str:
        done = refunds.refund_application(db, svc.stripe, admin, application_id)
        return "reembolso" if done.outcome == "refunded" else "reembolso-manual"

    return await _act(request, db, svc, visitor, application_id, "refund", act, confirm=True)


def _owner_action(
    application_id: uuid.UUID, change: Callable[[Session, Principal, uuid.UUID], object], done: str
) -> Act:
    def act(db: Session, admin: Principal) -> str:
        app = db.get(Application, application_id)
        if app is None:
            raise ProblemError("not-found", "No such application.")
        change(db, admin, app.owner_id)
        return done

    return act


@router.post("/admin/solicitudes/{application_id}/desactivar-cuenta")
async def disable_owner(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    act = _owner_action(application_id, users.disable_user, "desactivada")
    return await _act(request, db, svc, visitor, application_id, "user", act, confirm=True)


@router.post("/admin/solicitudes/{application_id}/activar-cuenta")
async def enable_owner(
    application_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    act = _owner_action(application_id, users.enable_user, "activada")
    return await _act(request, db, svc, visitor, application_id, "user", act)


@router.post("/admin/pagos/{payment_id}/reembolso-hecho")
async def manual_refund_done(
    payment_id: uuid.UUID, request: Request, db: Db, svc: Svc, visitor: Visitor
) -> Response:
    """From the manual refunds list: back there afterwards."""
    if isinstance(admin := gate(request, svc, visitor), Response):
        return admin
    values = await forms.fields(request, ("confirmo",))
    # The database work in a worker thread, not the event loop.
    return await run_in_threadpool(
        _record_manual_refund, request, db, svc, admin, payment_id, values
    )


def _record_manual_refund(
    request: Request,
    db: Session,
    svc: Services,
    admin: Principal,
    payment_id: uuid.UUID,
    values: dict[str, str],
) -> Response:
    if not csrf.valid(request, values["csrf_token"], admin):
        return show_manual_refunds(request, db, svc, admin, alert=EXPIRED_FORM, status=403)
    if values["confirmo"] != "si":
        return show_manual_refunds(request, db, svc, admin, alert=UNCONFIRMED, status=422)
    try:
        refunds.record_manual_refund(db, admin, payment_id)
    except ProblemError as problem:
        db.rollback()
        alert = REFUSED.get(("manual", problem.slug), "Ese pago no existe.")
        return show_manual_refunds(request, db, svc, admin, alert=alert, status=problem.status)
    return RedirectResponse("/admin/reembolsos?hecho=reembolso-hecho", status_code=303)
