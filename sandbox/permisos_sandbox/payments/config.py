"""Simulator settings: `PaymentsConfig` for code and tests, `PaymentsSettings` from env."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The API version the installed `stripe` SDK pins; events carry it like a Stripe account's version.
DEFAULT_API_VERSION = "2026-10-28.endive"


class PaymentsConfig(BaseModel):
    """What a test or the demo sets when it builds a `PaymentsSimulator`."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    api_key: str = "sk_test_sandbox"
    # What browsers present (Stripe.js): it may only create PaymentMethods and read or confirm a
    # PaymentIntent whose client_secret it also presents.
    publishable_key: str = "pk_test_sandbox"
    webhook_url: str | None = None
    webhook_secret: str = "whsec_sandbox"  # noqa: S105 (a sandbox test secret)
    # Stripe retries for up to three days; here the same exponential shape runs in seconds.
    retry_base_seconds: float = Field(default=0.5, gt=0)
    max_attempts: int = Field(default=5, ge=1, le=30)
    delivery_timeout_seconds: float = Field(default=5.0, gt=0)
    api_version: str = DEFAULT_API_VERSION
    oxxo_default_expires_days: int = Field(default=3, ge=1, le=7)
    # Delay before the magic OXXO test emails (succeed_immediately@, expire_immediately@) act.
    oxxo_test_delay_seconds: float = Field(default=3.0, ge=0)
    # How often vouchers past their expiry are expired on their own.
    expiry_check_seconds: float = Field(default=1.0, gt=0)
    # Base for hosted voucher and 3-D Secure URLs when clients reach us at another address.
    public_url: str | None = None


class DeliveryFaults(BaseModel):
    """How new events' webhooks misbehave, as Stripe's do at times (GET/PUT
    `/__control/webhooks/faults`): late, more than once, out of order, or never."""

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    # Each new event's first attempt waits this long (the order of events is kept).
    delay_seconds: float = Field(default=0.0, ge=0, le=3600)
    # Each new event is delivered this many times, the same event id each time.
    copies: int = Field(default=1, ge=1, le=10)
    # New events are held this long from the first one held, then delivered newest first.
    reorder_seconds: float = Field(default=0.0, ge=0, le=600)
    # The next this many new events (of `lose_types`; empty: of any type) are never delivered.
    lose_next: int = Field(default=0, ge=0, le=1000)
    lose_types: list[str] = Field(default_factory=list)
    # Only events of PaymentIntents for one of these payment method types (empty: any), say
    # `oxxo`, whose success nothing but the webhook (or asking Stripe) tells the receiver.
    lose_methods: list[str] = Field(default_factory=list)


class PaymentsSettings(BaseSettings):
    """Environment settings, prefix `PERMISOS_PAYMENTS_`."""

    model_config = SettingsConfigDict(env_prefix="PERMISOS_PAYMENTS_")

    host: str = "127.0.0.1"
    port: int = 12111
    api_key: str = "sk_test_sandbox"
    publishable_key: str = "pk_test_sandbox"
    webhook_url: str | None = None
    webhook_secret: str = "whsec_sandbox"  # noqa: S105 (a sandbox test secret)
    retry_base_seconds: float = 0.5
    max_attempts: int = 5
    oxxo_default_expires_days: int = 3
    oxxo_test_delay_seconds: float = 3.0
    public_url: str | None = None
    log_level: str = "INFO"

    def config(self) -> PaymentsConfig:
        return PaymentsConfig(
            api_key=self.api_key,
            publishable_key=self.publishable_key,
            webhook_url=self.webhook_url,
            webhook_secret=self.webhook_secret,
            retry_base_seconds=self.retry_base_seconds,
            max_attempts=self.max_attempts,
            oxxo_default_expires_days=self.oxxo_default_expires_days,
            oxxo_test_delay_seconds=self.oxxo_test_delay_seconds,
            public_url=self.public_url,
        )
