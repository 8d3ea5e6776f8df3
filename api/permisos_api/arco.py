"""The applicant's ARCO rights under Mexico's data-protection law, as services that the JSON API
(`routes/account.py`, `/v1/me`) and the account page (`web/account.py`) share.

- Access: everything the service keeps about the account.
- Cancellation: the user and application rows stay (payments point at them), but every personal
  datum is replaced by a fixed placeholder (the applications' erasure is `privacy.py`'s, shared
  with the cleanup command), the password becomes unusable and every session is revoked.
  Payments and payment events are kept, as the tax law requires; they hold no card data and no
  names.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .accounts import verify_password
from .auth import revoke_all
from .context import Services
from .db import utcnow
from .models import (
    Application,
    ApplicationStatus,
    AuthSession,
    Payment,
    PaymentEvent,
    Permit,
    PermitDownload,
    PermitHistory,
    User,
)
from .privacy import erase_applications
from .problems import ProblemError
from .schemas import AccountExport

# Not an Argon2 hash: verification always fails, so no password opens the account again.
UNUSABLE_PASSWORD = "!deleted"  # noqa: S105
# While one of these is under way, deletion waits: the permit process still needs the data.
IN_FLIGHT = frozenset({ApplicationStatus.payment_pending.value, ApplicationStatus.paid.value})

APPLICATION_FIELDS = [
    "id",
    "status",
    "first_name",
    "last_name",
    "maternal_surname",
    "curp",
    "email",
    "phone",
    "plates",
    "make",
    "line",
    "service_type",
    "model_year",
    "vin",
    "amount_centavos",
    "currency",
    "created_at",
    "updated_at",
    "cancelled_at",
    "paid_at",
    "payment_method",
    "permit_retries",
]
PERMIT_FIELDS = [
    "application_id",
    "retry",
    "request_name",
    "phase",
    "reason",
    "message",
    "attempts",
    "updated_at",
    "waiting_reason",
    "queue_position",
    "estimated_start_at",
    "folio",
    "artifacts",
    "notice_sent_at",
    "created_at",
]
PAYMENT_FIELDS = [
    "id",
    "application_id",
    "method",
    "stripe_payment_intent_id",
    "status",
    "amount_centavos",
    "currency",
    "voucher_number",
    "voucher_expires_at",
    "last_error_code",
    "decline_code",
    "succeeded_at",
    "refund_id",
    "refunded_at",
    "manual_refund_required",
    "created_at",
    "updated_at",
]
EVENT_FIELDS = [
    "id",
    "application_id",
    "payment_intent_id",
    "type",
    "status",
    "amount_centavos",
    "currency",
    "stripe_created_at",
    "received_at",
    "outcome",
]
HISTORY_FIELDS = ["application_id", "phase", "reason", "message", "attempt", "transitioned_at"]
DOWNLOAD_FIELDS = ["application_id", "kind", "downloaded_at", "client_address"]
SESSION_FIELDS = ["id", "created_at", "expires_at", "revoked_at", "client_address", "user_agent"]


def _plain(row: object, names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(row, name)
        out[name] = str(value) if isinstance(value, uuid.UUID) else value
    return out


def export_account(db: Session, user: User) -> AccountExport:
    """Everything kept about the account (ARCO: access)."""
    app_ids = list(db.scalars(select(Application.id).where(Application.owner_id == user.id)))

    def rows(model: Any, column: Any, *order: Any) -> list[Any]:
        if not app_ids:
            return []
        return list(db.scalars(select(model).where(column.in_(app_ids)).order_by(*order)))

    applications = db.scalars(
        select(Application).where(Application.owner_id == user.id).order_by(Application.created_at)
    )
    sessions = db.scalars(
        select(AuthSession).where(AuthSession.user_id == user.id).order_by(AuthSession.created_at)
    )
    return AccountExport(
        exported_at=utcnow(),
        account=_plain(
            user,
            ["id", "email", "role", "email_verified_at", "created_at", "updated_at", "disabled_at"],
        ),
        sessions=[_plain(s, SESSION_FIELDS) for s in sessions],
        applications=[_plain(a, APPLICATION_FIELDS) for a in applications],
        payments=[
            _plain(p, PAYMENT_FIELDS)
            for p in rows(Payment, Payment.application_id, Payment.created_at)
        ],
        payment_events=[
            _plain(e, EVENT_FIELDS)
            for e in rows(PaymentEvent, PaymentEvent.application_id, PaymentEvent.stripe_created_at)
        ],
        permits=[
            _plain(p, PERMIT_FIELDS)
            for p in rows(Permit, Permit.application_id, Permit.application_id, Permit.retry)
        ],
        permit_history=[
            _plain(h, HISTORY_FIELDS)
            for h in rows(PermitHistory, PermitHistory.application_id, PermitHistory.id)
        ],
        permit_downloads=[
            _plain(d, DOWNLOAD_FIELDS)
            for d in rows(PermitDownload, PermitDownload.application_id, PermitDownload.id)
        ],
    )


def delete_account(db: Session, svc: Services, user: User, password: str) -> None:
    """Anonymizes the account and its applications and ends every session (ARCO:
    cancellation); `invalid-credentials` for a wrong password, `invalid-state` while a payment
    or a permit is in progress."""
    # Under the lockout, as a login: a stolen session cannot guess the password here.
    verify_password(db, svc, user, user.email, password)
    busy = db.scalar(
        select(Application.id)
        .where(Application.owner_id == user.id, Application.status.in_(IN_FLIGHT))
        .limit(1)
    )
    if busy is not None:
        raise ProblemError(
            "invalid-state", "A payment or a permit is in progress; try again when it ends."
        )
    now = utcnow()
    user.email = f"deleted-{uuid.uuid4()}@invalid"
    user.password_hash = UNUSABLE_PASSWORD
    user.deleted_at = now
    user.disabled_at = now
    user.failed_logins = 0
    user.locked_until = None
    user.updated_at = now
    erase_applications(db, select(Application.id).where(Application.owner_id == user.id), now)
    # Addresses and browsers of past logins and downloads are personal data too.
    db.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user.id)
        .values(client_address=None, user_agent=None)
    )
    db.execute(
        update(PermitDownload).where(PermitDownload.user_id == user.id).values(client_address=None)
    )
    revoke_all(db, user.id)
    db.commit()
