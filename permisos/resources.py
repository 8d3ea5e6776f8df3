"""The custom resources' shapes: one source for the operator, the API and the CRD schemas.

`crds/*.yaml` is generated from these models by `permisos.crdgen`; a test proves the committed
files still equal what the models produce, so the schema and the code cannot drift apart.
Field descriptions become `kubectl explain` text, so they are written for an operator at a shell.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict

from permisos.maintenance import DEFAULT_TIME_ZONE, Schedule, WeeklyWindow

GROUP = "permisosdigitales.mx"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "permisos"

# Job names are `<permitrequest>-a<N>` and must stay within the 63 characters of a label value.
MAX_NAME_LENGTH = 56

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Phase = Literal["Pending", "Queued", "Running", "Retrying", "Succeeded", "Failed", "Cancelled"]
PHASES: tuple[Phase, ...] = (
    "Pending",
    "Queued",
    "Running",
    "Retrying",
    "Succeeded",
    "Failed",
    "Cancelled",
)
TERMINAL_PHASES: frozenset[Phase] = frozenset({"Succeeded", "Failed", "Cancelled"})

ArtifactKind = Literal["permit", "certificate", "placard"]
AttemptOutcome = Literal["succeeded", "retryable", "permanent"]


def cel(rule: str, message: str, *, reason: str | None = None) -> JsonDict:
    """One `x-kubernetes-validations` entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if reason:
        entry["reason"] = reason
    return entry


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown fields are kept, not lost."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def wire(self) -> dict[str, Any]:
        """The JSON a Kubernetes client sends: camelCase, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- PermitRequest -------------------------------------------------------------------------------


class RetryPolicy(Model):
    """Overrides of the pool's retry policy; a field left out takes the pool's value."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.backoffSeconds) || !has(self.maxBackoffSeconds)"
                    " || self.maxBackoffSeconds >= self.backoffSeconds",
                    "maxBackoffSeconds must not be less than backoffSeconds",
                )
            ]
        }
    )

    max_attempts: int | None = Field(
        None, ge=1, le=20, description="Attempts before a retryable failure becomes final."
    )
    backoff_seconds: int | None = Field(
        None, ge=1, le=3600, description="Wait before the second attempt; doubles every retry."
    )
    max_backoff_seconds: int | None = Field(
        None, ge=1, le=86400, description="Upper bound of the wait between two attempts."
    )


class Vehicle(Model):
    """The vehicle the permit is for. Not personal data: it identifies a car, not a person."""

    plates: str = Field(
        pattern=r"^[A-Z0-9]{5,8}$",
        description="Licence plates, upper case, letters and digits only (e.g. ABC1234).",
    )
    make: str = Field(min_length=1, max_length=50, description="Make (marca) from the catalog.")
    line: str = Field(min_length=1, max_length=50, description="Line (línea) from the catalog.")
    model_year: int = Field(ge=1950, le=2100, description="Model year (año modelo).")
    service_type: Literal["particular", "publico", "carga"] = Field(
        description="Service type (tipo de servicio): particular, publico or carga."
    )


class PermitRequestSpec(Model):
    """What to obtain from the government portal, and how hard to try."""

    application_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$",
        description="The application in the API's database this permit is for. Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [cel("self == oldSelf", "applicationId is immutable")]
        },
    )
    secret_name: str = Field(
        pattern=DNS_LABEL,
        max_length=253,
        description=(
            "Secret in the same namespace holding the applicant's personal data, mounted "
            "read-only into the runner. The personal data never appears in this resource. "
            "Immutable."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [cel("self == oldSelf", "secretName is immutable")]
        },
    )
    pool: str = Field(
        "default",
        pattern=DNS_LABEL,
        max_length=63,
        description="RunnerPool whose concurrency limit and runner settings apply.",
    )
    priority: int = Field(
        0,
        ge=0,
        le=100,
        description="Higher runs first; requests of equal priority run oldest first.",
    )
    cancel: bool = Field(
        False,
        description=(
            "Set to true to cancel: a waiting request leaves the queue and a running attempt's "
            "Job is deleted. A cancellation cannot be undone."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self || !oldSelf", "a cancelled PermitRequest cannot be resumed")
            ]
        },
    )
    paid_at: datetime | None = Field(
        None, description="When the payment was confirmed (UTC); measures payment-to-permit time."
    )
    retry_policy: RetryPolicy | None = Field(
        None, description="Overrides of the pool's retry policy for this request."
    )
    vehicle: Vehicle | None = Field(None, description="The vehicle the permit is for.")


