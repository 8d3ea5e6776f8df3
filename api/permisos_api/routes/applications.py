"""/v1/applications: an applicant's permit applications, before payment.

Someone else's application answers 404, exactly like a missing one, so ids cannot be probed.
Admins may read any application; only the owner edits or cancels.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from .. import drafts
from ..auth import Principal
from ..context import in_worker
from ..db import utcnow
from ..deps import CurrentPrincipal, Db, Presented, Svc
from ..models import (
    CANCELLABLE_STATUSES,
    EDITABLE_STATUSES,
    Application,
    ApplicationStatus,
    PermitHistory,
)
from ..payments.cancelling import cancel_or_refuse
from ..payments.service import deliver
from ..problems import FieldError, ProblemError, problem_responses, validation_problem
from ..schemas import (
    ApplicationIn,
    ApplicationOut,
    ApplicationPage,
    ApplicationPatch,
    PermitHistoryList,
    PermitHistoryOut,
)
from .paging import Limit, Offset

router = APIRouter(prefix="/v1/applications", tags=["applications"])


# The current permit in the same query: the answer shows its phase, and a lazy load would be a
# second round trip (and cannot run once in_worker has handed the connection back).
_WITH_PERMIT = (joinedload(Application.permit),)


def _load(
    db: Session, application_id: uuid.UUID, principal: Principal, *, lock: bool = False
) -> Application:
    """`lock`: the application's row is locked until the commit (its joined permit is not:
    FOR UPDATE cannot lock the nullable side of an outer join)."""
    app = db.get(
        Application,
        application_id,
        options=_WITH_PERMIT,
        with_for_update={"of": Application} if lock else None,
        populate_existing=lock,
    )
    if app is None or (app.owner_id != principal.user.id and not principal.is_admin):
        raise ProblemError("not-found", "No such application.")
    return app


def _load_own(
    db: Session, application_id: uuid.UUID, principal: Principal, *, lock: bool = False
) -> Application:
    app = _load(db, application_id, principal, lock=lock)
    if app.owner_id != principal.user.id:
        raise ProblemError("forbidden", "Only the applicant can change an application.")
    return app


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApplicationOut,
    summary="Create an application (draft)",
    description="Validates the applicant and the vehicle against the catalog and prices it "
    "by service type (integer centavos, MXN).",
    responses=problem_responses(401, 403, 422),
)
async def create_application(
    body: ApplicationIn, credentials: Presented, db: Db, svc: Svc
) -> Application:
    def create() -> Application:
        owner = credentials.principal(db).user.id
        return drafts.file_application(db, svc, owner, body)

    # One INSERT: a transaction of its own.
    return await in_worker(db, create, autocommit=True)


@router.get(
    "",
    response_model=ApplicationPage,
    summary="List my applications",
    description="Newest first; only the caller's own.",
    responses=problem_responses(401, 403, 422),
)
def list_applications(
    principal: CurrentPrincipal,
    db: Db,
    limit: Limit = 20,
    offset: Offset = 0,
) -> ApplicationPage:
    own = Application.owner_id == principal.user.id
    total = db.scalar(select(func.count()).select_from(Application).where(own)) or 0
    rows = db.scalars(
        select(Application)
        .options(selectinload(Application.permit))  # one query for the page's permits
        .where(own)
        .order_by(Application.created_at.desc(), Application.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return ApplicationPage(
        items=[ApplicationOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/{application_id}",
    response_model=ApplicationOut,
    summary="Get an application",
    description="The owner or an admin; anyone else gets 404.",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_application(application_id: uuid.UUID, credentials: Presented, db: Db) -> Application:
    return await in_worker(
        db, lambda: _load(db, application_id, credentials.principal(db)), autocommit=True
    )


@router.get(
    "/{application_id}/permit-history",
    response_model=PermitHistoryList,
    summary="The permit's progress, phase by phase",
    description="Every phase the permit went through, with its time, reason and attempt; "
    "the owner or an admin.",
    responses=problem_responses(401, 403, 404, 422),
)
def get_permit_history(
    application_id: uuid.UUID, principal: CurrentPrincipal, db: Db
) -> PermitHistoryList:
    app = _load(db, application_id, principal)
    rows = db.scalars(
        select(PermitHistory)
        .where(PermitHistory.application_id == app.id)
        .order_by(PermitHistory.transitioned_at, PermitHistory.id)
    )
    return PermitHistoryList(items=[PermitHistoryOut.model_validate(h) for h in rows])


@router.patch(
    "/{application_id}",
    response_model=ApplicationOut,
    summary="Edit an application before payment",
    description="Only while `draft` or `awaiting_payment`. Changing the service type reprices it.",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def patch_application(
    application_id: uuid.UUID, body: ApplicationPatch, principal: CurrentPrincipal, db: Db, svc: Svc
) -> Application:
    app = _load_own(db, application_id, principal)
    if app.status not in EDITABLE_STATUSES:
        raise ProblemError("invalid-state", f"An application in status {app.status} is final.")
    changes = body.model_dump(exclude_unset=True)
    for name, value in changes.items():
        if value is None and name != "vin":
            raise validation_problem(
                [FieldError(field=name, rule="required", detail="Must not be null")]
            )
    make = changes.get("make", app.make)
    if "make" in changes or "line" in changes:
        changes["line"] = drafts.canonical_line(make, changes.get("line", app.line))
    for name, value in changes.items():
        setattr(app, name, value)
    app.amount_centavos = svc.settings.price_centavos(app.service_type)
    app.updated_at = utcnow()
    db.commit()
    return app


@router.post(
    "/{application_id}/cancel",
    response_model=ApplicationOut,
    summary="Cancel an application",
    description="Only before payment. Cancelling twice is fine. Its open PaymentIntents are "
    "cancelled at Stripe, so a card form left open cannot take money afterwards; one that took "
    "it meanwhile makes the application paid, and the cancellation is refused (409).",
    responses=problem_responses(401, 403, 404, 409, 422),
)
def cancel_application(
    application_id: uuid.UUID, principal: CurrentPrincipal, db: Db, svc: Svc
) -> Application:
    # Locked: a payment arriving meanwhile waits, and is not overwritten by the cancellation.
    app = _load_own(db, application_id, principal, lock=True)
    if app.status == ApplicationStatus.cancelled:
        return app
    if app.status not in CANCELLABLE_STATUSES:
        raise ProblemError("invalid-state", f"An application in status {app.status} is final.")
    moved = cancel_or_refuse(db, svc, app)
    app.status = ApplicationStatus.cancelled.value
    app.cancelled_at = utcnow()
    app.updated_at = app.cancelled_at
    db.commit()
    for transition in moved:
        deliver(transition, svc.mailer, svc.metrics)
    return app
