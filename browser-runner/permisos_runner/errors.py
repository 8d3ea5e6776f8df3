"""How an attempt can fail: the two kinds the operator acts on differently.

Retryable failures are the portal's or the infrastructure's (the operator tries again later);
permanent ones mean the portal rejected the data, and trying again would only be rejected again.
"""

from __future__ import annotations

from typing import Literal

from permisos.redact import redact

Outcome = Literal["retryable", "permanent"]


class AttemptFailed(Exception):
    """A classified failure; `message` is already free of personal data."""

    outcome: Outcome = "retryable"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = redact(message)


class Retryable(AttemptFailed):
    outcome: Outcome = "retryable"


class Permanent(AttemptFailed):
    outcome: Outcome = "permanent"
