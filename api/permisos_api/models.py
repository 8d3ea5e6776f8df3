"""The ORM models. Personal data lives only in `applications` (and the account's email)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar, cast, overload

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
    Uuid,
    and_,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base, UTCDateTime, utcnow

T = TypeVar("T")


class Role(enum.StrEnum):
    client = "client"
    admin = "admin"
    superadmin = "superadmin"


class ApplicationStatus(enum.StrEnum):
    """Stored as text without a CHECK, so payment and permit states can join in later."""

    draft = "draft"
    awaiting_payment = "awaiting_payment"
    payment_pending = "payment_pending"  # OXXO voucher issued, or card requires_action/processing
    paid = "paid"  # payment confirmed; permit in progress
    permit_ready = "permit_ready"
    permit_failed = "permit_failed"
    cancelled = "cancelled"
    expired = "expired"
    refunded = "refunded"


class PaymentMethod(enum.StrEnum):
    card = "card"
    oxxo = "oxxo"


EDITABLE_STATUSES = frozenset({ApplicationStatus.draft, ApplicationStatus.awaiting_payment})
CANCELLABLE_STATUSES = EDITABLE_STATUSES


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('client', 'admin', 'superadmin')", name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    email: Mapped[str] = mapped_column(String(254))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.client.value)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when the owner deleted the account (ARCO): the row stays, anonymized.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    sessions: Mapped[list[AuthSession]] = relationship(back_populates="user")


# Case-insensitive uniqueness, whatever case a row was stored in.
Index("uq_users_email_lower", func.lower(User.email), unique=True)


class AuthSession(Base):
    """A login. The bearer token is stored only as its SHA-256; `id` is the public handle."""

    __tablename__ = "sessions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    client_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(256))

    user: Mapped[User] = relationship(back_populates="sessions")


class PermitField(Generic[T]):
    """A field of the application's current permit, read as the application's own: what the
    API has always shown (`permit_phase`, `folio`, ...) now lives in `permits`."""

    def __init__(self, field: str, default: T) -> None:
        self.field = field
        self.default = default

    @overload
    def __get__(self, app: None, owner: type) -> PermitField[T]: ...
    @overload
    def __get__(self, app: Application, owner: type) -> T: ...
    def __get__(self, app: Application | None, owner: type) -> PermitField[T] | T:
        if app is None:
            return self
        permit = app.permit
        return self.default if permit is None else cast(T, getattr(permit, self.field))

    def __set__(self, app: Application, value: T) -> None:
        raise AttributeError(f"{self.field} belongs to the permit: write `permits`, not this")


class Application(Base):
    __tablename__ = "applications"
    __table_args__ = (
        Index("ix_applications_owner_created", "owner_id", "created_at"),
        CheckConstraint("amount_centavos > 0", name="amount_positive"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(32), default=ApplicationStatus.draft.value)

    first_name: Mapped[str] = mapped_column(String(60))
    last_name: Mapped[str] = mapped_column(String(60))
    maternal_surname: Mapped[str] = mapped_column(String(60), default="")
    curp: Mapped[str] = mapped_column(String(18))
    email: Mapped[str] = mapped_column(String(254))
    phone: Mapped[str] = mapped_column(String(10))

    plates: Mapped[str] = mapped_column(String(8), index=True)
    make: Mapped[str] = mapped_column(String(50))
    line: Mapped[str] = mapped_column(String(50))
    service_type: Mapped[str] = mapped_column(String(16))
    model_year: Mapped[int] = mapped_column(Integer)
    vin: Mapped[str | None] = mapped_column(String(17))

    amount_centavos: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="MXN")

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Payment (written by the webhook's state machine).
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_method: Mapped[str | None] = mapped_column(String(8))
    # Which of its permits is current: 0 the first, N an admin's N-th retry (`permits.retry`).
    permit_retries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The current permit; none until the first PermitRequest exists or a retry is asked for.
    permit: Mapped[Permit | None] = relationship(
        primaryjoin="and_(Application.id == foreign(Permit.application_id), "
        "Application.permit_retries == foreign(Permit.retry))",
        viewonly=True,
        uselist=False,
        # Loaded when read: a joined load's outer join would refuse the rows' FOR UPDATE.
        lazy="select",
    )
    permit_request = PermitField[str | None]("request_name", None)
    permit_phase = PermitField[str | None]("phase", None)
    permit_reason = PermitField[str | None]("reason", None)
    permit_message = PermitField[str | None]("message", None)
    permit_attempts = PermitField[int]("attempts", 0)
    permit_updated_at = PermitField[datetime | None]("updated_at", None)
    permit_waiting_reason = PermitField[str | None]("waiting_reason", None)
    permit_queue_position = PermitField[int | None]("queue_position", None)
    permit_estimated_start_at = PermitField[datetime | None]("estimated_start_at", None)
    folio = PermitField[str | None]("folio", None)
    permit_artifacts = PermitField[list[dict[str, Any]] | None]("artifacts", None)
    # When the owner's account deletion replaced the personal data with placeholders.
    anonymized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Permit-expiry reminder (`permisos_api.reminders`): a run claims the row (a lease, so a
    # crashed run's claim lapses) before mailing, and marks it sent after.
    expiry_reminder_claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expiry_reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


Index("ix_applications_status_updated", Application.status, Application.updated_at)


class Payment(Base):
    """One Stripe PaymentIntent of an application (an application may have several attempts)."""

    __tablename__ = "payments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    application_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("applications.id", ondelete="RESTRICT"), index=True
    )
    method: Mapped[str] = mapped_column(String(8))
    stripe_payment_intent_id: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    # The Stripe intent status, plus "expired" for an OXXO voucher that ran out.
    status: Mapped[str] = mapped_column(String(32))
    amount_centavos: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="MXN", server_default=text("'MXN'"))
    voucher_number: Mapped[str | None] = mapped_column(String(32))
    voucher_url: Mapped[str | None] = mapped_column(String(512))
    voucher_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stripe's `created` of the last applied event: the out-of-order guard.
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Stripe's last_payment_error.code (e.g. card_declined) and decline_code; no card data.
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    decline_code: Mapped[str | None] = mapped_column(String(64))
    succeeded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refund_id: Mapped[str | None] = mapped_column(String(64))
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    manual_refund_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


Index("ix_payments_status_updated", Payment.status, Payment.updated_at)


class PaymentEvent(Base):
    """Every Stripe event received, for audit; the primary key deduplicates redeliveries.

    `detail` is trimmed to the intent's id, status, amount, currency, metadata and error code:
    never billing names or emails.
    """

    __tablename__ = "payment_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Stripe event id
    application_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("applications.id"), index=True
    )
    payment_intent_id: Mapped[str | None] = mapped_column(String(64), index=True)
    type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str | None] = mapped_column(String(32))
    amount_centavos: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(3))
    stripe_created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
    # applied | ignored_stale | ignored_unknown | rejected_mismatch
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Outbox(Base):
    """Transactional outbox: written with the payment, read by the dispatcher. No personal data."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("application_id", "kind"),
        Index("ix_outbox_dispatched_at_next_attempt_at", "dispatched_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id"))
    kind: Mapped[str] = mapped_column(String(32))  # "permit_request", "permit_request_r<N>"
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(512))


