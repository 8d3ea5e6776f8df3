"""The admin console's pages: search applications, one application's whole story (payments,
their events, the permit's history, the PermitRequest's conditions in the cluster), the payments
awaiting a manual refund, and the RunnerPools. Only admins get in; the actions are in
`admin_actions.py`."""

from __future__ import annotations

import uuid
from typing import Annotated

from anyio import from_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ..auth import Principal
from ..backoffice import cluster, refunds, search
from ..context import Services
from ..deps import Db, Svc
from ..dispatcher import request_name as request_name_of
from ..models import Application
from ..problems import ProblemError
from . import csrf, forms
from .home import STATUS
from .messages import EXPIRED_FORM
from .render import page
from .visitor import Visitor, to_login

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
# Done, as the detail page says after an action (the action redirects there).
DONE = {
    "reintento": "Se pidió un nuevo intento del permiso.",
    "reembolso": "Se reembolsó el pago con tarjeta.",
    "reembolso-manual": "El pago en OXXO quedó marcado para reembolsarse a mano.",
    "reembolso-hecho": "Se registró el reembolso hecho a mano.",
    "desactivada": "La cuenta quedó desactivada y se cerraron sus sesiones.",
    "activada": "La cuenta quedó activada.",
}
PORTAL = {
    "PortalHealthy": "Disponible",
    "PortalUnavailable": "No disponible",
    "PortalChanged": "Cambió: revisar el robot",
    "MaintenanceWindow": "En mantenimiento",
    "Probing": "Probando",
}
CIRCUIT = {"Closed": "Cerrado", "Open": "Abierto", "HalfOpen": "Semiabierto"}
Text = Annotated[str, Query(max_length=254)]


def gate(request: Request, svc: Services, visitor: Principal | None) -> Principal | Response:
    """The admin, or where a visitor who is not one goes instead."""
    if visitor is None:
        return to_login()
    if not visitor.is_admin:
        return page(request, svc, "admin-prohibido.html", visitor, status=403)
    return visitor


@router.get("/admin")
def search_page(
    request: Request,
    db: Db,
    svc: Svc,
    visitor: Visitor,
    estado: Text = "",
    pagina: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """Browsing by status, page by page (nothing personal in the address)."""
    if isinstance(admin := gate(request, svc, visitor), Response):
        return admin
    return _results(request, db, svc, admin, {"estado": estado}, pagina)


@router.post("/admin")
async def search_form(request: Request, db: Db, svc: Svc, visitor: Visitor) -> Response:
    """Searching by email, plates or CURP: a posted form, so the applicant's data stays out of
    addresses (and so out of proxies' access logs and the browser's history)."""
    if isinstance(admin := gate(request, svc, visitor), Response):
        return admin
    values = await forms.fields(request, ("estado", "correo", "placas", "curp"))
    asked = {name: values[name][:254] for name in ("estado", "correo", "placas", "curp")}
    if not csrf.valid(request, values["csrf_token"], admin):
        return await run_in_threadpool(
            _results, request, db, svc, admin, {}, 1, alert=EXPIRED_FORM, status=403
        )
    return await run_in_threadpool(_results, request, db, svc, admin, asked, 1)


def _results(
    request: Request,
    db: Session,
    svc: Services,
    admin: Principal,
    asked: dict[str, str],
    pagina: int,
    *,
    alert: str | None = None,
    status: int = 200,
) -> Response:
    estado = asked.get("estado", "")
    filters = search.Filters(
        status=estado if estado in STATUS else None,
        email=asked.get("correo"),
        plates=asked.get("placas"),
        curp=asked.get("curp"),
    )
    found = search.search(db, admin, filters, PAGE_SIZE, (pagina - 1) * PAGE_SIZE)
    return page(
        request,
        svc,
        "admin-buscar.html",
        admin,
        status=status,
        alert=alert,
        statuses=STATUS,
        asked={"estado": estado, **asked},
        rows=found.rows,
        total=found.total,
        pagina=pagina,
        # Pages are links, so only a search by status has them; a personal one shows its first.
        pages=max(1, -(-found.total // PAGE_SIZE)) if filters.names() in ("none", "status") else 1,
    )


def show_detail(
    request: Request,
    db: Session,
    svc: Services,
    admin: Principal,
    application_id: uuid.UUID,
    *,
    alert: str | None = None,
    done: str | None = None,
    status: int = 200,
) -> Response:
    try:
        story = search.story(db, admin, application_id)
    except ProblemError:
        return page(request, svc, "no-encontrada.html", admin, status=404)
    app = story.application
    request_name = request_name_of(app.id, app.permit_retries) if app.paid_at else None
    in_cluster: cluster.RequestView | None = None
    cluster_error = False
    if request_name:
        try:
            in_cluster = from_thread.run(
                cluster.permit_request, svc.kube, svc.settings.kubernetes_namespace, request_name
            )
        except cluster.ClusterUnavailable:
            cluster_error = True
    return page(
        request,
        svc,
        "admin-solicitud.html",
        admin,
        status=status,
        alert=alert,
        done=DONE.get(done or ""),
        story=story,
        app=app,
        owner=story.owner,
        status_text=STATUS.get(app.status, app.status),
        request_name=request_name,
        in_cluster=in_cluster,
        cluster_error=cluster_error,
        own=story.owner is not None and story.owner.id == admin.user.id,
    )


@router.get("/admin/solicitudes/{application_id}")
def detail_page(
    application_id: uuid.UUID,
    request: Request,
    db: Db,
    svc: Svc,
    visitor: Visitor,
    hecho: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    if isinstance(admin := gate(request, svc, visitor), Response):
        return admin
    return show_detail(request, db, svc, admin, application_id, done=hecho)


def show_manual_refunds(
    request: Request,
    db: Session,
    svc: Services,
    admin: Principal,
    *,
    alert: str | None = None,
    done: str | None = None,
    status: int = 200,
) -> Response:
    payments = refunds.awaiting_manual_refund(db, admin)
    ids = [p.application_id for p in payments]
    rows = db.execute(select(Application.id, Application.plates).where(Application.id.in_(ids)))
    plates = {app_id: plates for app_id, plates in rows}
    return page(
        request,
        svc,
        "admin-reembolsos.html",
        admin,
        status=status,
        alert=alert,
        done=DONE.get(done or ""),
        payments=payments,
        plates=plates,
    )


@router.get("/admin/reembolsos")
def manual_refunds_page(
    request: Request,
    db: Db,
    svc: Svc,
    visitor: Visitor,
    hecho: Annotated[str, Query(max_length=32)] = "",
) -> Response:
    if isinstance(admin := gate(request, svc, visitor), Response):
        return admin
    return show_manual_refunds(request, db, svc, admin, done=hecho)


@router.get("/admin/grupos")
def pools_page(request: Request, svc: Svc, visitor: Visitor) -> Response:
    if isinstance(admin := gate(request, svc, visitor), Response):
        return admin
    try:
        pools = from_thread.run(cluster.runner_pools, svc.kube, svc.settings.kubernetes_namespace)
        unavailable = False
    except cluster.ClusterUnavailable:
        pools, unavailable = [], True
    return page(
        request,
        svc,
        "admin-grupos.html",
        admin,
        pools=pools,
        unavailable=unavailable,
        portal=PORTAL,
        circuit=CIRCUIT,
    )
