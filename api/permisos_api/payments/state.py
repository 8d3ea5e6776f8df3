"""The one-way state machine of a payment, pure: which observed state may replace which.

A payment's local status is Stripe's intent status, or `expired` for an OXXO voucher that lapsed.
`succeeded` is final: nothing moves a payment out of it. `canceled` and `expired` are final except
that money arriving (`succeeded`) still wins. Every observation is a fresh read of the intent from
Stripe's API, taken while the application's row is locked, so observations of one payment arrive
in the order Stripe reported them and the latest one wins; webhook payloads, which can be stale,
duplicated or out of order, are never applied (see `webhooks.py`).
"""

from __future__ import annotations

from enum import StrEnum

SUCCEEDED = "succeeded"
FINAL = frozenset({"succeeded", "canceled", "expired"})
# The application waits on these: an OXXO voucher, a 3-D Secure challenge, a settling payment.
PENDING = frozenset({"requires_action", "processing"})
# Intents that can still take money and that Stripe lets us cancel: one Stripe.js can confirm
# (another card after a decline too), or one waiting on 3-D Secure or an OXXO voucher.
OPEN = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})


class Decision(StrEnum):
    apply = "apply"
    same = "same"  # already there: idempotent, nothing to change
    stale = "stale"  # a final state is never left (except for money arriving)


def decide(current: str, current_failed: bool, new: str, new_failed: bool) -> Decision:
    """What a fresh read of the intent (`new`) does to the payment's state (`current`)."""
    if new == current and new_failed == current_failed:
        return Decision.same
    if current == SUCCEEDED:
        return Decision.stale
    if new == SUCCEEDED:
        return Decision.apply
    if current in FINAL:
        return Decision.stale
    return Decision.apply
