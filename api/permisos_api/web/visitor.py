"""Who is looking at a page: the principal of the session cookie, or nobody (no error: an
expired or revoked session is simply logged out)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from ..auth import SESSION_COOKIE, Principal, principal_for
from ..context import get_db
from ..problems import ProblemError


def current_visitor(request: Request, db: Annotated[Session, Depends(get_db)]) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return principal_for(db, token, "cookie")
    except ProblemError:
        return None


Visitor = Annotated[Principal | None, Depends(current_visitor)]


def to_login() -> RedirectResponse:
    """Where a page sends a visitor it does not know."""
    return RedirectResponse("/entrar", status_code=303)
