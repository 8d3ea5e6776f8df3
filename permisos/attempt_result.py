"""The contract between a browser-runner pod and the operator: the pod's termination message.

The runner writes one JSON document (under 4 KiB, the kubelet's limit) to its termination-message
path and exits 0 (succeeded), 3 (retryable) or 4 (permanent); the operator reads it back from the
pod's container status.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from permisos.resources import Artifact

MAX_MESSAGE_BYTES = 4096
EXIT_CODES: dict[str, int] = {"succeeded": 0, "retryable": 3, "permanent": 4}
REASON_PATTERN = r"^[A-Z][A-Za-z0-9]{0,63}$"


class AttemptResult(BaseModel):
    """What one attempt achieved."""

    model_config = ConfigDict(extra="ignore")

    outcome: Literal["succeeded", "retryable", "permanent"]
    reason: str = Field(pattern=REASON_PATTERN)
    message: str = Field("", max_length=1024)
    folio: str | None = Field(None, min_length=1, max_length=64)
    artifacts: list[Artifact] = Field(default_factory=list, max_length=8)
    timings: dict[str, float] = Field(default_factory=dict)
    # Object keys of what a failed attempt left for the engineer (screenshot, HTML, trace).
    evidence: list[str] = Field(default_factory=list, max_length=8)
    # A probe (the pool's portal health check) submits nothing and brings no documents.
    kind: Literal["attempt", "probe"] = "attempt"
    # How long the portal asked us to stay away (its Retry-After), when it did.
    retry_after_seconds: int | None = Field(None, ge=0, le=86_400)

    @model_validator(mode="after")
    def _succeeded_has_documents(self) -> AttemptResult:
        documents = self.folio and self.artifacts
        if self.kind == "attempt" and self.outcome == "succeeded" and not documents:
            raise ValueError("a succeeded attempt must report its folio and artifacts")
        return self

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def to_message(self) -> str:
        text = self.model_dump_json(exclude_none=True)
        if len(text.encode()) > MAX_MESSAGE_BYTES:
            raise ValueError("termination message over 4 KiB")
        return text
