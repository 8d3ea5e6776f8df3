"""Request and response bodies, with the examples the OpenAPI document shows."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from . import fields
from .waiting import phase_message, wait_message

ServiceType = Literal["particular", "publico", "carga"]

_EMAIL = "juana.gomez@example.com"
_PASSWORD = "Correcto-caballo-42"  # noqa: S105 (an example, not a credential)


def _examples(*examples: dict[str, Any]) -> ConfigDict:
    return ConfigDict(json_schema_extra={"examples": list(examples)})


# --- accounts -------------------------------------------------------------------------------


class RegisterIn(BaseModel):
    model_config = _examples({"email": _EMAIL, "password": _PASSWORD})

    email: fields.Email = Field(max_length=254)
    password: str = Field(
        max_length=1024,
        description="At least 12 characters mixing two classes; not the email; not common.",
    )


class Accepted(BaseModel):
    model_config = _examples(
        {"status": "accepted", "detail": "If the address can be used, a message is on its way."}
    )

    status: Literal["accepted"] = "accepted"
    detail: str


class VerifyIn(BaseModel):
    model_config = _examples({"token": "eyJzIjoi...Q.3q2-7wE..."})

    token: str = Field(min_length=1, max_length=1024)


class Verified(BaseModel):
    model_config = _examples({"status": "verified"})

    status: Literal["verified"] = "verified"


class LoginIn(BaseModel):
    model_config = _examples(
        {"email": _EMAIL, "password": _PASSWORD},
        {"email": _EMAIL, "password": _PASSWORD, "issue_bearer": True},
    )

    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    issue_bearer: bool = Field(
        default=False,
        description="For API clients: return the session token in the body (use it as "
        "`Authorization: Bearer`) instead of setting cookies.",
    )


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Literal["client", "admin", "superadmin"]
    email_verified_at: datetime | None


class SessionOut(BaseModel):
    id: uuid.UUID
    created_at: datetime
    expires_at: datetime
    client_address: str | None = None
    user_agent: str | None = None
    current: bool = False


_USER: dict[str, Any] = {
    "id": "0b8a3c1e-6f0e-4b8f-9b7d-2f1d7f1c9a11",
    "email": _EMAIL,
    "role": "client",
    "email_verified_at": "2026-01-15T17:02:11Z",
}
_SESSION: dict[str, Any] = {
    "id": "5d2c7a54-3c1f-4e7a-8a52-0e9b0f6d7c21",
    "created_at": "2026-01-15T17:05:00Z",
    "expires_at": "2026-01-16T05:05:00Z",
    "client_address": "203.0.113.7",
    "user_agent": "Mozilla/5.0",
    "current": True,
}


class LoginOut(BaseModel):
    model_config = _examples(
        {"user": _USER, "session": _SESSION, "csrf_token": "kq3x...", "token": None}
    )

    user: UserOut
    session: SessionOut
    csrf_token: str = Field(description="Send as `X-CSRF-Token` on unsafe cookie requests.")
    token: str | None = Field(default=None, description="Only when `issue_bearer` was true.")


class WhoAmI(BaseModel):
    model_config = _examples(
        {"user": _USER, "session": _SESSION, "authenticated_by": "cookie", "csrf_token": "kq3x..."}
    )

    user: UserOut
    session: SessionOut
    authenticated_by: Literal["cookie", "bearer"]
    csrf_token: str | None = Field(default=None, description="Only for cookie sessions.")


class SessionList(BaseModel):
    model_config = _examples({"items": [_SESSION]})

    items: list[SessionOut]


class ResetRequestIn(BaseModel):
    model_config = _examples({"email": _EMAIL})

    email: str = Field(min_length=3, max_length=254)


class ResetConfirmIn(BaseModel):
    model_config = _examples({"token": "eyJzIjoi...Q.3q2-7wE...", "password": _PASSWORD})

    token: str = Field(min_length=1, max_length=1024)
    password: str = Field(max_length=1024)


# --- applications ---------------------------------------------------------------------------

_APPLICATION_IN: dict[str, Any] = {
    "first_name": "Juana",
    "last_name": "Gómez",
    "maternal_surname": "Díaz",
    "curp": "GODE561231HDFRRN00",
    "email": _EMAIL,
    "phone": "55 1234 5678",
    "plates": "jkl-4821",
    "make": "Nissan",
    "line": "Versa",
    "service_type": "particular",
    "model_year": 2022,
    "vin": "1HGCM82633A004352",
}


class ApplicationIn(BaseModel):
    model_config = _examples(_APPLICATION_IN)

    first_name: fields.Name
    last_name: fields.Name = Field(description="Paternal surname (primer apellido).")
    maternal_surname: fields.OptionalName = ""
    curp: fields.Curp = Field(description="18 characters; the check digit is verified.")
    email: fields.Email
    phone: fields.Phone = Field(description="10 digits; spaces, dashes and +52 are dropped.")
    plates: fields.Plates = Field(description="Upper-cased; spaces and dashes are dropped.")
    make: fields.Make = Field(description="A make of the catalog (name or clave).")
    line: fields.Line = Field(description="A line of that make (name or clave).")
    service_type: ServiceType
    model_year: fields.ModelYear = Field(description="From 30 years ago to next year.")
    vin: fields.Vin = Field(
        default=None, description="Optional; check digit verified for North-American VINs."
    )


class ApplicationPatch(BaseModel):
    model_config = _examples({"phone": "5587654321", "plates": "ABC1234"})

    first_name: fields.Name | None = None
    last_name: fields.Name | None = None
    maternal_surname: fields.OptionalName | None = None
    curp: fields.Curp | None = None
    email: fields.Email | None = None
    phone: fields.Phone | None = None
    plates: fields.Plates | None = None
    make: fields.Make | None = None
    line: fields.Line | None = None
    service_type: ServiceType | None = None
    model_year: fields.ModelYear | None = None
    vin: fields.Vin = None


_APPLICATION_OUT: dict[str, Any] = {
    "id": "9f1c2b7e-2d4a-4c55-9a0e-6b0f3f1a2c77",
    "status": "draft",
    **_APPLICATION_IN,
    "phone": "5512345678",
    "plates": "JKL4821",
    "amount_centavos": 150000,
    "currency": "MXN",
    "created_at": "2026-01-15T17:10:00Z",
    "updated_at": "2026-01-15T17:10:00Z",
}


class ApplicationOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True, json_schema_extra={"examples": [_APPLICATION_OUT]}
    )

    id: uuid.UUID
    status: str = Field(
        description="draft, awaiting_payment, payment_pending (OXXO voucher issued or card "
        "awaiting 3-D Secure), paid (permit in progress), permit_ready, permit_failed, "
        "cancelled, expired, refunded."
    )
    first_name: str
    last_name: str
    maternal_surname: str
    curp: str
    email: str
    phone: str
    plates: str
    make: str
    line: str
    service_type: ServiceType
    model_year: int
    vin: str | None
    amount_centavos: int = Field(description="Price in centavos (1/100 MXN).")
    currency: Literal["MXN"]
    created_at: datetime
    updated_at: datetime
    paid_at: datetime | None = None
    payment_method: Literal["card", "oxxo"] | None = None
    # The permit's progress as the operator reports it (mirrored from the PermitRequest).
    permit_phase: str | None = Field(
        default=None, description="Pending, Queued, Running, Retrying, Succeeded or Failed."
    )
    permit_reason: str | None = Field(
        default=None, description="Why it is in that phase, e.g. PortalRejected."
    )
    permit_message: str | None = Field(
        default=None, description="The portal's own words, when it rejected the request."
    )
    permit_attempts: int = 0
    permit_updated_at: datetime | None = None
    permit_waiting_reason: str | None = Field(
        default=None,
        description="While the permit waits: why (PoolFull, BackingOff, MaintenanceWindow, "
        "RateLimited, PortalUnavailable, PortalChanged, Probing, PoolNotFound).",
    )
    permit_queue_position: int | None = Field(
        default=None, description="While it waits in line: its place (1 is next)."
    )
    permit_estimated_start_at: datetime | None = Field(
        default=None, description="While it waits in line: when it should start."
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="The permit's phase in the applicant's words (Spanish), once it has one."
    )
    @property
    def permit_progress(self) -> str | None:
        return phase_message(self.permit_phase)

    @computed_field(  # type: ignore[prop-decorator]
        description="While the permit waits: why, in the applicant's words (Spanish)."
    )
    @property
    def permit_wait(self) -> str | None:
        return wait_message(
            self.permit_waiting_reason, self.permit_queue_position, self.permit_estimated_start_at
        )


class PermitHistoryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    phase: str
    reason: str | None
    message: str | None
    attempt: int
    permit_request: str | None = Field(
        default=None, description="The PermitRequest (a retry's is `<application-id>-r<N>`)."
    )
    transitioned_at: datetime


class PermitHistoryList(BaseModel):
    items: list[PermitHistoryOut] = Field(description="Oldest first.")


class ApplicationPage(BaseModel):
    model_config = _examples({"items": [_APPLICATION_OUT], "total": 1, "limit": 20, "offset": 0})

    items: list[ApplicationOut]
    total: int
    limit: int
    offset: int


# --- catalog --------------------------------------------------------------------------------


class CatalogLine(BaseModel):
    clave: str = Field(examples=["NIS-01"])
    name: str = Field(examples=["Versa"])


class CatalogMake(BaseModel):
    clave: str = Field(examples=["NIS"])
    name: str = Field(examples=["Nissan"])
    lines: list[CatalogLine]


class ServiceTypeOut(BaseModel):
    code: ServiceType
    price_centavos: int = Field(description="The permit's price, in centavos.")
    currency: Literal["MXN"]


class ModelYears(BaseModel):
    min: int = Field(description="Oldest accepted model year (inclusive).")
    max: int = Field(description="Newest accepted model year (inclusive): next year.")


class CatalogOut(BaseModel):
    makes: list[CatalogMake]
    service_types: list[ServiceTypeOut]
    model_years: ModelYears


# --- payments -------------------------------------------------------------------------------


class PaymentIn(BaseModel):
    model_config = _examples(
        {"method": "oxxo"},
        {"method": "card"},
        {"method": "card", "payment_method": "pm_card_visa"},
        {
            "method": "card",
            "payment_method": "pm_card_threeDSecure2Required",
            "return_url": "https://example.com/pago-terminado",
        },
    )

    method: Literal["card", "oxxo"]
    payment_method: str | None = Field(
        default=None,
        max_length=255,
        pattern=r"^pm_[A-Za-z0-9_]+$",
        description="Card only, for tests and demos: a (test) PaymentMethod id the API confirms "
        "server-side. Browsers leave it out and confirm with Stripe.js and `client_secret`.",
    )
    return_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
        description="Card with `payment_method` only: where the card's 3-D Secure page sends the "
        "payer afterwards. With it, a challenge comes back as `next_action.redirect_to_url`; "
        "without it, as `use_stripe_sdk` (for Stripe.js).",
    )


class RedirectToUrl(BaseModel):
    url: str = Field(description="The 3-D Secure page to open in a browser.")
    return_url: str | None = Field(description="Where that page sends the payer when done.")


class NextAction(BaseModel):
    """What the payer must do next, as Stripe returns it on the PaymentIntent."""

    type: str = Field(
        description="`redirect_to_url` or `use_stripe_sdk` (3-D Secure), `oxxo_display_details`."
    )
    redirect_to_url: RedirectToUrl | None = None
    use_stripe_sdk: dict[str, Any] | None = Field(
        default=None,
        description="Stripe's data for the challenge; Stripe.js reads it itself when given the "
        "`client_secret` (`handleNextAction`).",
    )


class VoucherOut(BaseModel):
    number: str | None
    hosted_voucher_url: str | None
    expires_at: datetime | None


_PAYMENT_CREATED = {
    "payment_id": "6f0b6a3e-4c1b-4f53-9c55-2d8e0f6b1a77",
    "intent_id": "pi_3Q0a1b2c3d4e5f6g7h8i9j0k",
    "method": "oxxo",
    "status": "requires_action",
    "amount_centavos": 150000,
    "currency": "MXN",
    "application_status": "payment_pending",
    "client_secret": "pi_3Q..._secret_...",
    "next_action": {"type": "oxxo_display_details"},
    "voucher": {
        "number": "12345678901234",
        "hosted_voucher_url": "https://payments.stripe.com/oxxo/voucher/...",
        "expires_at": "2026-11-29T23:59:59Z",
    },
}


class PaymentCreated(BaseModel):
    model_config = _examples(_PAYMENT_CREATED)

    payment_id: uuid.UUID
    intent_id: str = Field(description="The Stripe PaymentIntent.")
    method: Literal["card", "oxxo"]
    status: str = Field(description="Stripe's PaymentIntent status, e.g. requires_action.")
    amount_centavos: int
    currency: Literal["MXN"]
    application_status: str
    client_secret: str | None = Field(description="For Stripe.js (card confirmation, 3-D Secure).")
    next_action: NextAction | None = None
    voucher: VoucherOut | None = Field(default=None, description="OXXO only.")


class PaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    intent_id: str = Field(
        validation_alias="stripe_payment_intent_id", description="The Stripe PaymentIntent."
    )
    method: Literal["card", "oxxo"]
    status: str = Field(description="Stripe's PaymentIntent status, or `expired` (OXXO).")
    amount_centavos: int
    currency: Literal["MXN"]
    voucher_number: str | None
    voucher_url: str | None
    voucher_expires_at: datetime | None
    last_error_code: str | None = Field(description="e.g. card_declined; no card data.")
    decline_code: str | None
    succeeded_at: datetime | None
    created_at: datetime
    updated_at: datetime
    next_action: NextAction | None = Field(
        default=None,
        description="Owner only, for a card awaiting 3-D Secure: the open challenge, read from "
        "Stripe now (so a client that lost the payment's answer can still finish it).",
    )
    client_secret: str | None = Field(
        default=None, description="With `next_action`: for Stripe.js."
    )


class PaymentList(BaseModel):
    items: list[PaymentOut]


class WebhookAck(BaseModel):
    model_config = _examples({"received": True, "outcome": "applied"})

    received: Literal[True] = True
    outcome: str = Field(
        description="applied, ignored_stale, ignored_unknown, rejected_mismatch or duplicate."
    )


# --- permits and the account (ARCO) ------------------------------------------------------


ArtifactKind = Literal["permit", "certificate", "placard"]


class PermitArtifactOut(BaseModel):
    kind: ArtifactKind
    bytes: int = Field(description="Size of the PDF in bytes.")
    sha256: str = Field(description="SHA-256 of the PDF, hex.")
    url: str = Field(description="This API's download endpoint (redirects to the PDF).")


class PermitsOut(BaseModel):
    application_id: uuid.UUID
    folio: str | None
    items: list[PermitArtifactOut]


class DeleteAccountIn(BaseModel):
    password: str = Field(min_length=1, max_length=1024, description="The current password.")


class AccountExport(BaseModel):
    exported_at: datetime
    account: dict[str, Any]
    sessions: list[dict[str, Any]]
    applications: list[dict[str, Any]]
    payments: list[dict[str, Any]] = Field(description="No card data is ever stored.")
    payment_events: list[dict[str, Any]] = Field(description="Summaries of Stripe's events.")
    permits: list[dict[str, Any]] = Field(description="The first, then one per retry.")
    permit_history: list[dict[str, Any]]
    permit_downloads: list[dict[str, Any]]


# --- admin -----------------------------------------------------------------------------------


class AdminPaymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    application_id: uuid.UUID
    intent_id: str = Field(validation_alias="stripe_payment_intent_id")
    method: Literal["card", "oxxo"]
    status: str
    amount_centavos: int
    currency: str
    voucher_number: str | None
    last_error_code: str | None
    decline_code: str | None
    succeeded_at: datetime | None
    refund_id: str | None
    refunded_at: datetime | None
    manual_refund_required: bool
    created_at: datetime
    updated_at: datetime


class PaymentEventSummary(BaseModel):
    """A Stripe event as received; the raw `detail` is left out."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    payment_intent_id: str | None
    type: str
    status: str | None
    amount_centavos: int | None
    currency: str | None
    stripe_created_at: datetime
    received_at: datetime
    outcome: str