class Condition(Model):
    """A Kubernetes-style condition: the latest observation of one aspect of the request."""

    type: str = Field(description="Ready or Progressing.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
        description="CamelCase reason of the last transition, machine-readable.",
    )
    message: str = Field("", max_length=32768, description="Human-readable detail.")
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation this condition was computed from."
    )
    last_transition_time: datetime = Field(
        description="When the status last changed from one value to another."
    )


class Artifact(Model):
    """One PDF stored in object storage."""

    kind: ArtifactKind = Field(description="permit, certificate or placard.")
    key: str = Field(
        min_length=1, description="Object key: permits/<application>/<kind>-<folio>.pdf."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the object, hex.")
    bytes: int = Field(ge=1, description="Size of the object in bytes.")


class PermitResult(Model):
    """What the portal issued."""

    folio: str = Field(min_length=1, max_length=64, description="The portal's folio number.")
    artifacts: list[Artifact] = Field(
        default_factory=list, max_length=8, description="The stored PDFs."
    )
    runner_seconds: float | None = Field(
        None,
        ge=0,
        description="What the permit cost in runners: the pod seconds of all its attempts.",
    )


class AttemptRecord(Model):
    """How the latest finished attempt ended."""

    number: int = Field(ge=1, description="Attempt number, from 1.")
    job: str = Field(description="Name of the attempt's Job.")
    outcome: AttemptOutcome = Field(description="succeeded, retryable or permanent.")
    reason: str = Field(description="Why it ended so, CamelCase (e.g. PortalTimeout).")
    message: str = Field("", description="Detail, for example the portal's own rejection text.")
    finished_at: datetime = Field(description="When the operator observed the end.")
    runner_seconds: float | None = Field(
        None,
        ge=0,
        description="Runner pod seconds of this attempt: from its pod's start to its runner's "
        "end (or to when the operator gave up on it).",
    )
    evidence: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Object keys of what a failed attempt left for the engineer: screenshot, "
        "page HTML, Playwright trace (under evidence/<application>/<attempt>/).",
    )


class PermitRequestStatus(Model):
    """Observed state, written only by the operator."""

    phase: Phase | None = Field(
        None,
        description=(
            "Pending, Queued, Running, Retrying, Succeeded, Failed or Cancelled. "
            "Succeeded, Failed and Cancelled are final."
        ),
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready (the permit is issued), Progressing (work remains) and Admitted "
        "(an attempt runs; while False, its reason says why it waits: PoolFull, PoolNotFound, "
        "BackingOff, or the portal's: MaintenanceWindow, RateLimited, PortalUnavailable, "
        "PortalChanged, Probing).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation the operator last acted on."
    )
    attempts: int = Field(0, ge=0, description="Attempts started so far.")
    portal_attempts: int = Field(
        0,
        ge=0,
        description="Of those, attempts that failed because the portal was unavailable, had "
        "changed or asked to slow down: the pool's circuit breaker answers those, so they do not "
        "count toward maxAttempts.",
    )
    current_job: str | None = Field(None, description="Job of the attempt in flight, if any.")
    queued_at: datetime | None = Field(None, description="When the request last entered the queue.")
    queue_position: int | None = Field(
        None,
        ge=1,
        description="While Queued: its place in its pool's line (1 is next), kept for the first "
        "hundred in line.",
    )
    estimated_start_at: datetime | None = Field(
        None,
        description="While Queued: when its attempt is expected to start, from the pool's recent "
        "attempt durations and its portal's gates.",
    )
    started_at: datetime | None = Field(
        None, description="When the first attempt's Job was created."
    )
    next_attempt_at: datetime | None = Field(
        None, description="While Retrying: when the request re-enters the queue."
    )
    completed_at: datetime | None = Field(None, description="When a final phase was reached.")
    last_attempt: AttemptRecord | None = Field(None, description="The latest finished attempt.")
    runner_seconds: float | None = Field(
        None, ge=0, description="Runner pod seconds of all its finished attempts so far."
    )
    result: PermitResult | None = Field(None, description="The issued permit, once Succeeded.")


# --- RunnerPool ----------------------------------------------------------------------------------


