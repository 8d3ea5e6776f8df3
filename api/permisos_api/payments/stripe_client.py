"""The `stripe` SDK client as configured, the idempotency keys of every call that creates, and
the one way the API reads an intent's current state back from Stripe."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import stripe

from ..settings import ApiSettings
from .intents import IntentSnapshot

MAX_NETWORK_RETRIES = 2


def make_stripe_client(
    settings: ApiSettings, *, timeout: float | None = None
) -> stripe.StripeClient:
    """Stripe itself, or whatever `stripe_api_base` names (the sandbox's payments simulator);
    `timeout` replaces `stripe_timeout_seconds` (the reads under a row lock use a short one)."""
    base = str(settings.stripe_api_base).rstrip("/") if settings.stripe_api_base else None
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value() or "sk_unset",
        base_addresses={"api": base} if base else None,
        max_network_retries=MAX_NETWORK_RETRIES,
        http_client=stripe.new_default_http_client(
            timeout=timeout or settings.stripe_timeout_seconds
        ),
    )


def intent_key(application_id: uuid.UUID, method: str, attempt: int) -> str:
    """The same attempt always sends the same key, so a retried request creates nothing twice."""
    return f"{application_id}:pi:{method}:{attempt}"


def cancel_key(application_id: uuid.UUID, intent_id: str) -> str:
    return f"{application_id}:cancel:{intent_id}"


class StripeUnavailable(Exception):
    """Stripe's API could not say what an intent's state is now; ask again later."""


# Stripe's current view of an intent by id; None when Stripe has no such intent.
Retrieve = Callable[[str], IntentSnapshot | None]


def stripe_retriever(client: stripe.StripeClient) -> Retrieve:
    """Reads an intent as Stripe reports it now. Callers hold a row lock meanwhile, so the SDK's
    own retries are off: a failure answers at once and the caller's caller retries."""

    def retrieve(intent_id: str) -> IntentSnapshot | None:
        if not intent_id.startswith("pi_"):
            return None  # not a PaymentIntent id (an empty one would list intents)
        try:
            intent = client.v1.payment_intents.retrieve(
                intent_id, options={"max_network_retries": 0}
            )
        except stripe.InvalidRequestError as exc:
            # Only Stripe's own "no such object" means it has none; a 404 from a wrong base URL
            # or a proxy carries no such code and must not look like a forgery.
            if exc.http_status == 404 and exc.code == "resource_missing":
                return None
            raise StripeUnavailable(f"{type(exc).__name__} {exc.http_status}") from exc
        except stripe.StripeError as exc:
            raise StripeUnavailable(f"{type(exc).__name__} {exc.http_status}") from exc
        return IntentSnapshot.from_object(intent)

    return retrieve
