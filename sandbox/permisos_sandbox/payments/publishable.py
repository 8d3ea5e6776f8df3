"""What a publishable key (`pk_test_…`, the one Stripe.js holds in the buyer's browser) may do,
as Stripe allows it: create a PaymentMethod, and read or confirm one PaymentIntent whose
`client_secret` it also presents. Everything else is refused with Stripe's 401, and a
PaymentIntent is answered in its client-side view (no metadata, no charge)."""

from __future__ import annotations

import hmac

from .errors import StripeError, invalid
from .forms import Params
from .store import Json

# (method, route template) a publishable key may call.
ALLOWED = frozenset(
    {
        ("POST", "/v1/payment_methods"),
        ("GET", "/v1/payment_intents/{id}"),
        ("POST", "/v1/payment_intents/{id}/confirm"),
    }
)
# The routes that also need the intent's client_secret.
NEEDS_SECRET = frozenset({"/v1/payment_intents/{id}", "/v1/payment_intents/{id}/confirm"})
REFUSED = (
    "This API call cannot be made with a publishable API key. Please use a secret API key. You "
    "can find a list of your API keys at https://dashboard.stripe.com/account/apikeys."
)
MISMATCH = (
    "The client_secret provided does not match the client_secret associated with the PaymentIntent."
)
# The fields of a PaymentIntent a publishable key sees (Stripe's client-side object).
CLIENT_FIELDS = (
    "id",
    "object",
    "amount",
    "canceled_at",
    "cancellation_reason",
    "capture_method",
    "client_secret",
    "confirmation_method",
    "created",
    "currency",
    "description",
    "last_payment_error",
    "livemode",
    "next_action",
    "payment_method",
    "payment_method_types",
    "processing",
    "receipt_email",
    "setup_future_usage",
    "shipping",
    "status",
)


def admit(method: str, template: str) -> None:
    if (method, template) not in ALLOWED:
        raise StripeError(401, REFUSED)


def check_secret(intent: Json | None, given: object) -> None:
    """The client_secret must be the intent's own (an unknown intent is the route's 404)."""
    if not isinstance(given, str) or not given:
        raise invalid(
            "Missing required param: client_secret.",
            code="parameter_missing",
            param="client_secret",
        )
    if intent is not None and not hmac.compare_digest(given, intent["client_secret"]):
        raise invalid(MISMATCH, code="payment_intent_invalid_parameter", param="client_secret")


def client_view(obj: Json) -> Json:
    if obj.get("object") != "payment_intent":
        return obj
    return {k: obj[k] for k in CLIENT_FIELDS if k in obj}


def pop_auth(params: Params) -> None:
    """Stripe.js sends its key and the client_secret as parameters; the operations never see
    them."""
    params.pop("key", None)
    params.pop("client_secret", None)
