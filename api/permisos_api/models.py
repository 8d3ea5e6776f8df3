"""The ORM models. Personal data lives only in `applications` (and the account's email)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Uuid,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    client = "client"
    admin = "admin"
    superadmin = "superadmin"


class ApplicationStatus(enum.StrEnum):
    """Stored as text without a CHECK, so payment and permit states can join in later."""

    draft = "draft"
    awaiting_payment = "awaiting_payment"
    cancelled = "cancelled"


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


class RateLimitBucket(Base):
    """One fixed-window counter; shared by every API replica through the database."""

    __tablename__ = "rate_limit_buckets"
    __table_args__ = (PrimaryKeyConstraint("bucket", "window_start"),)

    # e.g. "login:address:<ip>" or "login:account:<sha256 of the email>" (no email in clear).
    bucket: Mapped[str] = mapped_column(String(128))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
