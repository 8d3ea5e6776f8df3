"""The `stripe` SDK client as configured, and the idempotency keys of every call that creates."""

from __future__ import annotations

import uuid

import stripe

from ..settings import ApiSettings

MAX_NETWORK_RETRIES = 2


def make_stripe_client(settings: ApiSettings) -> stripe.StripeClient:
    """Stripe itself, or whatever `stripe_api_base` names (the sandbox's payments simulator)."""
    base = str(settings.stripe_api_base).rstrip("/") if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value() or "sk_unset",
        base_addresses={"api": base} if base else None,
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=stripe.new_default_http_client(timeout=settings.stripe_timeout_seconds),
    )


def intent_key(application_id: uuid.UUID, method: str, attempt: int) -> str:
    """The same attempt always sends the same key, so a retried request creates nothing twice."""
    return f"{application_id}:pi:{method}:{attempt}"


def cancel_key(application_id: uuid.UUID, intent_id: str) -> str:
    return f"{application_id}:cancel:{intent_id}"
