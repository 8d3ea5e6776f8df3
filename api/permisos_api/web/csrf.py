"""CSRF protection of every form: a hidden `csrf_token` that must match the visitor's.

Logged in, it is the session's own CSRF token (the one the JSON API takes in X-CSRF-Token);
before logging in it is a random one in the `permisos_csrf` cookie (double submit), which
guards the login and registration forms against login CSRF. Another site can neither read the
cookie nor set it.
"""

from __future__ import annotations

import secrets

from fastapi import Request, Response

from ..auth import CSRF_COOKIE, Principal, csrf_matches
from ..settings import ApiSettings

FIELD = "csrf_token"


def form_token(request: Request, visitor: Principal | None) -> tuple[str, bool]:
    """The token a form on this page carries, and whether its cookie must be set now."""
    if visitor is not None:
        return visitor.session.csrf_token, False
    existing = request.cookies.get(CSRF_COOKIE, "")
    if 20 <= len(existing) <= 100:
        return existing, False
    return secrets.token_urlsafe(32), True


def set_cookie(response: Response, token: str, settings: ApiSettings) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        token,
        path="/",
        domain=settings.cookie_domain,
        secure=settings.cookie_secure,
        httponly=False,  # the JSON API's clients read it; the pages do not need to
        samesite="lax",
    )


def valid(request: Request, sent: str, visitor: Principal | None) -> bool:
    expected = visitor.session.csrf_token if visitor else request.cookies.get(CSRF_COOKIE, "")
    return bool(expected) and csrf_matches(sent, expected)
