"""Stripe's error object, `{"error": {type, code, message, param, decline_code, doc_url}}`.

The status code decides which exception the SDK raises (400/404 InvalidRequestError or, with type
idempotency_error, IdempotencyError; 401 AuthenticationError; 402 CardError).
"""

from __future__ import annotations

from typing import Any

DOC_BASE = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An API error. `saved` says whether an idempotency key remembers it.

    Stripe saves a key's result only once the endpoint starts executing: parameter validation
    failures are not saved (a corrected retry with the same key may run), a card decline is.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        saved: bool = False,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.saved = saved
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOC_BASE + self.code.replace("_", "-")
        if self.param:
            error["param"] = self.param
        if self.decline_code:
            error["decline_code"] = self.decline_code
        error.update(self.extra)
        return {"error": error}


def invalid(message: str, *, code: str | None = None, param: str | None = None) -> StripeError:
    """A 400 invalid_request_error raised while validating parameters (not saved)."""
    return StripeError(400, message, code=code, param=param)


def state_error(message: str, *, param: str | None = None) -> StripeError:
    """A 400 for an object in the wrong state; the endpoint ran, so the key remembers it."""
    return StripeError(
        400, message, code="payment_intent_unexpected_state", param=param, saved=True
    )


def missing(kind: str, object_id: str, param: str) -> StripeError:
    return StripeError(404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


class ControlError(Exception):
    """A control-API request that does not fit the object's state (answered with 409)."""
