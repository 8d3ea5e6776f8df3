"""Accounts: registration, email verification, login, logout and password reset, as services
that the JSON API (`routes/auth.py`) and the web pages (`web/`) both call.

Failures are `ProblemError`s (the API answers them as problem documents; the pages say them in
Spanish next to the field). Mails link to the web pages, which a person opens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from fastapi import BackgroundTasks, Request
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from . import tokens
from .auth import client_address, open_session, revoke_all
from .context import Services
from .db import utcnow
from .models import AuthSession, Role, User
from .passwords import policy_violation
from .problems import FieldError, ProblemError, validation_problem
from .ratelimit import account_key, count_attempt, lock_bucket
from .settings import ApiSettings

VERIFY_PURPOSE = "verify-email"
RESET_PURPOSE = "password-reset"
# The web pages the mailed links open (`web/accounts.py`).
VERIFY_PAGE = "/verificar"
RESET_PAGE = "/restablecer"


def find_user(db: Session, email: str) -> User | None:
    normalized = email.strip().lower()
    return db.scalars(select(User).where(func.lower(User.email) == normalized)).first()


def password_errors(password: str, email: str) -> list[FieldError]:
    """The password policy's verdict: the first rule it breaks, if any."""
    broken = policy_violation(password, email)
    return [FieldError(field="password", rule=broken[0], detail=broken[1])] if broken else []


def check_password(password: str, email: str) -> None:
    errors = password_errors(password, email)
    if errors:
        raise validation_problem(errors)


def _link(svc: Services, path: str, token: str) -> str:
    return f"{svc.settings.public_base_url.rstrip('/')}{path}?token={quote(token)}"


