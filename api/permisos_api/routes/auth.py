"""/v1/auth: registration, email verification, login, logout, password reset, sessions."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import quote

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import tokens
from ..auth import (
    clear_session_cookies,
    client_address,
    open_session,
    revoke_all,
    set_session_cookies,
)
from ..context import Services
from ..db import utcnow
from ..deps import CurrentPrincipal, Db, Svc
from ..models import AuthSession, Role, User
from ..passwords import policy_violation
from ..problems import FieldError, ProblemError, problem_responses, validation_problem
from ..ratelimit import account_key
from ..schemas import (
    Accepted,
    LoginIn,
    LoginOut,
    RegisterIn,
    ResetConfirmIn,
    ResetRequestIn,
    SessionList,
    SessionOut,
    UserOut,
    Verified,
    VerifyIn,
    WhoAmI,
)

router = APIRouter(prefix="/v1/auth", tags=["accounts"])

VERIFY_PURPOSE = "verify-email"
RESET_PURPOSE = "password-reset"


def _find_user(db: Session, email: str) -> User | None:
    normalized = email.strip().lower()
    if "\x00" in normalized:
        # PostgreSQL text cannot hold NUL: the query raised DataError (500); no account has one.
        return None
    return db.scalars(select(User).where(func.lower(User.email) == normalized)).first()


def _user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        role=Role(user.role).value,
        email_verified_at=user.email_verified_at,
    )


def _session_out(row: AuthSession, current_id: uuid.UUID | None = None) -> SessionOut:
    return SessionOut(
        id=row.id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        client_address=row.client_address,
        user_agent=row.user_agent,
        current=row.id == current_id,
    )


def _check_password(password: str, email: str) -> None:
    broken = policy_violation(password, email)
    if broken:
        raise validation_problem([FieldError(field="password", rule=broken[0], detail=broken[1])])


def _link(svc: Services, path: str, token: str) -> str:
    return f"{svc.settings.public_base_url.rstrip('/')}{path}?token={quote(token)}"


def send_verification(svc: Services, user: User) -> None:
    secret = svc.settings.signing_secret.get_secret_value()
    ttl = svc.settings.email_verification_ttl_seconds
    token = tokens.sign(secret, VERIFY_PURPOSE, str(user.id), ttl)
    svc.mailer.send(
        user.email,
        "Confirma tu correo — Permisos Digitales",
        "Hola:\n\nPara activar tu cuenta de Permisos Digitales abre este enlace:\n\n"
        f"{_link(svc, '/v1/auth/verify', token)}\n\n"
        f"El enlace vence en {ttl // 3600} horas. Si no creaste una cuenta, ignora este mensaje.\n",
        kind="verify-email",
    )


@router.post(
    "/register",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Register an account",
    description="Creates an unverified account and mails a signed verification link. The answer "
    "is the same whether or not the address already has an account (no enumeration); an "
    "existing owner gets a notice instead.",
    responses=problem_responses(422, 429),
)
def register(body: RegisterIn, request: Request, db: Db, svc: Svc) -> Accepted:
    s = svc.settings
    svc.limiter.hit(f"register:address:{client_address(request)}", s.register_limit_per_address)
    _check_password(body.password, body.email)
    password_hash = svc.hasher.hash(body.password)  # also for existing ones: same timing
    existing = _find_user(db, body.email)
    if existing is None:
        user = User(email=body.email, password_hash=password_hash, role=Role.client.value)
        db.add(user)
        db.commit()
        send_verification(svc, user)
    elif existing.email_verified_at is None:
        send_verification(svc, existing)
    else:
        svc.mailer.send(
            existing.email,
            "Ya tienes una cuenta — Permisos Digitales",
            "Hola:\n\nAlguien intentó registrar una cuenta con este correo, que ya tiene una. "
            "Si olvidaste tu contraseña, puedes restablecerla desde la página de inicio de "
            "sesión.\n",
            kind="register-existing",
        )
    return Accepted(detail="If the address can be used, a verification message is on its way.")


def _verify(token: str, db: Session, svc: Services) -> Verified:
    secret = svc.settings.signing_secret.get_secret_value()
    try:
        claims = tokens.verify(secret, VERIFY_PURPOSE, token)
        user = db.get(User, uuid.UUID(claims.subject))
    except (tokens.InvalidToken, ValueError):
        user = None
    if user is None:
        raise ProblemError("invalid-token")
    if user.email_verified_at is None:  # a second click is fine
        user.email_verified_at = utcnow()
        db.commit()
    return Verified()


_VERIFY_RESPONSES = problem_responses(400, 422)
_VERIFY_DESCRIPTION = (
    "Marks the account's email as verified. Idempotent; the link in the mail uses GET, clients "
    "may POST the token."
)


@router.get(
    "/verify",
    response_model=Verified,
    summary="Verify an email address (link from the mail)",
    description=_VERIFY_DESCRIPTION,
    responses=_VERIFY_RESPONSES,
)
def verify_get(token: str, db: Db, svc: Svc) -> Verified:
    return _verify(token, db, svc)


@router.post(
    "/verify",
    response_model=Verified,
    summary="Verify an email address",
    description=_VERIFY_DESCRIPTION,
    responses=_VERIFY_RESPONSES,
)
def verify_post(body: VerifyIn, db: Db, svc: Svc) -> Verified:
    return _verify(body.token, db, svc)


def _bad_credentials() -> ProblemError:
    return ProblemError("invalid-credentials")


@router.post(
    "/login",
    response_model=LoginOut,
    summary="Log in",
    description="Verified accounts only. Sets the `permisos_session` cookie (HttpOnly, "
    "SameSite=Lax) and the `permisos_csrf` cookie, or with `issue_bearer` returns a token for "
    "`Authorization: Bearer` instead. Repeated wrong passwords lock the account for a while.",
    responses=problem_responses(401, 403, 422, 429),
)
def login(body: LoginIn, request: Request, response: Response, db: Db, svc: Svc) -> LoginOut:
    s = svc.settings
    svc.limiter.hit(f"login:address:{client_address(request)}", s.login_limit_per_address)
    svc.limiter.hit(f"login:account:{account_key(body.email)}", s.login_limit_per_account)
    user = _find_user(db, body.email)
    now = utcnow()
    if user is not None and user.locked_until is not None and user.locked_until > now:
        retry = max(1, int((user.locked_until - now).total_seconds()) + 1)
        raise ProblemError(
            "account-locked",
            f"Try again in {retry} seconds or reset the password.",
            headers={"Retry-After": str(retry)},
        )
    if not svc.hasher.verify(user.password_hash if user else None, body.password):
        if user is not None:
            user.failed_logins += 1
            if user.failed_logins >= s.lockout_threshold:
                user.locked_until = now + timedelta(minutes=s.lockout_minutes)
                user.failed_logins = 0
            db.commit()
        raise _bad_credentials()
    assert user is not None
    if user.disabled_at is not None:
        raise ProblemError("account-disabled")
    if user.email_verified_at is None:
        raise ProblemError("email-not-verified", "Open the link we mailed you first.")
    user.failed_logins = 0
    user.locked_until = None
    if svc.hasher.needs_rehash(user.password_hash):
        user.password_hash = svc.hasher.hash(body.password)
    session, token = open_session(db, user, request, s)
    db.commit()
    if not body.issue_bearer:
        set_session_cookies(response, token, session.csrf_token, session.expires_at, s)
    return LoginOut(
        user=_user_out(user),
        session=_session_out(session, session.id),
        csrf_token=session.csrf_token,
        token=token if body.issue_bearer else None,
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out",
    description="Revokes the current session and clears the cookies.",
    responses=problem_responses(401, 403),
)
def logout(principal: CurrentPrincipal, response: Response, db: Db, svc: Svc) -> None:
    row = db.get(AuthSession, principal.session.id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        db.commit()
    clear_session_cookies(response, svc.settings)


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Ask for a password reset link",
    description="Always 202, whether or not the address has an account (no enumeration).",
    responses=problem_responses(422, 429),
)
def password_reset_request(body: ResetRequestIn, request: Request, db: Db, svc: Svc) -> Accepted:
    s = svc.settings
    svc.limiter.hit(f"reset:address:{client_address(request)}", s.password_reset_limit_per_address)
    svc.limiter.hit(f"reset:account:{account_key(body.email)}", s.password_reset_limit_per_account)
    user = _find_user(db, body.email)
    if user is not None and user.disabled_at is None:
        secret = s.signing_secret.get_secret_value()
        # Bound to the current hash: once the password changes, the link is spent.
        token = tokens.sign(
            secret,
            RESET_PURPOSE,
            str(user.id),
            s.password_reset_ttl_seconds,
            binding=tokens.binding_of(user.password_hash),
        )
        svc.mailer.send(
            user.email,
            "Restablece tu contraseña — Permisos Digitales",
            "Hola:\n\nPara elegir una contraseña nueva abre este enlace:\n\n"
            f"{_link(svc, '/v1/auth/password-reset/confirm', token)}\n\n"
            f"Vence en {s.password_reset_ttl_seconds // 60} minutos. Si no lo pediste, ignora "
            "este mensaje: tu contraseña no cambia.\n",
            kind="password-reset",
        )
    return Accepted(detail="If the address has an account, a reset link is on its way.")


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Set a new password with a reset token",
    description="Ends every session of the account, lifts a lockout and, since the link proved "
    "the mailbox, marks the email verified. Each link works once.",
    responses=problem_responses(400, 422),
)
def password_reset_confirm(body: ResetConfirmIn, db: Db, svc: Svc) -> None:
    secret = svc.settings.signing_secret.get_secret_value()
    user: User | None = None
    binding = ""
    try:
        claims = tokens.verify(secret, RESET_PURPOSE, body.token)
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
    _check_password(body.password, user.email)
    user.password_hash = svc.hasher.hash(body.password)
    user.failed_logins = 0
    user.locked_until = None
    user.email_verified_at = user.email_verified_at or utcnow()
    revoke_all(db, user.id)
    db.commit()


@router.get(
    "/session",
    response_model=WhoAmI,
    summary="Who am I",
    responses=problem_responses(401, 403),
)
def who_am_i(principal: CurrentPrincipal) -> WhoAmI:
    return WhoAmI(
        user=_user_out(principal.user),
        session=_session_out(principal.session, principal.session.id),
        authenticated_by=principal.via,
        csrf_token=principal.session.csrf_token if principal.via == "cookie" else None,
    )


@router.get(
    "/sessions",
    response_model=SessionList,
    summary="List my active sessions",
    responses=problem_responses(401, 403),
)
def list_sessions(principal: CurrentPrincipal, db: Db) -> SessionList:
    rows = db.scalars(
        select(AuthSession)
        .where(
            AuthSession.user_id == principal.user.id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > utcnow(),
        )
        .order_by(AuthSession.created_at.desc())
    ).all()
    return SessionList(items=[_session_out(row, principal.session.id) for row in rows])


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke one of my sessions",
    description="Another user's session id answers 404, like one that does not exist.",
    responses=problem_responses(401, 403, 404, 422),
)
def revoke_session(session_id: uuid.UUID, principal: CurrentPrincipal, db: Db) -> None:
    row = db.get(AuthSession, session_id)
    if row is None or row.user_id != principal.user.id:
        raise ProblemError("not-found", "No such session.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        db.commit()
