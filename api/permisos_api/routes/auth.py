"""/v1/auth: registration, email verification, login, logout, password reset, sessions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, BackgroundTasks, Request, Response, status
from sqlalchemy import select

from .. import accounts
from ..auth import clear_session_cookies, set_session_cookies
from ..db import utcnow
from ..deps import CurrentPrincipal, Db, Svc
from ..models import AuthSession, Role, User
from ..problems import ProblemError, problem_responses
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
    accounts.register(db, svc, request, body.email, body.password)
    return Accepted(detail="If the address can be used, a verification message is on its way.")


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
    accounts.verify_email(db, svc, token)
    return Verified()


@router.post(
    "/verify",
    response_model=Verified,
    summary="Verify an email address",
    description=_VERIFY_DESCRIPTION,
    responses=_VERIFY_RESPONSES,
)
def verify_post(body: VerifyIn, db: Db, svc: Svc) -> Verified:
    accounts.verify_email(db, svc, body.token)
    return Verified()


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
    done = accounts.log_in(db, svc, request, body.email, body.password)
    session = done.session
    if not body.issue_bearer:
        set_session_cookies(
            response, done.token, session.csrf_token, session.expires_at, svc.settings
        )
    return LoginOut(
        user=_user_out(done.user),
        session=_session_out(session, session.id),
        csrf_token=session.csrf_token,
        token=done.token if body.issue_bearer else None,
    )


@router.post(
    "/logout",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Log out",
    description="Revokes the current session and clears the cookies.",
    responses=problem_responses(401, 403),
)
def logout(principal: CurrentPrincipal, response: Response, db: Db, svc: Svc) -> None:
    accounts.log_out(db, principal.session.id)
    clear_session_cookies(response, svc.settings)


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Ask for a password reset link",
    description="Always 202, whether or not the address has an account (no enumeration).",
    responses=problem_responses(422, 429),
)
def password_reset_request(
    body: ResetRequestIn, request: Request, db: Db, svc: Svc, background: BackgroundTasks
) -> Accepted:
    accounts.request_reset(db, svc, request, body.email, background)
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
    accounts.confirm_reset(db, svc, body.token, body.password)


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
