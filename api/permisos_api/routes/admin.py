"""/v1/admin: search applications, their payments and permit history, permit retries, refunds,
user accounts.

Admins and superadmins only (clients get 403, anonymous callers 401). Every action is logged with
the admin's user id, the action and the ids it touched; never personal data.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

import stripe
from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..auth import Principal, revoke_all
from ..db import utcnow
from ..deps import Admin, Db, Svc
from ..dispatcher import request_name, retry_kind
from ..models import (
    Application,
    ApplicationStatus,
    Outbox,
    Payment,
    PaymentEvent,
    PaymentMethod,
    PermitHistory,
    Role,
    User,
)
from ..payments.service import _provider_problem
from ..problems import ProblemError, problem_responses
from ..schemas import ApplicationOut, ApplicationPage, PermitHistoryOut
from .paging import Limit, Offset

router = APIRouter(prefix="/v1/admin", tags=["admin"])

log = logging.getLogger("permisos_api.admin")

AUTHZ = (401, 403)


def refund_key(payment_id: uuid.UUID) -> str:
    """The same payment always sends the same key: a retried refund refunds once."""
    return f"{payment_id}:refund"


def _audit(admin: Principal, action: str, **ids: object) -> None:
    extra = " ".join(f"{name}={value}" for name, value in ids.items())
    log.info("admin action: admin=%s action=%s %s", admin.user.id, action, extra)


# --- bodies -----------------------------------------------------------------------------------


class AdminPaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    application_id: uuid.UUID
    intent_id: str = Field(validation_alias="stripe_payment_intent_id")
    method: Literal["card", "oxxo"]
    status: str
    amount_centavos: int
    currency: str
    voucher_number: str | None
    last_error_code: str | None
    decline_code: str | None
    succeeded_at: datetime | None
    refund_id: str | None
    refunded_at: datetime | None
    manual_refund_required: bool
    created_at: datetime
    updated_at: datetime


class PaymentEventSummary(BaseModel):
    """A Stripe event as received; the raw `detail` is left out."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    payment_intent_id: str | None
    type: str
    status: str | None
    amount_centavos: int | None
    currency: str | None
    stripe_created_at: datetime
    received_at: datetime
    outcome: str


class AdminApplicationOut(ApplicationOut):
    owner_id: uuid.UUID
    permit_request: str | None = None
    permit_retries: int = 0
    folio: str | None = None
    anonymized_at: datetime | None = None


class AdminApplicationDetail(BaseModel):
    application: AdminApplicationOut
    payments: list[AdminPaymentOut] = Field(description="Newest first.")
    payment_events: list[PaymentEventSummary] = Field(description="Oldest first.")
    permit_history: list[PermitHistoryOut] = Field(description="Oldest first.")


class RefundOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": "0b7f3c1e-2a4d-4e8f-9c61-5d2a7b3e9f10",
                    "payment_id": "6f0b6a3e-4c1b-4f53-9c55-2d8e0f6b1a77",
                    "outcome": "refunded",
                    "refund_id": "re_3Q0a1b2c3d4e5f6g",
                    "detail": "Refunded through Stripe.",
                },
                {
                    "application_id": "0b7f3c1e-2a4d-4e8f-9c61-5d2a7b3e9f10",
                    "payment_id": "6f0b6a3e-4c1b-4f53-9c55-2d8e0f6b1a77",
                    "outcome": "manual_refund_required",
                    "refund_id": None,
                    "detail": "OXXO payments cannot be refunded through Stripe; refund by hand.",
                },
            ]
        }
    )

    application_id: uuid.UUID
    payment_id: uuid.UUID
    outcome: Literal["refunded", "manual_refund_required"]
    refund_id: str | None
    detail: str


class ManualRefundList(BaseModel):
    items: list[AdminPaymentOut]


class AdminUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    role: str
    disabled_at: datetime | None
    deleted_at: datetime | None


# --- applications -----------------------------------------------------------------------------


