"""One PermitRequest state written into the application's row and `permit_history`.

Writes are idempotent and newer-only, so replaying them (after an outage, a restart, a relist, a
second API replica) is always safe:

- `permit_history` gets one row per transition, deduplicated by its unique key
  (application, phase, attempt, transitioned_at) with ON CONFLICT DO NOTHING;
- the application's permit columns change only for the PermitRequest it names
  (`applications.permit_request`, or any while that is NULL): after an admin's retry, a new
  PermitRequest `<application-id>-r<N>`, the old failed one can never overwrite the retry's
  progress (its transitions still go to the history, each with its PermitRequest's name);
- and only if the stored `permit_updated_at` is NULL or not newer than the transition (ties are
  broken by the attempt count, which never decreases), and the stored phase is not terminal.
  Succeeded makes the application `permit_ready`, Failed `permit_failed`; other phases leave its
  status alone (as does a refunded or cancelled application).

Blocking: the loop runs it in a thread.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import Engine, and_, case, or_, select, true, update

from permisos.database import upsert
from permisos.resources import TERMINAL_PHASES

from ..db import utcnow
from ..models import Application, ApplicationStatus, PermitHistory
from .snapshot import Snapshot

# The application's status follows a final outcome; the API's other code owns every other change.
STATUS_OF_PHASE = {
    "Succeeded": ApplicationStatus.permit_ready.value,
    "Failed": ApplicationStatus.permit_failed.value,
}
# Statuses the mirror may move from.
PERMIT_STATUSES = tuple(
    s.value
    for s in (
        ApplicationStatus.paid,
        ApplicationStatus.permit_ready,
        ApplicationStatus.permit_failed,
    )
)
TERMINAL = tuple(sorted(TERMINAL_PHASES))


def record(engine: Engine, snap: Snapshot) -> bool:
    """One transition, in one transaction. False when the application is not in the database."""
    now = utcnow()
    at = snap.transitioned_at.astimezone(UTC)
    with engine.begin() as conn:
        # The row lock orders two replicas' writes of one application.
        found = conn.execute(
            select(Application.id).where(Application.id == snap.application_id).with_for_update()
        ).first()
        if found is None:
            return False
        conn.execute(
            upsert(engine, PermitHistory)
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
            "permit_waiting_reason": snap.waiting_reason,
            "permit_queue_position": snap.queue_position,
            "permit_estimated_start_at": snap.estimated_start_at,
            "updated_at": now,
        }
        if snap.folio is not None:
            values["folio"] = snap.folio
        if snap.artifacts is not None:
            values["permit_artifacts"] = snap.artifact_list()
        new_status = STATUS_OF_PHASE.get(snap.phase)
        if new_status is not None:
            values["status"] = case(
                (Application.status.in_(PERMIT_STATUSES), new_status), else_=Application.status
            )
        current = (
            or_(Application.permit_request.is_(None), Application.permit_request == snap.name)
            if snap.name is not None
            else true()
        )
        conn.execute(
            update(Application)
            .where(
                Application.id == snap.application_id,
                current,
                or_(
                    Application.permit_updated_at.is_(None),
                    Application.permit_updated_at < at,
                    and_(
                        Application.permit_updated_at == at,
                        Application.permit_attempts <= snap.attempt,
                    ),
                ),
                or_(Application.permit_phase.is_(None), Application.permit_phase.not_in(TERMINAL)),
            )
            .values(**values)
        )
    return True


def record_all(engine: Engine, snapshots: list[Snapshot]) -> None:
    """In order; raises on the first failure (the caller retries them all: each is idempotent)."""
    for snap in snapshots:
        record(engine, snap)
