"""Server-side sessions and who may do what: the dependencies endpoints declare.

A session token is 32 random bytes; the database keeps only its SHA-256, so a leaked table does
not leak logins. Browsers carry it in an HttpOnly cookie and must echo the session's CSRF token in
`X-CSRF-Token` on unsafe requests (the cookie `permisos_csrf` holds it for the page's script);
API clients send it as a Bearer token, which no other site can make a browser attach, so they
need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from .context import get_db
from .db import utcnow
from .models import AuthSession, Role, User
from .problems import ProblemError
from .settings import ApiSettings

SESSION_COOKIE = "permisos_session"
CSRF_COOKIE = "permisos_csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def open_session(
    db: Session, user: User, request: Request, settings: ApiSettings
) -> tuple[AuthSession, str]:
    """Creates a session row; returns it and the token, which exists only in this response."""
    token = secrets.token_urlsafe(32)
    row = AuthSession(
        token_sha256=token_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=utcnow(),
        expires_at=utcnow() + timedelta(seconds=settings.session_ttl_seconds),
        client_address=client_address(request)[:64],
        user_agent=(request.headers.get("user-agent") or "")[:256] or None,
    )
    db.add(row)
    return row, token


def set_session_cookies(
    response: Response, token: str, csrf: str, expires_at: datetime, settings: ApiSettings
) -> None:
    max_age = max(0, int((expires_at - utcnow()).total_seconds()))
    for name, value, http_only in ((SESSION_COOKIE, token, True), (CSRF_COOKIE, csrf, False)):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            domain=settings.cookie_domain,
            secure=settings.cookie_secure,
            httponly=http_only,
            samesite="lax",
        )


def clear_session_cookies(response: Response, settings: ApiSettings) -> None:
    for name in (SESSION_COOKIE, CSRF_COOKIE):
        response.delete_cookie(
            name,
            path="/",
            domain=settings.cookie_domain,
            secure=settings.cookie_secure,
            samesite="lax",
        )


def revoke_all(db: Session, user_id: object, *, except_id: object | None = None) -> None:
    stmt = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    if except_id is not None:
        stmt = stmt.where(AuthSession.id != except_id)
    db.execute(stmt)


@dataclass
class Principal:
    user: User
    session: AuthSession
    via: Literal["cookie", "bearer"]

    @property
    def is_admin(self) -> bool:
        return self.user.role in (Role.admin, Role.superadmin)


# Declared as a FastAPI security dependency so that the OpenAPI document marks every operation
# that needs a principal (permisos_api/openapi.py completes the requirement with the cookie).
bearer_token = HTTPBearer(
    scheme_name="bearerToken",
    description="The `token` that `POST /v1/auth/login` returns with `issue_bearer: true`.",
    auto_error=False,
)


def _presented_token(
    request: Request, bearer: HTTPAuthorizationCredentials | None
) -> tuple[str, Literal["cookie", "bearer"]] | None:
    if bearer is not None and bearer.credentials.strip():
        return bearer.credentials.strip(), "bearer"
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie, "cookie"
    return None


def _unauthenticated(detail: str) -> ProblemError:
    return ProblemError(
        "authentication-required", detail, headers={"WWW-Authenticate": 'Bearer realm="permisos"'}
    )


# Built once: every authenticated request runs it, and building a select and its cache key
# costs more than the hashing (about 0.1 ms a request).
_SESSION_AND_USER = (
    select(AuthSession, User)
    .join(User, User.id == AuthSession.user_id)
    .where(AuthSession.token_sha256 == bindparam("digest"))
)


def principal_for(db: Session, token: str, via: Literal["cookie", "bearer"]) -> Principal:
    """The principal a session token stands for; a problem when it stands for none."""
    now = utcnow()
    row = db.execute(_SESSION_AND_USER, {"digest": token_digest(token)}).first()
    if row is None:
        raise _unauthenticated("The session is not valid.")
    session, user = row
    if session.revoked_at is not None or session.expires_at <= now:
        raise _unauthenticated("The session has ended; log in again.")
    if user.disabled_at is not None:
        raise ProblemError("account-disabled")
    return Principal(user=user, session=session, via=via)


def csrf_matches(sent: str, expected: str) -> bool:
    return bool(sent) and hmac.compare_digest(sent.encode(), expected.encode())


@dataclass(frozen=True)
class Credentials:
    """What a request presented, not yet looked up: a route that runs its database work in one
    worker hop (`context.in_worker`) checks them there, saving the hop a sync dependency costs."""

    token: str = field(repr=False)  # never in a log line or a traceback's repr
    via: Literal["cookie", "bearer"]
    unsafe: bool  # the method changes state, so a cookie needs the CSRF token too
    csrf_sent: str = field(repr=False)

    def principal(self, db: Session) -> Principal:
        principal = principal_for(db, self.token, self.via)
        checks_csrf = self.via == "cookie" and self.unsafe
        if checks_csrf and not csrf_matches(self.csrf_sent, principal.session.csrf_token):
            raise ProblemError("csrf-failed", f"Send the session's CSRF token in {CSRF_HEADER}.")
        return principal


async def presented_credentials(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_token)],
) -> Credentials:
    presented = _presented_token(request, bearer)
    if presented is None:
        raise _unauthenticated("Log in first.")
    return Credentials(
        *presented,
        unsafe=request.method not in SAFE_METHODS,
        csrf_sent=request.headers.get(CSRF_HEADER, ""),
    )


def current_principal(
    credentials: Annotated[Credentials, Depends(presented_credentials)],
    db: Annotated[Session, Depends(get_db)],
) -> Principal:
    return credentials.principal(db)


def require_role(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting only these roles (403 for the others)."""
    allowed = frozenset(role.value for role in roles)

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.user.role not in allowed:
            raise ProblemError("forbidden", "Your role does not allow this.")
        return principal

    return dependency
