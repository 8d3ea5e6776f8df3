"""How an attempt can fail: the two kinds the operator acts on differently.

Retryable failures are the portal's or the infrastructure's (the operator tries again later);
permanent ones mean the portal rejected the data, and trying again would only be rejected again.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

from permisos.redact import redact

Outcome = Literal["retryable", "permanent"]


class AttemptFailed(Exception):
    """A classified failure; `message` is already free of personal data."""

    outcome: Outcome = "retryable"

    def __init__(
        self, reason: str, message: str, *, retry_after_seconds: int | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = redact(message)
        # What the portal asked for (Retry-After): the pool slows down that long.
        self.retry_after_seconds = retry_after_seconds


class Retryable(AttemptFailed):
    outcome: Outcome = "retryable"


class Permanent(AttemptFailed):
    outcome: Outcome = "permanent"


def retry_after(value: str | None, now: datetime | None = None) -> int | None:
    """An HTTP Retry-After (seconds, or a date) as whole seconds from now; None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0, math.ceil((when - (now or datetime.now(UTC))).total_seconds()))
