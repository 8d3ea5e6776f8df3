"""The one-way state machine of a payment, pure: which observed state may replace which.

A payment's local status is Stripe's intent status, or `expired` for an OXXO voucher that lapsed.
`succeeded` is final: nothing moves a payment out of it. `canceled` and `expired` are final except
that money arriving (`succeeded`) still wins. Between the other states, events may arrive
duplicated and in any order: an event older than the last one applied is ignored unless it moves
the payment to a final state; at the same second (Stripe's `created` has one-second resolution),
the further state wins, and a failure counts as further than the challenge it ended.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

SUCCEEDED = "succeeded"
FINAL = frozenset({"succeeded", "canceled", "expired"})
# The application waits on these: an OXXO voucher, a 3-D Secure challenge, a settling payment.
PENDING = frozenset({"requires_action", "processing"})
# A failure is `requires_payment_method` with an error; without one, the intent awaits a method.
_RANK = {
    "requires_payment_method": 0,
    "requires_confirmation": 0,
    "requires_action": 1,
    "processing": 2,
    "failed": 3,
    "canceled": 4,
    "expired": 4,
    "succeeded": 5,
}


class Decision(StrEnum):
    apply = "apply"
    same = "same"  # already there: idempotent, nothing to change
    stale = "stale"


def _rank(status: str, failed: bool) -> int:
    if status == "requires_payment_method" and failed:
        return _RANK["failed"]
    return _RANK.get(status, 0)


def decide(
    current: str,
    current_failed: bool,
    new: str,
    new_failed: bool,
    *,
    last_event_at: datetime | None,
    event_at: datetime | None,
) -> Decision:
    """`event_at` None means a fresh read of the intent (authoritative now), not an event."""
    if new == current and new_failed == current_failed:
        return Decision.same
    if current == SUCCEEDED:
        return Decision.stale
    if new == SUCCEEDED:
        return Decision.apply
    if current in FINAL:
        return Decision.stale
    if new in FINAL or event_at is None or last_event_at is None:
        return Decision.apply
    if event_at < last_event_at:
        return Decision.stale
    if event_at == last_event_at and _rank(new, new_failed) < _rank(current, current_failed):
        return Decision.stale
    return Decision.apply