class PoolRetryPolicy(Model):
    """Default retry policy of the requests in this pool."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                # Guarded like RetryPolicy's: kube-apiserver checks the rule against the
                # `default: {}` itself, before the fields' own defaults fill it in.
                cel(
                    "!has(self.backoffSeconds) || !has(self.maxBackoffSeconds)"
                    " || self.maxBackoffSeconds >= self.backoffSeconds",
                    "maxBackoffSeconds must not be less than backoffSeconds",
                )
            ]
        }
    )

    max_attempts: int = Field(
        5, ge=1, le=20, description="Attempts before a retryable failure becomes final."
    )
    backoff_seconds: int = Field(
        30, ge=1, le=3600, description="Wait before the second attempt; doubles every retry."
    )
    max_backoff_seconds: int = Field(
        900, ge=1, le=86400, description="Upper bound of the wait between two attempts."
    )


QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"


class Resources(Model):
    """Compute resources of the runner container."""

    requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "250m", "memory": "512Mi"},
        description="Resource requests, e.g. cpu: 250m, memory: 512Mi.",
        json_schema_extra={"additionalProperties": {"type": "string", "pattern": QUANTITY}},
    )
    limits: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "1", "memory": "1Gi"},
        description="Resource limits, e.g. cpu: '1', memory: 1Gi.",
        json_schema_extra={"additionalProperties": {"type": "string", "pattern": QUANTITY}},
    )


class PortalRateLimit(Model):
    """The portal account's pace, across the pool."""

    attempts_per_minute: int = Field(
        ge=1, le=10_000, description="Attempts started in any sliding minute, at most."
    )


class CircuitBreaker(Model):
    """When the pool stops sending attempts to a portal that is down, and how it tries again."""

    failure_threshold: int = Field(
        5,
        ge=1,
        le=100,
        description="Consecutive attempts failing because the portal is unavailable (5xx, "
        "maintenance page, timeouts, aborted downloads) that open the circuit.",
    )
    cool_down_seconds: int = Field(
        60, ge=1, le=86_400, description="Wait before the first probe; doubles every reopening."
    )
    max_cool_down_seconds: int = Field(
        900, ge=1, le=86_400, description="Upper bound of the wait between two probes."
    )


class PortalSettings(Model):
    """Where the government portal is and how the runner signs in."""

    url: str = Field(
        "http://portal-simulator:8080",
        pattern=r"^https?://",
        description="Base URL of the government portal.",
    )
    credentials_secret: str = Field(
        "portal-account",
        pattern=DNS_LABEL,
        description="Secret with the portal account's username and password keys.",
    )
    timeout_seconds: int = Field(
        60, ge=1, le=600, description="Longest wait for one portal page or download."
    )
    time_zone: str = Field(
        DEFAULT_TIME_ZONE,
        pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
        description="IANA time zone of the maintenance windows and closed dates.",
    )
    maintenance_windows: list[WeeklyWindow] = Field(
        default_factory=list,
        max_length=32,
        description="Weekly hours the portal is down for maintenance: no attempt starts inside "
        "one, nor one that its Job's deadline could carry into one.",
    )
    closed_dates: list[date] = Field(
        default_factory=list,
        max_length=366,
        description="Whole days (YYYY-MM-DD, in timeZone) the portal is closed, e.g. holidays.",
    )
    rate_limit: PortalRateLimit | None = Field(
        None, description="How many attempts the pool may start per minute."
    )
    circuit_breaker: CircuitBreaker = Field(
        default_factory=CircuitBreaker,
        description="Stops attempts while the portal is down or changed; probes it to resume.",
    )

    def schedule(self) -> Schedule:
        """The closures; a ValueError when the system does not know `time_zone`."""
        return Schedule(
            time_zone=self.time_zone,
            windows=self.maintenance_windows,
            closed_dates=self.closed_dates,
        )


class StorageSettings(Model):
    """Where the runner stores the PDFs and the evidence of failures."""

    bucket: str = Field(
        "permisos-permits",
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
        description="S3 bucket.",
    )
    endpoint_url: str | None = Field(
        None, pattern=r"^https?://", description="S3-compatible endpoint; empty means AWS S3."
    )
    region: str = Field("us-east-1", description="S3 region.")
    credentials_secret: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; empty uses the "
        "pod's workload identity.",
    )