def send_verification(svc: Services, user: User) -> None:
    secret = svc.settings.signing_secret.get_secret_value()
    ttl = svc.settings.email_verification_ttl_seconds
    token = tokens.sign(secret, VERIFY_PURPOSE, str(user.id), ttl)
    link = _link(svc, VERIFY_PAGE, token)
    svc.mailer.send(user.email, "verify-email", link=link, hours=ttl // 3600)


def register(db: Session, svc: Services, request: Request, email: str, password: str) -> None:
    """Creates an unverified account and mails its link; the same outcome whether or not the
    address has an account (no enumeration): an existing owner gets a notice instead."""
    s = svc.settings
    svc.limiter.hit(f"register:address:{client_address(request)}", s.register_limit_per_address)
    check_password(password, email)
    password_hash = svc.hasher.hash(password)  # also for existing ones: same timing
    existing = find_user(db, email)
    if existing is None:
        user = User(email=email, password_hash=password_hash, role=Role.client.value)
        db.add(user)
        db.commit()
        send_verification(svc, user)
    elif existing.email_verified_at is None:
        send_verification(svc, existing)
    else:
        svc.mailer.send(existing.email, "register-existing")


def verify_email(db: Session, svc: Services, token: str) -> User:
    """Marks the address verified (a second click is fine); `invalid-token` otherwise."""
    secret = svc.settings.signing_secret.get_secret_value()
    try:
        claims = tokens.verify(secret, VERIFY_PURPOSE, token)
        user = db.get(User, uuid.UUID(claims.subject))
    except (tokens.InvalidToken, ValueError):
        user = None
    if user is None:
        raise ProblemError("invalid-token")
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
        db.commit()
    return user


@dataclass
class LoggedIn:
    user: User
    session: AuthSession
    token: str  # exists only in this answer: the database keeps its SHA-256


def log_in(db: Session, svc: Services, request: Request, email: str, password: str) -> LoggedIn:
    """Opens a session for a verified, enabled account with this password. Repeated wrong
    passwords lock the account for a while; both the address and the account are rate-limited."""
    s = svc.settings
    svc.limiter.hit(f"login:address:{client_address(request)}", s.login_limit_per_address)
    svc.limiter.hit(f"login:account:{account_key(email)}", s.login_limit_per_account)
    user = find_user(db, email)
    verify_password(db, svc, user, email, password)
    assert user is not None
    if user.disabled_at is not None:
        raise ProblemError("account-disabled")
    if user.email_verified_at is None:
        raise ProblemError("email-not-verified", "Open the link we mailed you first.")
    if svc.hasher.needs_rehash(user.password_hash):
        user.password_hash = svc.hasher.hash(password)
    session, token = open_session(db, user, request, s)
    db.commit()
    return LoggedIn(user, session, token)


def verify_password(
    db: Session, svc: Services, user: User | None, email: str, password: str
) -> None:
    """The password of `user` (None: the address has no account), under the lockout: every
    check of a password counts, the login's and the account deletion's alike. Raises
    `account-locked` or `invalid-credentials`."""
    s = svc.settings
    # An address without an account is counted and locked alike (under its digest, with the
    # rate limits): otherwise only addresses with an account would ever answer account-locked.
    nobody = f"login:lockout:{account_key(email)}"
    lock = timedelta(minutes=s.lockout_minutes)
    if user is not None:
        attempt = _begin_attempt(db, user.id, s)
    else:
        attempt, until = count_attempt(db, nobody, s.lockout_threshold, lock)
        if attempt == 0:
            raise _locked(until)
    if not svc.hasher.verify(user.password_hash if user else None, password):
        if attempt >= s.lockout_threshold:
            if user is not None:
                _set_lock(db, user.id, s, locked=True)
            else:
                lock_bucket(db, nobody, lock)
        raise ProblemError("invalid-credentials")
    assert user is not None
    _set_lock(db, user.id, s, locked=False)


def _begin_attempt(db: Session, user_id: uuid.UUID, s: ApiSettings) -> int:
    """Counts the attempt before its password is checked, in one UPDATE that PostgreSQL applies
    to the row one at a time: of parallel attempts only `lockout_threshold` get to guess, and
    the next one locks the account (counted after the check, all of them read the count before
    any was written, and all guessed). Returns the attempt's number since the last success."""
    now = utcnow()
    over = User.failed_logins + 1 > s.lockout_threshold
    lock = now + timedelta(minutes=s.lockout_minutes)
    row = db.execute(
        update(User)
        .where(User.id == user_id, or_(User.locked_until.is_(None), User.locked_until <= now))
        .values(
            failed_logins=case((over, 0), else_=User.failed_logins + 1),
            locked_until=case((over, lock), else_=User.locked_until),
        )
        .returning(User.failed_logins, User.locked_until)
    ).first()
    if row is None:
        until = db.scalar(select(User.locked_until).where(User.id == user_id))
    else:
        attempt, until = row
    db.commit()
    if row is not None and (until is None or until <= now):
        return int(attempt)
    raise _locked(until or lock)


def _locked(until: datetime) -> ProblemError:
    retry = max(1, int((until - utcnow()).total_seconds()) + 1)
    return ProblemError(
        "account-locked",
        f"Try again in {retry} seconds or reset the password.",
        headers={"Retry-After": str(retry)},
    )


def _set_lock(db: Session, user_id: uuid.UUID, s: ApiSettings, *, locked: bool) -> None:
    """The last allowed wrong password locks; a right one clears the count (never a lock a
    parallel attempt set). One statement each, like the count."""
    if locked:
        until = utcnow() + timedelta(minutes=s.lockout_minutes)
        values: dict[str, object] = {"locked_until": until, "failed_logins": 0}
    else:
        values = {"failed_logins": 0}
    db.execute(update(User).where(User.id == user_id).values(**values))
    db.commit()


def log_out(db: Session, session_id: uuid.UUID) -> None:
    row = db.get(AuthSession, session_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        db.commit()


def request_reset(
    db: Session, svc: Services, request: Request, email: str, later: BackgroundTasks
) -> None:
    """Mails a single-use reset link when the address has an enabled account; the same outcome
    otherwise (no enumeration), in the same time: the mail goes out after the answer."""
    s = svc.settings
    svc.limiter.hit(f"reset:address:{client_address(request)}", s.password_reset_limit_per_address)
    svc.limiter.hit(f"reset:account:{account_key(email)}", s.password_reset_limit_per_account)
    user = find_user(db, email)
    if user is None or user.disabled_at is not None:
        return
    secret = s.signing_secret.get_secret_value()
    # Bound to the current hash: once the password changes, the link is spent.
    token = tokens.sign(
        secret,
        RESET_PURPOSE,
        str(user.id),
        s.password_reset_ttl_seconds,
        binding=tokens.binding_of(user.password_hash),
    )
    link = _link(svc, RESET_PAGE, token)
    minutes = s.password_reset_ttl_seconds // 60
    later.add_task(svc.mailer.send_or_log, user.email, "password-reset", link=link, minutes=minutes)


def confirm_reset(db: Session, svc: Services, token: str, password: str) -> None:
    """Sets the new password: ends every session, lifts a lockout and, since the link proved
    the mailbox, marks the email verified. Each link works once."""
    secret = svc.settings.signing_secret.get_secret_value()
    user: User | None = None
    binding = ""
    try:
        claims = tokens.verify(secret, RESET_PURPOSE, token)
        binding = claims.binding
        user = db.get(User, uuid.UUID(claims.subject))
    except (tokens.InvalidToken, ValueError):
        user = None
    if (
        user is None
        or user.disabled_at is not None
        or binding != tokens.binding_of(user.password_hash)
    ):
        raise ProblemError("invalid-token")
    check_password(password, user.email)
    user.password_hash = svc.hasher.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.email_verified_at = user.email_verified_at or utcnow()
    revoke_all(db, user.id)
    db.commit()
