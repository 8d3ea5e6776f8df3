"""Card test payment methods and what happens when they are charged, as Stripe documents them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["succeed", "decline", "authenticate"]


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    outcome: Outcome
    decline_code: str | None = None
    # The error code a decline carries: card_declined, or expired_card / incorrect_cvc.
    code: str = "card_declined"
    message: str = "Your card was declined."
    funding: str = "credit"


VISA = TestCard("visa", "4242", "succeed")
DECLINED = TestCard("visa", "0002", "decline", "generic_decline")
INSUFFICIENT = TestCard(
    "visa", "9995", "decline", "insufficient_funds", message="Your card has insufficient funds."
)
EXPIRED = TestCard(
    "visa", "0069", "decline", "expired_card", code="expired_card", message="Your card has expired."
)
THREE_DS = TestCard("visa", "3184", "authenticate")

# Test PaymentMethod ids and tokens (Stripe's docs list both forms).
BY_ID: dict[str, TestCard] = {
    "pm_card_visa": VISA,
    "tok_visa": VISA,
    "pm_card_visa_debit": TestCard("visa", "5556", "succeed", funding="debit"),
    "tok_visa_debit": TestCard("visa", "5556", "succeed", funding="debit"),
    "pm_card_mastercard": TestCard("mastercard", "4444", "succeed"),
    "tok_mastercard": TestCard("mastercard", "4444", "succeed"),
    "pm_card_amex": TestCard("amex", "8431", "succeed"),
    "tok_amex": TestCard("amex", "8431", "succeed"),
    "pm_card_mx": TestCard("visa", "0000", "succeed"),
    "tok_mx": TestCard("visa", "0000", "succeed"),
    "pm_card_chargeDeclined": DECLINED,
    "tok_chargeDeclined": DECLINED,
    "pm_card_visa_chargeDeclined": DECLINED,
    "pm_card_chargeDeclinedInsufficientFunds": INSUFFICIENT,
    "tok_chargeDeclinedInsufficientFunds": INSUFFICIENT,
    "pm_card_chargeDeclinedExpiredCard": EXPIRED,
    "tok_chargeDeclinedExpiredCard": EXPIRED,
    "pm_card_threeDSecure2Required": THREE_DS,
    "tok_threeDSecure2Required": THREE_DS,
    "pm_card_authenticationRequired": TestCard("visa", "3155", "authenticate"),
    "tok_authenticationRequired": TestCard("visa", "3155", "authenticate"),
}

# Test card numbers, for `payment_method_data[card][number]` and POST /v1/payment_methods.
BY_NUMBER: dict[str, TestCard] = {
    "4242424242424242": VISA,
    "4000056655665556": TestCard("visa", "5556", "succeed", funding="debit"),
    "5555555555554444": TestCard("mastercard", "4444", "succeed"),
    "378282246310005": TestCard("amex", "0005", "succeed"),
    "4000004840008001": TestCard("visa", "8001", "succeed"),
    "4000000000000002": DECLINED,
    "4000000000009995": INSUFFICIENT,
    "4000000000000069": EXPIRED,
    "4000002760003184": THREE_DS,
    "4000000000003220": TestCard("visa", "3220", "authenticate"),
    "4000002500003155": TestCard("visa", "3155", "authenticate"),
}


def card_details(card: TestCard) -> dict[str, object]:
    """The `card` hash of a PaymentMethod (never the full number)."""
    return {
        "brand": card.brand,
        "checks": {
            "address_line1_check": None,
            "address_postal_code_check": None,
            "cvc_check": "pass",
        },
        "country": "US",
        "exp_month": 12,
        "exp_year": 2034,
        "fingerprint": f"fp{card.brand}{card.last4}",
        "funding": card.funding,
        "last4": card.last4,
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }
