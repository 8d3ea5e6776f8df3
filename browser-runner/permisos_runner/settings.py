"""The runner's settings: environment variables with the prefix `PERMISOS_RUNNER_`.

The operator's Job manifest (`permisos_operator.jobs`) sets most of them; the names here must
match it exactly. The applicant's personal data is not a setting: it comes from the mounted
Secret's files (`SECRET_DIR`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from permisos.resources import Vehicle
from permisos_runner.driver import DEFAULT_CHROMIUM


class RunnerSettings(BaseSettings):
    # A value refused is named, never shown: it may be the portal's password or a CURP.
    model_config = SettingsConfigDict(
        env_prefix="PERMISOS_RUNNER_", extra="ignore", hide_input_in_errors=True
    )

    # An attempt at a permit, or a probe of the portal's health (the pool's circuit breaker:
    # it signs in and searches the consulta page, with no applicant and no submission).
    mode: Literal["attempt", "probe"] = "attempt"
    # Which attempt of which request this process is (an attempt's; a probe has none).
    permit_request: str | None = Field(None, min_length=1)
    application_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
    attempt: int = Field(1, ge=1)
    # A probe's own name (its Job's), for its evidence and logs.
    probe_name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")

    secret_dir: Path = Path("/var/run/secrets/permisos/applicant")
    termination_log: Path = Path("/dev/termination-log")

    # The portal and its operator account (from the pool's credentials Secret).
    portal_url: str = Field(min_length=1)
    portal_username: SecretStr
    portal_password: SecretStr
    portal_timeout_seconds: float = Field(30.0, gt=0, description="Each navigation or action.")
    processing_timeout_seconds: float = Field(
        300.0, gt=0, description="How long the status page may stay `procesando`."
    )
    status_reload_seconds: float = Field(
        15.0, gt=0, description="Reload the status page if its own polling has not moved on."
    )
    download_timeout_seconds: float = Field(60.0, gt=0, description="Each PDF download.")
    max_pdf_bytes: int = Field(10 * 1024 * 1024, ge=1024)

    # The vehicle, from the PermitRequest spec; only needed when the runner has to fill the form.
    vehicle_plates: str | None = None
    vehicle_make: str | None = None
    vehicle_line: str | None = None
    vehicle_model_year: int | None = None
    vehicle_service_type: Literal["particular", "publico", "carga"] | None = None

    # Object storage; credentials come from boto3's own chain (AWS_* variables).
    s3_bucket: str = Field(min_length=1)
    s3_region: str = "us-east-1"
    s3_endpoint_url: str | None = None
    evidence_timeout_seconds: float = Field(10.0, gt=0, description="Screenshot and HTML capture.")

    chromium_path: str = DEFAULT_CHROMIUM
    # Playwright's own trace policies (as in its test runner's `trace` option). A trace costs
    # about a tenth of an attempt's time, so by default the first attempt goes without (its
    # failure still leaves a screenshot and the page's HTML) and every retry records one.
    trace: Literal["on-all-retries", "retain-on-failure", "off"] = Field(
        "on-all-retries", description="Which attempts record a trace; uploaded on failure only."
    )
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("trace", mode="before")
    @classmethod
    def _trace_as_a_switch(cls, value: Any) -> Any:
        """Earlier releases took a boolean (every attempt, or none), in any of pydantic's
        spellings."""
        text = str(value).strip().lower()
        if value is True or text in ("true", "1", "on", "yes", "y", "t"):
            return "retain-on-failure"
        if value is False or text in ("false", "0", "no", "n", "f"):
            return "off"
        return value

    @property
    def records_trace(self) -> bool:
        """A probe's failure is when the portal changed or went down: it is traced unless
        tracing is off."""
        if self.trace == "on-all-retries":
            return self.attempt > 1 or self.mode == "probe"
        return self.trace == "retain-on-failure"

    @model_validator(mode="after")
    def _names_what_it_works_on(self) -> RunnerSettings:
        if self.mode == "attempt" and not (self.permit_request and self.application_id):
            raise ValueError("an attempt needs PERMIT_REQUEST and APPLICATION_ID")
        if self.mode == "probe" and not self.probe_name:
            raise ValueError("a probe needs PROBE_NAME")
        return self

    def vehicle(self) -> Vehicle | None:
        """The vehicle, or None when the spec did not carry one."""
        values = (
            self.vehicle_plates,
            self.vehicle_make,
            self.vehicle_line,
            self.vehicle_model_year,
            self.vehicle_service_type,
        )
        if any(v is None for v in values):
            return None
        return Vehicle(
            plates=self.vehicle_plates,
            make=self.vehicle_make,
            line=self.vehicle_line,
            model_year=self.vehicle_model_year,
            service_type=self.vehicle_service_type,
        )

    @property
    def portal_base(self) -> str:
        return self.portal_url.rstrip("/")
