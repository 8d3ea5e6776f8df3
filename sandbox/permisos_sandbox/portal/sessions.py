"""Cookie sessions with a fixed lifetime and one CSRF token each.

A visitor gets an anonymous session on the login page (so the login form has a token too); a good
login replaces it with a fresh authenticated one. Lifetimes are absolute from creation, like the
cookie's Max-Age, so a long flow can run out of time half way.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COOKIE = "sesion"


@dataclass
class Session:
    id: str
    usuario: str | None
    csrf_token: str
    expires_at: float
    # The application being filled in, one dict per completed step.
    draft: dict[str, dict[str, str]] = field(default_factory=dict)

    def csrf_ok(self, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token.encode(), token.encode())


class SessionStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, usuario: str | None, ttl: float) -> Session:
        self._sweep()
        session = Session(
            id=secrets.token_urlsafe(24),
            usuario=usuario,
            csrf_token=secrets.token_urlsafe(24),
            expires_at=self._clock() + ttl,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if self._clock() >= session.expires_at:
            del self._sessions[session_id]
            return None
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def expire_authenticated(self) -> None:
        """Logged-in sessions end now; anonymous ones keep their login form usable."""
        for key in [k for k, s in self._sessions.items() if s.usuario is not None]:
            del self._sessions[key]

    def reset(self) -> None:
        self._sessions.clear()

    def _sweep(self) -> None:
        now = self._clock()
        for key in [k for k, s in self._sessions.items() if now >= s.expires_at]:
            del self._sessions[key]
