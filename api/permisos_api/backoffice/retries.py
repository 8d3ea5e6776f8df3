"""Retrying a failed permit: a new PermitRequest and a new row in `permits`, since a failed
one stays failed."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..auth import Principal
from ..db import utcnow
from ..dispatcher import request_name, retry_kind
from ..models import ApplicationStatus, Outbox, Payment, Permit
from ..problems import ProblemError
from . import audit
from .failed import failed_application


@dataclass(frozen=True)
class Retried:
    application_id: uuid.UUID
    retry: int
    permit_request: str
    status: str


def retry_permit(db: Session, admin: Principal, application_id: uuid.UUID) -> Retried:
    """Only while `permit_failed` with a payment that still stands (not refunded, not flagged
    for a manual refund). Commits."""
    app = failed_application(db, application_id, "retried")
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
    # A permit of its own, current from now on: the failed one keeps its row and its outcome,
    # and the mirror's writes of it no longer move the application.
    db.add(Permit(application_id=app.id, retry=retry, request_name=name, created_at=now))
    app.permit_retries = retry
    app.status = ApplicationStatus.paid.value
    app.updated_at = now
    # UNIQUE (application_id, kind): the same retry is never queued twice.
    db.add(
        Outbox(application_id=app.id, kind=retry_kind(retry), created_at=now, next_attempt_at=now)
    )
    db.commit()
    audit.record(admin, "retry_permit", application=app.id, retry=retry, permit_request=name)
    return Retried(app.id, retry, name, app.status)
