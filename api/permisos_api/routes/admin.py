"""/v1/admin: search applications, their payments and permit history, permit retries, refunds,
user accounts. Each route calls its service in `backoffice/`.

Admins and superadmins only (clients get 403, anonymous callers 401). Every action is logged with
the admin's user id, the action and the ids it touched; never personal data.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from ..backoffice import refunds, retries, search, users
from ..deps import Admin, Db, Svc
from ..problems import problem_responses
from ..schemas import (
    AdminApplicationDetail,
    AdminApplicationOut,
    AdminPaymentOut,
    AdminPermitOut,
    AdminUserOut,
    ApplicationOut,
    ApplicationPage,
    ManualRefundList,
    PaymentEventSummary,
    PermitHistoryOut,
    RefundOut,
    RetryOut,
)
from .paging import Limit, Offset

router = APIRouter(prefix="/v1/admin", tags=["admin"])

AUTHZ = (401, 403)


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
    filters = search.Filters(status=status_, email=email, plates=plates, curp=curp)
    found = search.search(db, admin, filters, limit, offset)
    return ApplicationPage(
        items=[ApplicationOut.model_validate(row) for row in found.rows],
        total=found.total,
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
    story = search.story(db, admin, application_id)
    return AdminApplicationDetail(
        application=AdminApplicationOut.model_validate(story.application, from_attributes=True),
        payments=[AdminPaymentOut.model_validate(p) for p in story.payments],
        payment_events=[PaymentEventSummary.model_validate(e) for e in story.payment_events],
        permits=[AdminPermitOut.model_validate(p) for p in story.permits],
        permit_history=[PermitHistoryOut.model_validate(h) for h in story.permit_history],
    )


@router.post(
    "/applications/{application_id}/retry-permit",
    response_model=RetryOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Retry a failed permit",
    description="Only while `permit_failed` and with its payment neither refunded nor flagged for "
    "a manual refund (409 `invalid-state` otherwise). A failed PermitRequest stays failed, so "
    "the retry is a new one, `<application-id>-r<N>`, with a permit of its own: the application "
    "goes back to `paid`, the new permit becomes its current one (the failed one keeps its "
    "outcome) and the dispatcher creates the new PermitRequest (202). The permit history keeps "
    "every attempt.",
    responses=problem_responses(*AUTHZ, 404, 409, 422),
)
def retry_permit(application_id: uuid.UUID, admin: Admin, db: Db) -> RetryOut:
    retried = retries.retry_permit(db, admin, application_id)
    return RetryOut(
        application_id=retried.application_id,
        retry=retried.retry,
        permit_request=retried.permit_request,
        status=retried.status,
    )


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
    done = refunds.refund_application(db, svc.stripe, admin, application_id)
    if done.outcome == "manual_refund_required":
        response.status_code = status.HTTP_202_ACCEPTED
        detail = (
            "OXXO payments cannot be refunded through Stripe; refund the applicant by "
            "hand and mark it with POST /v1/admin/payments/{id}/manual-refund."
        )
    else:
        detail = "Refunded through Stripe."
    return RefundOut(
        application_id=done.application_id,
        payment_id=done.payment_id,
        outcome=done.outcome,
        refund_id=done.refund_id,
        detail=detail,
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
    rows = refunds.awaiting_manual_refund(db, admin)
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
    return AdminPaymentOut.model_validate(refunds.record_manual_refund(db, admin, payment_id))


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
    return AdminUserOut.model_validate(users.disable_user(db, admin, user_id))


@router.post(
    "/users/{user_id}/enable",
    response_model=AdminUserOut,
    summary="Enable a disabled user account",
    description="Clears `disabled_at` (the user logs in again). Idempotent. A deleted account "
    "cannot be enabled (409).",
    responses=problem_responses(*AUTHZ, 404, 409, 422),
)
def enable_user(user_id: uuid.UUID, admin: Admin, db: Db) -> AdminUserOut:
    return AdminUserOut.model_validate(users.enable_user(db, admin, user_id))
