"""The account page: the applicant's ARCO rights. Download my data (everything kept, as JSON)
and delete my account (the password and an explicit confirmation first)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from .. import arco
from ..auth import clear_session_cookies
from ..deps import Db, Svc
from ..problems import ProblemError
from . import csrf, forms
from .messages import EXPIRED_FORM, problem_message
from .render import page
from .visitor import Visitor, to_login

router = APIRouter(include_in_schema=False)
EXPORT_NAME = "mis-datos-permisos-digitales.json"


@router.get("/cuenta")
def account_page(request: Request, svc: Svc, visitor: Visitor) -> Response:
    if visitor is None:
        return to_login()
    return page(request, svc, "cuenta.html", visitor, errors={})


@router.get("/cuenta/mis-datos")
def my_data(db: Db, visitor: Visitor) -> Response:
    if visitor is None:
        return to_login()
    exported = arco.export_account(db, visitor.user)
    return Response(
        exported.model_dump_json(indent=2),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{EXPORT_NAME}"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/cuenta/eliminar")
async def delete_account(request: Request, db: Db, svc: Svc, visitor: Visitor) -> Response:
    if visitor is None:
        return to_login()
    values = await forms.fields(request, ("password", "confirm"))
    if not csrf.valid(request, values["csrf_token"], visitor):
        return page(request, svc, "cuenta.html", visitor, status=403, alert=EXPIRED_FORM, errors={})
    if values["confirm"] != "si":
        errors = {"confirm": "Marca la casilla para confirmar que quieres eliminar tu cuenta."}
        return page(request, svc, "cuenta.html", visitor, status=422, errors=errors)
    try:
        # The password's hash is a worker thread's work, not the event loop's.
        await run_in_threadpool(arco.delete_account, db, svc, visitor.user, values["password"])
    except ProblemError as problem:
        await run_in_threadpool(db.rollback)
        if problem.slug == "invalid-credentials":
            errors = {"password": "La contraseña no es correcta."}
            return page(request, svc, "cuenta.html", visitor, status=422, errors=errors)
        alert = (
            "Tienes un pago o un permiso en trámite; podrás eliminar tu cuenta cuando termine."
            if problem.slug == "invalid-state"
            else problem_message(problem)
        )
        return page(
            request, svc, "cuenta.html", visitor, status=problem.status, alert=alert, errors={}
        )
    response = page(request, svc, "cuenta-eliminada.html", None)
    clear_session_cookies(response, svc.settings)
    return response