def _detail(db: Session, app: Application) -> AdminApplicationDetail:
    payments = db.scalars(
        select(Payment)
        .where(Payment.application_id == app.id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
    )
    events = db.scalars(
        select(PaymentEvent)
        .where(PaymentEvent.application_id == app.id)
        .order_by(PaymentEvent.stripe_created_at, PaymentEvent.received_at)
    )
    history = db.scalars(
        select(PermitHistory)
        .where(PermitHistory.application_id == app.id)
        .order_by(PermitHistory.transitioned_at, PermitHistory.id)
    )
    return AdminApplicationDetail(
        application=AdminApplicationOut.model_validate(app, from_attributes=True),
        payments=[AdminPaymentOut.model_validate(p) for p in payments],
        payment_events=[PaymentEventSummary.model_validate(e) for e in events],
        permit_history=[PermitHistoryOut.model_validate(h) for h in history],
    )


@router.get(
    "/applications",
    response_model=ApplicationPage,
    summary="Search applications",
    description="Every filter is optional and exact: `status`; `email` (case-insensitive); "
    "`plates` and `curp` normalized like on input (no spaces or dashes, upper case). Newest "
    "first.",
    responses=problem_responses(*AUTHZ, 422),
)
def search_applications(
    admin: Admin,
    db: Db,
    status_: Annotated[str | None, Query(alias="status", max_length=32)] = None,
    email: Annotated[str | None, Query(max_length=254)] = None,
    plates: Annotated[str | None, Query(max_length=32)] = None,
    curp: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> ApplicationPage:
    conditions = []
    if status_:
        conditions.append(Application.status == status_)
    if email:
        conditions.append(func.lower(Application.email) == email.strip().lower())
    if plates:
        conditions.append(Application.plates == re.sub(r"[\s-]", "", plates).upper())
    if curp:
        conditions.append(Application.curp == curp.strip().upper())
    total = db.scalar(select(func.count()).select_from(Application).where(*conditions)) or 0
    rows = db.scalars(
        select(Application)
        .where(*conditions)
        .order_by(Application.created_at.desc(), Application.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    _audit(
        admin,
        "search_applications",
        filters=",".join(
            name
            for name, value in (
                ("status", status_),
                ("email", email),
                ("plates", plates),
                ("curp", curp),
            )
            if value
        )
        or "none",
    )
    return ApplicationPage(
        items=[ApplicationOut.model_validate(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get(
    "/applications/{application_id}",
    response_model=AdminApplicationDetail,
    summary="An application with its payments, payment events and permit history",
    description="Payment events are summaries (type, status, amount, outcome); the raw event "
    "detail is not shown.",
    responses=problem_responses(*AUTHZ, 404, 422),
)
def get_application(application_id: uuid.UUID, admin: Admin, db: Db) -> AdminApplicationDetail:
    app = db.get(Application, application_id)
    if app is None:
        raise ProblemError("not-found", "No such application.")
    _audit(admin, "view_application", application=app.id)
    return _detail(db, app)


# --- permit retries ---------------------------------------------------------------------------


class RetryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": "0b7f3c1e-2a4d-4e8f-9c61-5d2a7b3e9f10",
                    "retry": 1,
                    "permit_request": "0b7f3c1e-2a4d-4e8f-9c61-5d2a7b3e9f10-r1",
                    "status": "paid",
                }
            ]
        }
    )

    application_id: uuid.UUID
    retry: int = Field(description="How many times this application's permit was retried.")
    permit_request: str = Field(description="The name of the new PermitRequest.")
    status: str


@router.post(
    "/applications/{application_id}/retry-permit",
    response_model=RetryOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Retry a failed permit",
    description="Only while `permit_failed` and with its payment neither refunded nor flagged for "
    "a manual refund (409 `invalid-state` otherwise). A failed PermitRequest stays failed, so "
    "the retry is a new one, `<application-id>-r<N>`: the application goes back to `paid`, its "
    "permit fields are cleared and the dispatcher creates the new PermitRequest (202). The "
    "permit history keeps every attempt.",
    responses=problem_responses(*AUTHZ, 404, 409, 422),
)
def retry_permit(application_id: uuid.UUID, admin: Admin, db: Db) -> RetryOut:
    app = db.get(Application, application_id, with_for_update=True)
    if app is None:
        raise ProblemError("not-found", "No such application.")
    if app.status != ApplicationStatus.permit_failed:
        raise ProblemError(
            "invalid-state", f"An application in status {app.status} cannot be retried."
        )
    standing = db.scalars(
        select(Payment.id).where(
            Payment.application_id == app.id,
            Payment.status == "succeeded",
            Payment.refunded_at.is_(None),
            Payment.manual_refund_required.is_(False),
        )
    ).first()
    if standing is None:
        raise ProblemError(
            "invalid-state", "The application's payment was refunded or is awaiting a refund."
        )
    now = utcnow()
    retry = app.permit_retries + 1
    name = request_name(app.id, retry)
    app.permit_retries = retry
    app.status = ApplicationStatus.paid.value
    # Named now, not when dispatched: from here on the mirror ignores the failed PermitRequest.
    app.permit_request = name
    app.permit_phase = None
    app.permit_reason = None
    app.permit_message = None
    app.permit_attempts = 0
    app.permit_updated_at = None
    app.permit_waiting_reason = app.permit_queue_position = app.permit_estimated_start_at = None
    app.folio = None
    app.permit_artifacts = None
    app.permit_notice_sent_at = None
    app.updated_at = now
    # UNIQUE (application_id, kind): the same retry is never queued twice.
    db.add(
        Outbox(application_id=app.id, kind=retry_kind(retry), created_at=now, next_attempt_at=now)
    )
    db.commit()
    _audit(admin, "retry_permit", application=app.id, retry=retry, permit_request=name)
    return RetryOut(application_id=app.id, retry=retry, permit_request=name, status=app.status)


# --- refunds ----------------------------------------------------------------------------------


@router.post(
    "/applications/{application_id}/refund",
    response_model=RefundOut,
    summary="Refund an application whose permit failed",
    description="Only while `permit_failed`. A card payment is refunded through Stripe (200, "
    "application `refunded`); an OXXO payment cannot be: it is flagged for a manual refund "
    "(202, listed by `GET /v1/admin/refunds/manual`). Any other state: 409 `invalid-state`.",
    responses={
        202: {"model": RefundOut, "description": "OXXO: a manual refund is needed."},
        **problem_responses(*AUTHZ, 404, 409, 422, 502),
    },
)
def refund_application(
    application_id: uuid.UUID, response: Response, admin: Admin, db: Db, svc: Svc
) -> RefundOut:
    app = db.get(Application, application_id, with_for_update=True)
    if app is None:
        raise ProblemError("not-found", "No such application.")
    if app.status != ApplicationStatus.permit_failed:
        raise ProblemError(
            "invalid-state", f"An application in status {app.status} cannot be refunded."
        )
    payment = db.scalars(
        select(Payment)
        .where(
            Payment.application_id == app.id,
            Payment.status == "succeeded",
            Payment.refunded_at.is_(None),
        )
        .order_by(Payment.succeeded_at.desc())
        .with_for_update()
    ).first()
    if payment is None:
        raise ProblemError("invalid-state", "The application has no payment left to refund.")
    if payment.method == PaymentMethod.oxxo:
        payment.manual_refund_required = True
        db.commit()
        _audit(admin, "flag_manual_refund", application=app.id, payment=payment.id)
        response.status_code = status.HTTP_202_ACCEPTED
        return RefundOut(
            application_id=app.id,
            payment_id=payment.id,
            outcome="manual_refund_required",
            refund_id=None,
            detail="OXXO payments cannot be refunded through Stripe; refund the applicant by "
            "hand and mark it with POST /v1/admin/payments/{id}/manual-refund.",
        )
    try:
        refund = svc.stripe.v1.refunds.create(
            params={"payment_intent": payment.stripe_payment_intent_id},
            options={"idempotency_key": refund_key(payment.id)},
        )
    except stripe.StripeError as exc:
        raise _provider_problem(exc) from None
    now = utcnow()
    payment.refund_id = refund.id
    payment.refunded_at = now
    app.status = ApplicationStatus.refunded.value
    app.updated_at = now
    db.commit()
    _audit(admin, "refund", application=app.id, payment=payment.id, refund=refund.id)
    return RefundOut(
        application_id=app.id,
        payment_id=payment.id,
        outcome="refunded",
        refund_id=refund.id,
        detail="Refunded through Stripe.",
    )


@router.get(
    "/refunds/manual",
    response_model=ManualRefundList,
    summary="Payments awaiting a manual refund",
    description="Payments flagged `manual_refund_required` (OXXO refunds, money that arrived "
    "for an application already paid or cancelled) and not yet refunded; oldest first.",
    responses=problem_responses(*AUTHZ),
)
def manual_refunds(admin: Admin, db: Db) -> ManualRefundList:
    rows = db.scalars(
        select(Payment)
        .where(Payment.manual_refund_required.is_(True), Payment.refunded_at.is_(None))
        .order_by(Payment.updated_at, Payment.id)
    ).all()
    _audit(admin, "list_manual_refunds")
    return ManualRefundList(items=[AdminPaymentOut.model_validate(row) for row in rows])


@router.post(
    "/payments/{payment_id}/manual-refund",
    response_model=AdminPaymentOut,
    summary="Record that a payment was refunded by hand",
    description="Sets `refunded_at`; an application in `permit_failed` becomes `refunded` (an "
    "extra payment for an application that is otherwise fine leaves it as it is). 409 unless "
    "the payment is flagged and not yet refunded.",
    responses=problem_responses(*AUTHZ, 404, 409, 422),
)
def mark_manual_refund(payment_id: uuid.UUID, admin: Admin, db: Db) -> AdminPaymentOut:
    payment = db.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise ProblemError("not-found", "No such payment.")
    if not payment.manual_refund_required or payment.refunded_at is not None:
        raise ProblemError("invalid-state", "This payment is not awaiting a manual refund.")
    now = utcnow()
    payment.refunded_at = now
    app = db.get(Application, payment.application_id, with_for_update=True)
    if app is not None and app.status == ApplicationStatus.permit_failed:
        app.status = ApplicationStatus.refunded.value
        app.updated_at = now
    db.commit()
    _audit(admin, "manual_refund", application=payment.application_id, payment=payment.id)
    return AdminPaymentOut.model_validate(payment)


# --- users ------------------------------------------------------------------------------------


def _target(db: Session, user_id: uuid.UUID, admin: Principal) -> User:
    user = db.get(User, user_id, with_for_update=True)
    if user is None:
        raise ProblemError("not-found", "No such user.")
    if user.id == admin.user.id:
        raise ProblemError("invalid-state", "You cannot disable or enable your own account.")
    if user.role == Role.superadmin and admin.user.role != Role.superadmin:
        raise ProblemError("forbidden", "Only a superadmin can change a superadmin's account.")
    return user


@router.post(
    "/users/{user_id}/disable",
    response_model=AdminUserOut,
    summary="Disable a user account",
    description="Sets `disabled_at` and revokes every session; the account can no longer log "
    "in. Idempotent. A superadmin can only be disabled by a superadmin; nobody disables "
    "themselves.",
    responses=problem_responses(*AUTHZ, 404, 409, 422),
)
def disable_user(user_id: uuid.UUID, admin: Admin, db: Db) -> AdminUserOut:
    user = _target(db, user_id, admin)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
    revoke_all(db, user.id)
    db.commit()
    _audit(admin, "disable_user", user=user.id)
    return AdminUserOut.model_validate(user)


@router.post(
    "/users/{user_id}/enable",
    response_model=AdminUserOut,
    summary="Enable a disabled user account",
    description="Clears `disabled_at` (the user logs in again). Idempotent. A deleted account "
    "cannot be enabled (409).",
    responses=problem_responses(*AUTHZ, 404, 409, 422),
)
def enable_user(user_id: uuid.UUID, admin: Admin, db: Db) -> AdminUserOut:
    user = _target(db, user_id, admin)
    if user.deleted_at is not None:
        raise ProblemError("invalid-state", "A deleted account cannot be enabled.")
    user.disabled_at = None
    db.commit()
    _audit(admin, "enable_user", user=user.id)
    return AdminUserOut.model_validate(user)
