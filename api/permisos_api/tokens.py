"""Signed, expiring tokens for email links (verification, password reset), stdlib HMAC only.

Format: base64url(JSON payload) "." base64url(HMAC-SHA256(secret, purpose "." payload)). The
purpose is inside the MAC, so a verification token can never be replayed as a reset token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    expires_at: int
    binding: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> bytes:
    return hmac.new(secret.encode(), f"{purpose}.{payload}".encode(), hashlib.sha256).digest()


def sign(
    secret: str,
    purpose: str,
    subject: str,
    ttl_seconds: int,
    *,
    binding: str = "",
    now: float | None = None,
) -> str:
    """`binding` ties the token to server state (e.g. the password hash) so it is single-use."""
    expires = int((now if now is not None else time.time()) + ttl_seconds)
    payload = _b64(
        json.dumps({"s": subject, "e": expires, "b": binding}, separators=(",", ":")).encode()
    )
    return f"{payload}.{_b64(_mac(secret, purpose, payload))}"


def verify(secret: str, purpose: str, token: str, *, now: float | None = None) -> TokenClaims:
    try:
        payload, mac = token.split(".", 1)
        good = hmac.compare_digest(_unb64(mac), _mac(secret, purpose, payload))
        data = json.loads(_unb64(payload)) if good else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("malformed") from exc
    if not isinstance(data, dict):
        raise InvalidToken("bad signature")
    claims = TokenClaims(str(data.get("s", "")), int(data.get("e", 0)), str(data.get("b", "")))
    if claims.expires_at < (now if now is not None else time.time()):
        raise InvalidToken("expired")
    return claims


def binding_of(secret_state: str) -> str:
    """A short fingerprint of server state, safe to put in a URL."""
    return hashlib.sha256(secret_state.encode()).hexdigest()[:16]
