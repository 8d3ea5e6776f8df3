"""What the account tests compare: an answer as a user tells it apart, and a wrong password."""

from __future__ import annotations

import httpx

WRONG = "Not-the-password-1"


def kind(r: httpx.Response) -> str:
    """The answer as a user tells it apart: its status and, for a problem, its type."""
    if r.headers.get("content-type", "").startswith("application/problem+json"):
        return f"{r.status_code} {str(r.json()['type']).rsplit('/', 1)[-1]}"
    return str(r.status_code)
