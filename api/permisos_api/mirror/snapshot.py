"""What the mirror writes for one PermitRequest state, read from the object alone.

The transition's time is derived from the status itself (queuedAt, startedAt, the last attempt's
finishedAt, completedAt), never from the clock at mirroring time: the same transition mirrored
twice, by one replica after a relist or by two replicas at once, is the same row.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from permisos.resources import TERMINAL_PHASES, PermitRequestStatus


@dataclass(frozen=True)
class Snapshot:
    """One PermitRequest state, as the database keeps it. No personal data."""

    application_id: uuid.UUID
    phase: str
    reason: str | None
    message: str | None
    attempt: int
    transitioned_at: datetime
    folio: str | None = None
    # Each artifact as sorted (key, value) pairs, so that snapshots compare and hash.
    artifacts: tuple[tuple[tuple[str, Any], ...], ...] | None = None
    # The PermitRequest's name; None skips the "only the current request" check.
    name: str | None = None
    # While it waits (Admitted False): why, its place in line, when it should start.
    waiting_reason: str | None = None
    queue_position: int | None = None
    estimated_start_at: datetime | None = None

    def artifact_list(self) -> list[dict[str, Any]] | None:
        if self.artifacts is None:
            return None
        return [dict(a) for a in self.artifacts]


def transition_time(status: PermitRequestStatus) -> datetime | None:
    """When the current phase was entered, as far as the status records it."""
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    known = [
        t
        for t in (
            status.queued_at,
            status.started_at,
            status.last_attempt.finished_at if status.last_attempt else None,
            ready.last_transition_time if ready else None,
        )
        if t is not None
    ]
    phase = status.phase
    if phase in TERMINAL_PHASES and status.completed_at is not None:
        return status.completed_at
    if phase == "Queued" and status.queued_at is not None:
        return status.queued_at
    if phase == "Running":
        # Entered at admission: the first one is startedAt, a later one follows its queueing.
        started = [t for t in (status.queued_at, status.started_at) if t is not None]
        if started:
            return max(started)
    if phase == "Retrying" and status.last_attempt is not None:
        return status.last_attempt.finished_at
    return max(known) if known else None


def snapshot_of(body: dict[str, Any]) -> Snapshot | None:
    """The state to mirror, or None when there is nothing to mirror (no phase, no UUID)."""
    application = (body.get("spec") or {}).get("applicationId")
    try:
        application_id = uuid.UUID(str(application))
    except ValueError:
        return None
    try:
        status = PermitRequestStatus.model_validate(body.get("status") or {})
    except ValidationError:
        return None
    if status.phase is None:
        return None
    when = transition_time(status)
    if when is None:
        return None
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    artifacts = None
    folio = None
    if status.result is not None:
        folio = status.result.folio
        artifacts = tuple(
            tuple(sorted(a.model_dump(mode="json").items())) for a in status.result.artifacts
        )
    name = (body.get("metadata") or {}).get("name")
    admitted = next((c for c in status.conditions if c.type == "Admitted"), None)
    waiting = admitted.reason[:64] if admitted is not None and admitted.status == "False" else None
    return Snapshot(
        application_id=application_id,
        phase=status.phase,
        reason=(ready.reason[:64] if ready else None) or None,
        message=(ready.message[:1024] if ready else None) or None,
        attempt=status.attempts,
        transitioned_at=when.astimezone(UTC),
        folio=folio,
        artifacts=artifacts,
        name=str(name)[:63] if name else None,
        waiting_reason=waiting if status.phase not in TERMINAL_PHASES else None,
        queue_position=status.queue_position,
        estimated_start_at=status.estimated_start_at.astimezone(UTC)
        if status.estimated_start_at
        else None,
    )
