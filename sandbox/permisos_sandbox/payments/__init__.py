"""A Stripe-compatible payments simulator: PaymentIntents for card and OXXO, signed webhooks."""

from .config import PaymentsConfig, PaymentsSettings
from .server import PaymentsSimulator
from .webhooks import sign

__all__ = ["PaymentsConfig", "PaymentsSettings", "PaymentsSimulator", "sign"]
