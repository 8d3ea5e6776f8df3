"""The home page: who is in, and their applications with where each one is, in Spanish."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import Principal
from ..context import Services
from ..deps import Db, Svc
from ..models import Application
from .render import page
from .visitor import Visitor

router = APIRouter(include_in_schema=False)

# An application's status as the applicant reads it.
STATUS = {
    "draft": "Borrador",
    "awaiting_payment": "Pendiente de pago",
    "payment_pending": "Pago en proceso",
    "paid": "Pagado: tramitando tu permiso",
    "permit_ready": "Permiso listo",
    "permit_failed": "No se pudo emitir el permiso",
    "cancelled": "Cancelada",
    "expired": "Vencida",
    "refunded": "Reembolsada",
}
MAX_LISTED = 50


@router.get("/")
def home(request: Request, db: Db, svc: Svc, visitor: Visitor) -> Response:
    if visitor is None:
        return page(request, svc, "portada.html", None)
    return show_home(request, db, svc, visitor)


def show_home(
    request: Request,
    db: Session,
    svc: Services,
    visitor: Principal,
    *,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    """The visitor's applications, newest first."""
    rows = db.scalars(
        select(Application)
        .where(Application.owner_id == visitor.user.id)
        .order_by(Application.created_at.desc())
        .limit(MAX_LISTED)
    ).all()
    listed = [
        {
            "id": row.id,
            "plates": row.plates,
            "vehicle": f"{row.make} {row.line}".strip(),
            "year": row.model_year,
            "status": STATUS.get(row.status, row.status),
            "created": row.created_at,
        }
        for row in rows
    ]
    return page(
        request, svc, "inicio.html", visitor, status=status, alert=alert, applications=listed
    )