class EnvVar(Model):
    """A plain environment variable for the runner (never personal data)."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Variable name.")
    value: str = Field("", description="Variable value.")


class RunnerPoolSpec(Model):
    """How many browser runners may work at once, and how each is run."""

    replicas: int = Field(
        1,
        ge=0,
        le=1000,
        description=(
            "How many runner Jobs may run at once. `kubectl scale runnerpool/<name> "
            "--replicas=N` sets it. Lowering it never stops running Jobs; 0 pauses the pool."
        ),
    )
    image: str = Field(
        "permisos/browser-runner:0.1.0", min_length=1, description="Runner container image."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="Image pull policy of the runner container."
    )
    service_account_name: str | None = Field(
        None,
        pattern=DNS_LABEL,
        description="ServiceAccount of the runner pods (workload identity for S3); empty uses "
        "the namespace's default. Its token is never mounted either way.",
    )
    image_pull_secrets: list[str] = Field(
        default_factory=list,
        max_length=8,
        description="Secrets for pulling the runner image from a private registry.",
    )
    command: list[str] | None = Field(None, description="Overrides the image's entrypoint.")
    resources: Resources = Field(
        default_factory=Resources, description="Runner container resources."
    )
    active_deadline_seconds: int = Field(
        600, ge=30, le=7200, description="Longest an attempt's Job may run before it is killed."
    )
    start_timeout_seconds: int = Field(
        300,
        ge=10,
        le=3600,
        description="Longest an attempt may wait for its pod to start (image pulls, "
        "scheduling) before the operator gives the attempt up as a retryable failure.",
    )
    ttl_seconds_after_finished: int = Field(
        3600, ge=0, le=604800, description="How long finished Jobs are kept for inspection."
    )
    shm_size: str = Field(
        "512Mi",
        pattern=QUANTITY,
        description="Size of the memory-backed /dev/shm Chromium needs.",
    )
    retry_policy: PoolRetryPolicy = Field(
        default_factory=PoolRetryPolicy, description="Default retry policy of the pool's requests."
    )
    portal: PortalSettings = Field(
        default_factory=PortalSettings, description="The government portal."
    )
    storage: StorageSettings = Field(
        default_factory=StorageSettings, description="Object storage for PDFs and evidence."
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        description="Extra environment of the runner container.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )


class PortalHold(Model):
    """A wait the portal asked for (its Retry-After on a 429 or a maintenance page)."""

    until: datetime = Field(description="No attempt of the pool starts before this time.")
    reason: str = Field(description="RateLimited or MaintenanceWindow.")


CircuitState = Literal["Closed", "Open", "HalfOpen"]


class PortalCircuit(Model):
    """The pool's circuit breaker around the portal."""

    state: CircuitState = Field(
        "Closed",
        description="Closed: attempts run. Open: none starts; a probe runs after the cool-down. "
        "HalfOpen: the probe passed; the queue is released in growing waves.",
    )
    reason: str = Field(
        "PortalHealthy", description="Why it last opened: PortalUnavailable or PortalChanged."
    )
    consecutive_failures: int = Field(
        0, ge=0, description="Attempts in a row that failed because the portal is unavailable."
    )
    opened_at: datetime | None = Field(None, description="When the circuit last opened.")
    openings: int = Field(0, ge=0, description="Openings since it was last Closed.")
    next_probe_at: datetime | None = Field(None, description="While Open: when a probe runs.")
    probe: str | None = Field(None, description="The probe Job in flight, if any.")
    wave: int = Field(0, ge=0, description="While HalfOpen: attempts allowed at once.")


class RunnerPoolStatus(Model):
    """Observed state of the pool, written by the operator."""

    replicas: int = Field(0, ge=0, description="Runner Jobs running now.")
    queued: int = Field(0, ge=0, description="Requests waiting for a runner.")
    selector: str = Field("", description="Label selector of the pool's runner pods (for HPA).")
    observed_generation: int | None = Field(
        None, ge=0, description="The .metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="PortalAvailable: whether the pool may start attempts at the portal now "
        "(False with MaintenanceWindow or RateLimited while it waits).",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    portal_hold: PortalHold | None = Field(
        None, description="The wait the portal last asked for, while it lasts."
    )
    circuit: PortalCircuit | None = Field(None, description="The circuit breaker's state.")
