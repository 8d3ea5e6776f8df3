"""What the app keeps of a PaymentIntent: an `IntentSnapshot`, whatever it came from.

An intent arrives as a webhook event's JSON, an SDK answer, or the intent inside a CardError; the
snapshot keeps the fields the state machine needs and nothing personal (an OXXO intent's
payment method carries the billing name and email: it is never read here).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

OXXO_EXPIRED = "payment_intent_payment_attempt_expired"


@dataclass(frozen=True)
class Voucher:
    number: str | None
    url: str | None
    expires_at: datetime | None


@dataclass(frozen=True)
class IntentSnapshot:
    id: str
    status: str
    amount: int | None
    currency: str | None  # upper case, like the application's
    application_id: str | None  # metadata.application_id, unparsed
    error_code: str | None
    decline_code: str | None
    method: str  # card | oxxo
    voucher: Voucher | None
    next_action_type: str | None
    # The challenge of a 3-D Secure card: Stripe's redirect_to_url or use_stripe_sdk hash.
    next_action_redirect: Mapping[str, Any] | None
    next_action_sdk: Mapping[str, Any] | None
    client_secret: str | None

    @classmethod
    def from_object(cls, obj: stripe.StripeObject | Mapping[str, Any]) -> IntentSnapshot:
        data: Mapping[str, Any] = obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj
        metadata = data.get("metadata") or {}
        error = data.get("last_payment_error") or {}
        types = data.get("payment_method_types") or []
        next_action = data.get("next_action") or {}
        voucher = None
        details = next_action.get("oxxo_display_details")
        if details:
            expires = details.get("expires_after")
            voucher = Voucher(
                number=_str(details.get("number")),
                url=_str(details.get("hosted_voucher_url")),
                expires_at=datetime.fromtimestamp(expires, UTC)
                if isinstance(expires, int)
                else None,
            )
        amount = data.get("amount")
        currency = data.get("currency")
        return cls(
            id=str(data.get("id") or ""),
            status=str(data.get("status") or ""),
            amount=amount if isinstance(amount, int) else None,
            currency=currency.upper() if isinstance(currency, str) else None,
            application_id=_str(metadata.get("application_id")),
            error_code=_str(error.get("code")),
            decline_code=_str(error.get("decline_code")),
            method="oxxo" if "oxxo" in types else "card",
            voucher=voucher,
            next_action_type=_str(next_action.get("type")),
            next_action_redirect=_mapping(next_action.get("redirect_to_url")),
            next_action_sdk=_mapping(next_action.get("use_stripe_sdk")),
            client_secret=_str(data.get("client_secret")),
        )

    @property
    def application_uuid(self) -> uuid.UUID | None:
        if not self.application_id:
            return None
        try:
            return uuid.UUID(self.application_id)
        except ValueError:
            return None

    @property
    def local_status(self) -> str:
        """Stripe's status, except an OXXO voucher that ran out, which is `expired`."""
        if self.status == "requires_payment_method" and self.error_code == OXXO_EXPIRED:
            return "expired"
        return self.status

    def audit(self) -> dict[str, Any]:
        """The trimmed form payment_events keeps: never billing names, emails or card data."""
        return {
            "intent": self.id,
            "status": self.status,
            "amount": self.amount,
            "currency": self.currency,
            "metadata": {"application_id": self.application_id},
            "last_payment_error": (
                {"code": self.error_code, "decline_code": self.decline_code}
                if self.error_code or self.decline_code
                else None
            ),
        }


def _mapping(value: object) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) and value else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
