"""The phase mirror: each PermitRequest transition, written into the API's database.

The applicant sees progress in their application's row, and the history (`permit_history`)
outlives the PermitRequest. The operator does not import the API: it knows the two tables it
writes through its own minimal SQLAlchemy Core definitions.

Writes are idempotent and newer-only, so replaying them (after an outage, a restart, a failover)
is always safe:

- `permit_history` gets one row per transition, deduplicated by its unique key
  (application, phase, attempt, transitioned_at) with ON CONFLICT DO NOTHING;
- the application's permit columns change only for the PermitRequest it names
  (`applications.permit_request`, or any while that is NULL): after an admin's retry, a new
  PermitRequest `<application-id>-r<N>`, the old failed one can never overwrite the retry's
  progress (its transitions still go to the history, each with its PermitRequest's name);
- and only if the stored `permit_updated_at` is NULL or not
  newer than the transition (ties are broken by the attempt count, which never decreases), and
  the stored phase is not terminal. Succeeded makes the application `permit_ready`, Failed
  `permit_failed`; other phases leave its status alone.

The transition's time is derived from the status itself (queuedAt, startedAt, the last attempt's
finishedAt, completedAt), never from the clock at mirroring time: the same transition mirrored
twice is the same row.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    and_,
    case,
    or_,
    select,
    true,
    update,
)

from permisos.database import make_database_engine, upsert
from permisos.resources import TERMINAL_PHASES, PermitRequestStatus

metadata = MetaData()

applications = Table(
    "applications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("status", String(32)),
    Column("permit_request", String(63)),
    Column("permit_phase", String(16)),
    Column("permit_reason", String(64)),
    Column("permit_message", String(1024)),
    Column("permit_attempts", Integer),
    Column("permit_updated_at", DateTime(timezone=True)),
    Column("folio", String(64)),
    Column("permit_artifacts", JSON),
    Column("updated_at", DateTime(timezone=True)),
)

permit_history = Table(
    "permit_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("application_id", Uuid),
    Column("phase", String(16)),
    Column("reason", String(64)),
    Column("message", String(1024)),
    Column("attempt", Integer),
    Column("permit_request", String(63)),
    Column("transitioned_at", DateTime(timezone=True)),
    Column("recorded_at", DateTime(timezone=True)),
)

# The application's status follows a final outcome; the API owns every other status change.
STATUS_OF_PHASE = {"Succeeded": "permit_ready", "Failed": "permit_failed"}
# Statuses the mirror may move from (a refunded or cancelled application keeps its status).
PERMIT_STATUSES = ("paid", "permit_ready", "permit_failed")
TERMINAL = tuple(sorted(TERMINAL_PHASES))

Body = dict[str, Any]


@dataclass(frozen=True)
class Snapshot:
    """What the mirror writes for one PermitRequest state. No personal data."""

    application_id: uuid.UUID
    phase: str
    reason: str | None
    message: str | None
    attempt: int
    transitioned_at: datetime
    folio: str | None = None
    artifacts: tuple[tuple[tuple[str, Any], ...], ...] | None = None
    # The PermitRequest's name; None (tests, old callers) skips the name check.
    name: str | None = None

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


def snapshot_of(body: Body) -> Snapshot | None:
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
    )


class Mirror:
    """Writes snapshots to the database; blocking work runs in threads, a few at a time."""

    def __init__(self, url: str, pool_size: int = 2, connect_timeout: int = 3) -> None:
        # The API's engine settings.
        self.engine: Engine = make_database_engine(
            url, pool_size=pool_size, max_overflow=0, connect_timeout_seconds=connect_timeout
        )
        self._gate = asyncio.Semaphore(pool_size)

    def close(self) -> None:
        self.engine.dispose()

    async def write(self, snapshots: list[Snapshot]) -> None:
        """Writes the snapshots in order; raises if the database fails (then retry them all)."""
        async with self._gate:
            await asyncio.to_thread(self._write_all, snapshots)

    def _write_all(self, snapshots: list[Snapshot]) -> None:
        for snap in snapshots:
            self.record(snap)

    def record(self, snap: Snapshot) -> bool:
        """One transition, in one transaction. False when the application is not in the database."""
        now = datetime.now(UTC)
        at = snap.transitioned_at.astimezone(UTC)
        app = applications.c
        with self.engine.begin() as conn:
            found = conn.execute(
                select(app.id).where(app.id == snap.application_id).with_for_update()
            ).first()
            if found is None:
                return False
            conn.execute(
                upsert(self.engine, permit_history)
                .values(
                    application_id=snap.application_id,
                    phase=snap.phase,
                    reason=snap.reason,
                    message=snap.message,
                    attempt=snap.attempt,
                    permit_request=snap.name,
                    transitioned_at=at,
                    recorded_at=now,
                )
                .on_conflict_do_nothing(
                    index_elements=["application_id", "phase", "attempt", "transitioned_at"]
                )
            )
            values: dict[str, Any] = {
                "permit_phase": snap.phase,
                "permit_reason": snap.reason,
                "permit_message": snap.message,
                "permit_attempts": snap.attempt,
                "permit_updated_at": at,
                "updated_at": now,
            }
            if snap.folio is not None:
                values["folio"] = snap.folio
            if snap.artifacts is not None:
                values["permit_artifacts"] = snap.artifact_list()
            new_status = STATUS_OF_PHASE.get(snap.phase)
            if new_status is not None:
                values["status"] = case(
                    (app.status.in_(PERMIT_STATUSES), new_status), else_=app.status
                )
            current = (
                or_(app.permit_request.is_(None), app.permit_request == snap.name)
                if snap.name is not None
                else true()
            )
            conn.execute(
                update(applications)
                .where(
                    app.id == snap.application_id,
                    current,
                    or_(
                        app.permit_updated_at.is_(None),
                        app.permit_updated_at < at,
                        and_(
                            app.permit_updated_at == at,
                            app.permit_attempts <= snap.attempt,
                        ),
                    ),
                    or_(app.permit_phase.is_(None), app.permit_phase.not_in(TERMINAL)),
                )
                .values(**values)
            )
        return True