class Permit(Base):
    """One PermitRequest of an application and what it came to: the first, then one per admin
    retry (`<application-id>-r<N>`). The mirror writes each one's state into its own row."""

    __tablename__ = "permits"
    __table_args__ = (UniqueConstraint("application_id", "retry"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    application_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("applications.id", ondelete="CASCADE")
    )
    retry: Mapped[int] = mapped_column(Integer)
    request_name: Mapped[str] = mapped_column(String(63), unique=True)
    phase: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(1024))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The newest transition written (the mirror writes only newer ones).
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # While it waits: the Admitted condition's reason, its place in line and expected start.
    waiting_reason: Mapped[str | None] = mapped_column(String(64))
    queue_position: Mapped[int | None] = mapped_column(Integer)
    estimated_start_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    folio: Mapped[str | None] = mapped_column(String(64))
    artifacts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # When the "permit ready" / "permit failed" mail went out (the notices loop sets it once).
    notice_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )


# Joins an application to its current permit (in queries that filter or order on the permit).
CURRENT_PERMIT = and_(
    Permit.application_id == Application.id, Permit.retry == Application.permit_retries
)


class PermitHistory(Base):
    """The mirror's append-only log of PermitRequest phases; idempotent by its unique key."""

    __tablename__ = "permit_history"
    __table_args__ = (UniqueConstraint("application_id", "phase", "attempt", "transitioned_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id"), index=True)
    phase: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(1024))
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # The PermitRequest the transition belongs to (NULL in rows written before retries existed).
    permit_request: Mapped[str | None] = mapped_column(String(63))
    transitioned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )


class PermitDownload(Base):
    """One presigned download URL handed out: who, which artifact, when, from where."""

    __tablename__ = "permit_downloads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("applications.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    downloaded_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, server_default=func.now()
    )
    client_address: Mapped[str | None] = mapped_column(String(64))


class RateLimitBucket(Base):
    """One fixed-window counter; shared by every API replica through the database."""

    __tablename__ = "rate_limit_buckets"
    __table_args__ = (PrimaryKeyConstraint("bucket", "window_start"),)

    # e.g. "login:address:<ip>" or "login:account:<sha256 of the email>" (no email in clear).
    bucket: Mapped[str] = mapped_column(String(128))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
