"""The API's configuration: environment variables prefixed `PERMISOS_API_` (see api/README.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Named so that nobody mistakes it for a real secret; production refuses to start with it.
DEV_SIGNING_SECRET = "dev-only-insecure-signing-secret"  # noqa: S105


class ApiSettings(BaseSettings):
    # A value refused is named, never shown: a Stripe secret key put in the publishable key's
    # variable would otherwise be printed in the crash log.
    model_config = SettingsConfigDict(
        env_prefix="PERMISOS_API_", extra="ignore", hide_input_in_errors=True
    )

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    # Addresses whose X-Forwarded-For uvicorn trusts (the ingress), comma-separated.
    forwarded_allow_ips: str = "127.0.0.1"
    log_level: str = "INFO"

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/permisos"
    database_pool_size: int = 10
    database_connect_timeout_seconds: int = 3

    public_base_url: str = "http://127.0.0.1:8000"
    signing_secret: SecretStr = SecretStr(DEV_SIGNING_SECRET)
    email_verification_ttl_seconds: int = 48 * 3600
    password_reset_ttl_seconds: int = 3600

    session_ttl_seconds: int = 12 * 3600
    cookie_secure: bool = True
    cookie_domain: str | None = None

    # Argon2id cost; changing these rehashes each password at its owner's next login.
    argon2_time_cost: int = 3
    argon2_memory_cost_kib: int = 64 * 1024
    argon2_parallelism: int = 4

    # Prices per service type, integer centavos (MXN).
    price_particular_centavos: int = Field(default=150_000, gt=0)
    price_publico_centavos: int = Field(default=220_000, gt=0)
    price_carga_centavos: int = Field(default=280_000, gt=0)

    mail_outbox_dir: Path = Path("var/mail")
    mail_from: str = "Permisos Digitales <no-reply@permisosdigitales.mx>"
    # An empty host writes each message to mail_outbox_dir instead of sending it.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = True

    # Fixed-window rate limits: at most N requests per window, per client address and per account.
    rate_limit_window_seconds: int = 900
    login_limit_per_address: int = 50
    login_limit_per_account: int = 20
    register_limit_per_address: int = 10
    password_reset_limit_per_address: int = 10
    password_reset_limit_per_account: int = 3

    # Lockout: this many consecutive wrong passwords lock the account for the given minutes.
    lockout_threshold: int = 5
    lockout_minutes: int = 15

    # The outbox dispatcher: turns paid applications into PermitRequests (+ applicant Secrets).
    dispatcher_enabled: bool = True
    dispatcher_interval_seconds: float = Field(default=2.0, gt=0)
    dispatcher_batch_size: int = Field(default=20, gt=0)
    # Failed deliveries wait base x 2^(attempts-1) seconds, at most the cap.
    dispatcher_backoff_seconds: float = Field(default=5.0, ge=0)
    dispatcher_max_backoff_seconds: float = Field(default=300.0, ge=0)
    # A claimed row is not picked by another replica for this long (a crash releases it then).
    dispatcher_lease_seconds: float = Field(default=60.0, gt=0)
    # The PermitRequest mirror: each phase into the application's row and permit_history.
    mirror_enabled: bool = True
    # Wait before a failed write (the database down) or finalizer patch is tried again; a deleted
    # PermitRequest keeps its finalizer meanwhile.
    mirror_retry_seconds: float = Field(default=5.0, gt=0)
    kubernetes_namespace: str = "default"
    kubernetes_timeout_seconds: float = Field(default=5.0, gt=0)

    # Stripe, through the official SDK. An empty API base is Stripe itself; the sandbox's payments
    # simulator is used by pointing it at the simulator's address.
    stripe_secret_key: SecretStr = SecretStr("")
    stripe_api_base: AnyHttpUrl | None = None
    stripe_webhook_secret: SecretStr = SecretStr("")
    # The browser side: card pages load Stripe.js from this address and confirm with this
    # publishable key (empty: the pages offer OXXO only). The sandbox points both at the
    # simulator's stand-in. The card page's Content-Security-Policy is derived from the URL.
    stripe_publishable_key: str = Field(default="", pattern=r"^(pk_(test|live)_\w+)?$")
    stripe_js_url: AnyHttpUrl = AnyHttpUrl("https://js.stripe.com/v3/")
    stripe_timeout_seconds: float = Field(default=20.0, gt=0)
    # Reads that confirm a webhook or reconcile a payment hold the application's row lock: short.
    stripe_read_timeout_seconds: float = Field(default=5.0, gt=0)
    # A webhook whose signature timestamp is older than this is refused (replay protection).
    stripe_webhook_tolerance_seconds: int = Field(default=300, gt=0)
    # OXXO: the voucher's validity; then the application waits for another payment this many
    # days before it becomes `expired`.
    oxxo_expires_after_days: int = Field(default=3, ge=1, le=7)
    oxxo_expired_application_grace_days: int = Field(default=7, ge=0)
    # Where the dispatcher creates PermitRequests (their spec.pool).
    permit_pool: str = "default"

    # Permit downloads: the bucket the runner uploads to; an empty endpoint is AWS S3 itself.
    s3_bucket: str = "permisos-permits"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    # Object storage in /readyz (reported, never fatal: only downloads need it).
    readyz_s3: bool = True
    # How long a presigned download URL stays valid.
    permit_url_ttl_seconds: int = Field(default=300, gt=0, le=3600)

    # Scheduled commands (CronJobs). `python -m permisos_api.cleanup`: applications that never
    # got a successful payment and were left idle this long lose their personal data.
    abandoned_retention_days: int = Field(default=30, ge=1)
    cleanup_batch_size: int = Field(default=100, gt=0)
    # `python -m permisos_api.reminders`: a permit is valid this many days from its issue (the
    # portal's rule; the permit document itself is not read), and its applicant is mailed once
    # when it expires within `expiry_reminder_days`.
    permit_validity_days: int = Field(default=30, ge=1)
    expiry_reminder_days: int = Field(default=5, ge=1)
    reminder_batch_size: int = Field(default=20, gt=0)

    @model_validator(mode="after")
    def _reminder_before_expiry(self) -> ApiSettings:
        # Otherwise every permit would be reminded the moment it is issued.
        if self.expiry_reminder_days >= self.permit_validity_days:
            raise ValueError(
                "PERMISOS_API_EXPIRY_REMINDER_DAYS must be less than "
                "PERMISOS_API_PERMIT_VALIDITY_DAYS"
            )
        return self

    @field_validator("stripe_api_base", "s3_endpoint_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _production_is_safe(self) -> ApiSettings:
        if self.environment == "production":
            if self.signing_secret.get_secret_value() in ("", DEV_SIGNING_SECRET):
                raise ValueError("PERMISOS_API_SIGNING_SECRET must be set in production")
            if not self.cookie_secure:
                raise ValueError("PERMISOS_API_COOKIE_SECURE cannot be false in production")
            if not self.stripe_webhook_secret.get_secret_value():
                raise ValueError("PERMISOS_API_STRIPE_WEBHOOK_SECRET must be set in production")
            # The card form runs in Stripe.js: loaded over http, anyone on the path could swap it.
            if self.stripe_js_url.scheme != "https":
                raise ValueError("PERMISOS_API_STRIPE_JS_URL must be an https URL in production")
        return self

    def price_centavos(self, service_type: str) -> int:
        prices = {
            "particular": self.price_particular_centavos,
            "publico": self.price_publico_centavos,
            "carga": self.price_carga_centavos,
        }
        return prices[service_type]