class AdminApplicationOut(ApplicationOut):
    owner_id: uuid.UUID
    permit_request: str | None = None
    permit_retries: int = 0
    folio: str | None = None
    anonymized_at: datetime | None = None


class AdminPermitOut(BaseModel):
    """One PermitRequest of the application and what it came to."""

    model_config = ConfigDict(from_attributes=True)

    retry: int = Field(description="0 the first, N an admin's N-th retry.")
    request_name: str
    phase: str | None
    reason: str | None
    message: str | None
    attempts: int
    folio: str | None
    updated_at: datetime | None
    created_at: datetime


class AdminApplicationDetail(BaseModel):
    application: AdminApplicationOut
    payments: list[AdminPaymentOut] = Field(description="Newest first.")
    payment_events: list[PaymentEventSummary] = Field(description="Oldest first.")
    permits: list[AdminPermitOut] = Field(description="The first, then one per retry.")
    permit_history: list[PermitHistoryOut] = Field(description="Oldest first.")


class RefundOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": "0b7f3c1e-2a4d-4e8f-9c61-5d2a7b3e9f10",
                    "payment_id": "6f0b6a3e-4c1b-4f53-9c55-2d8e0f6b1a77",
                    "outcome": "refunded",
                    "refund_id": "re_3Q0a1b2c3d4e5f6g",
                    "detail": "Refunded through Stripe.",
                },
                {
                    "application_id": "0b7f3c1e-2a4d-4e8f-9c61-5d2a7b3e9f10",
                    "payment_id": "6f0b6a3e-4c1b-4f53-9c55-2d8e0f6b1a77",
                    "outcome": "manual_refund_required",
                    "refund_id": None,
                    "detail": "OXXO payments cannot be refunded through Stripe; refund by hand.",
                },
            ]
        }
    )

    application_id: uuid.UUID
    payment_id: uuid.UUID
    outcome: Literal["refunded", "manual_refund_required"]
    refund_id: str | None
    detail: str


class ManualRefundList(BaseModel):
    items: list[AdminPaymentOut]


class AdminUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    role: str
    disabled_at: datetime | None
    deleted_at: datetime | None


class RetryOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": "0b7f3c1e-2a4d-4e8f-9c61-5d2a7b3e9f10",
                    "retry": 1,
                    "permit_request": "0b7f3c1e-2a4d-4e8f-9c61-5d2a7b3e9f10-r1",
                    "status": "paid",
                }
            ]
        }
    )

    application_id: uuid.UUID
    retry: int = Field(description="How many times this application's permit was retried.")
    permit_request: str = Field(description="The name of the new PermitRequest.")
    status: str


# --- operations -----------------------------------------------------------------------------


class Check(BaseModel):
    status: Literal["ok", "failed"]
    latency_ms: float
    detail: str | None = None


class Readiness(BaseModel):
    model_config = _examples(
        {"status": "ok", "checks": {"database": {"status": "ok", "latency_ms": 1.4}}}
    )

    # degraded: ready, but a dependency failed (see /readyz's description)
    status: Literal["ok", "degraded", "failed"]
    checks: dict[str, Check]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"
