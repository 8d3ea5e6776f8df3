"""The simulator's settings (environment) and its run-time fault and timing configuration."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from permisos.maintenance import Schedule

from .changes import Change

DEFAULT_ACTIVE_PLATES = ("AAA0001",)


class PortalConfig(BaseModel):
    """What tests and benchmarks turn at run time (GET/PUT `/__control/config`).

    Assignments are validated, so `sim.config.error_rate = 2` fails loudly instead of misbehaving.
    """

    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    latency_ms: int = Field(default=0, ge=0, le=120_000)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    error_status: Literal[500, 503] = 503
    maintenance: bool = False
    # Scheduled maintenance: weekly windows and closed dates in a time zone.
    maintenance_hours: Schedule = Field(default_factory=Schedule)
    # Requests answered per sliding minute; the rest get 429 with Retry-After.
    rate_limit_per_minute: int | None = Field(default=None, ge=1, le=100_000)
    # Pages redesigned without notice: which elements the runner looks for are gone.
    changed: list[Change] = Field(default_factory=list)
    session_ttl_seconds: float = Field(default=900.0, gt=0)
    expire_sessions_now: bool = False
    download: Literal["normal", "slow", "abort"] = "normal"
    download_delay_seconds: float = Field(default=5.0, ge=0)
    modal_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    processing_seconds: float = Field(default=2.0, ge=0)
    reject_next: str | None = None
    seed: int | None = None
    # Addition to PAGES.md: plates that already hold a permit issued elsewhere.
    active_plates: list[str] = Field(default_factory=lambda: list(DEFAULT_ACTIVE_PLATES))
    # Addition to PAGES.md: plates -> how many more confirmations of a submission for them answer
    # `error_status`, so a test can make one applicant's attempts fail among many.
    fail_plates: dict[str, int] = Field(default_factory=dict)


class PortalSettings(BaseSettings):
    """Environment settings, prefix `PERMISOS_PORTAL_`."""

    model_config = SettingsConfigDict(env_prefix="PERMISOS_PORTAL_")

    host: str = "127.0.0.1"
    port: int = 8090
    # "user:password" pairs separated by commas.
    users: str = "operador:secreto"
    processing_seconds: float = 2.0
    latency_ms: int = 0
    session_ttl_seconds: float = 900.0
    # Comma-separated plates that already hold an active permit.
    active_plates: str = ",".join(DEFAULT_ACTIVE_PLATES)
    log_level: str = "INFO"

    def accounts(self) -> dict[str, str]:
        accounts: dict[str, str] = {}
        for pair in self.users.split(","):
            user, sep, password = pair.strip().partition(":")
            if user and sep:
                accounts[user] = password
        return accounts

    def config(self) -> PortalConfig:
        return PortalConfig(
            processing_seconds=self.processing_seconds,
            latency_ms=self.latency_ms,
            session_ttl_seconds=self.session_ttl_seconds,
            active_plates=[p.strip() for p in self.active_plates.split(",") if p.strip()],
        )
