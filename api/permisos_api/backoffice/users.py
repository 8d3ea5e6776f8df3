"""Disabling and enabling an account. Nobody changes their own; only a superadmin changes a
superadmin's."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from ..auth import Principal, revoke_all
from ..db import utcnow
from ..models import Role, User
from ..problems import ProblemError
from . import audit


def _target(db: Session, admin: Principal, user_id: uuid.UUID) -> User:
    user = db.get(User, user_id, with_for_update=True)
    if user is None:
        raise ProblemError("not-found", "No such user.")
    if user.id == admin.user.id:
        raise ProblemError("invalid-state", "You cannot disable or enable your own account.")
    if user.role == Role.superadmin and admin.user.role != Role.superadmin:
        raise ProblemError("forbidden", "Only a superadmin can change a superadmin's account.")
    return user


def disable_user(db: Session, admin: Principal, user_id: uuid.UUID) -> User:
    """Idempotent; every session of the account is revoked. Commits."""
    user = _target(db, admin, user_id)
    if user.disabled_at is None:
        user.disabled_at = utcnow()
    revoke_all(db, user.id)
    db.commit()
    audit.record(admin, "disable_user", user=user.id)
    return user


def enable_user(db: Session, admin: Principal, user_id: uuid.UUID) -> User:
    """Idempotent; a deleted account stays deleted. Commits."""
    user = _target(db, admin, user_id)
    if user.deleted_at is not None:
        raise ProblemError("invalid-state", "A deleted account cannot be enabled.")
    user.disabled_at = None
    db.commit()
    audit.record(admin, "enable_user", user=user.id)
    return user
