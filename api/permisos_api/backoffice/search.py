"""Finding applications by exact filters, and one application's whole story."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ..auth import Principal
from ..models import Application, Payment, PaymentEvent, Permit, PermitHistory, User
from ..problems import ProblemError
from . import audit


@dataclass(frozen=True)
class Filters:
    """Each one optional and exact; plates and CURP normalized as on input."""

    status: str | None = None
    email: str | None = None
    plates: str | None = None
    curp: str | None = None

    def names(self) -> str:
        """Which filters were used (for the audit log: never their values)."""
        used = [name for name, value in vars(self).items() if value]
        return ",".join(used) or "none"


@dataclass(frozen=True)
class Found:
    rows: Sequence[Application]
    total: int


def search(db: Session, admin: Principal, filters: Filters, limit: int, offset: int) -> Found:
    """Newest first."""
    conditions = []
    if filters.status:
        conditions.append(Application.status == filters.status)
    if filters.email:
        conditions.append(func.lower(Application.email) == filters.email.strip().lower())
    if filters.plates:
        conditions.append(Application.plates == re.sub(r"[\s-]", "", filters.plates).upper())
    if filters.curp:
        conditions.append(Application.curp == filters.curp.strip().upper())
    total = db.scalar(select(func.count()).select_from(Application).where(*conditions)) or 0
    rows = db.scalars(
        select(Application)
        .options(selectinload(Application.permit))  # one query for the page's permits
        .where(*conditions)
        .order_by(Application.created_at.desc(), Application.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    audit.record(admin, "search_applications", filters=filters.names())
    return Found(rows=rows, total=total)


@dataclass(frozen=True)
class Story:
    application: Application
    owner: User | None
    payments: Sequence[Payment]  # newest first
    payment_events: Sequence[PaymentEvent]  # oldest first
    permits: Sequence[Permit]  # the first, then each retry
    permit_history: Sequence[PermitHistory]  # oldest first


def story(db: Session, admin: Principal, application_id: uuid.UUID) -> Story:
    app = db.get(Application, application_id)
    if app is None:
        raise ProblemError("not-found", "No such application.")
    payments = db.scalars(
        select(Payment)
        .where(Payment.application_id == app.id)
        .order_by(Payment.created_at.desc(), Payment.id.desc())
    ).all()
    events = db.scalars(
        select(PaymentEvent)
        .where(PaymentEvent.application_id == app.id)
        .order_by(PaymentEvent.stripe_created_at, PaymentEvent.received_at)
    ).all()
    permits = db.scalars(
        select(Permit).where(Permit.application_id == app.id).order_by(Permit.retry)
    ).all()
    history = db.scalars(
        select(PermitHistory)
        .where(PermitHistory.application_id == app.id)
        .order_by(PermitHistory.transitioned_at, PermitHistory.id)
    ).all()
    audit.record(admin, "view_application", application=app.id)
    return Story(app, db.get(User, app.owner_id), payments, events, permits, history)
