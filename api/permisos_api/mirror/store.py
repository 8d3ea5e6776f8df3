"""One PermitRequest state written into its permit's row (`permits`) and `permit_history`.

Writes are idempotent and newer-only, so replaying them (after an outage, a restart, a relist, a
second API replica) is always safe:

- `permit_history` gets one row per transition, deduplicated by its unique key
  (application, phase, attempt, transitioned_at) with ON CONFLICT DO NOTHING;
- each PermitRequest has its own row in `permits` (made here if the dispatcher or the retry
  service has not made it yet), so an admin's retry `<application-id>-r<N>` and the failed
  request before it never write over each other;
- a row changes only if its `updated_at` is NULL or not newer than the transition (ties are
  broken by the attempt count, which never decreases), and its phase is not terminal.
- The application's status follows its current permit only (`applications.permit_retries`):
  Succeeded makes it `permit_ready`, Failed `permit_failed`; other phases leave its status alone
  (as does a refunded or cancelled application).

Blocking: the loop runs it in a thread.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy import Engine, and_, case, or_, select, update

from permisos.database import upsert
from permisos.resources import TERMINAL_PHASES

from ..db import utcnow
from ..dispatcher import request_name, retry_in_name
from ..models import Application, ApplicationStatus, Permit, PermitHistory
from ..permit_rows import ensure_permit
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
        app = conn.execute(
            select(Application.id, Application.permit_retries)
            .where(Application.id == snap.application_id)
            .with_for_update()
        ).first()
        if app is None:
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
        # A state without a name is the current permit's.
        name = snap.name or request_name(app.id, app.permit_retries)
        retry = retry_in_name(app.id, name)
        if retry is None:
            return True  # not one of this application's names: the history only
        ensure_permit(conn, engine, app.id, retry, name, now)
        values: dict[str, Any] = {
            "phase": snap.phase,
            "reason": snap.reason,
            "message": snap.message,
            "attempts": snap.attempt,
            "updated_at": at,
            "waiting_reason": snap.waiting_reason,
            "queue_position": snap.queue_position,
            "estimated_start_at": snap.estimated_start_at,
        }
        if snap.folio is not None:
            values["folio"] = snap.folio
        if snap.artifacts is not None:
            values["artifacts"] = snap.artifact_list()
        written = conn.execute(
            update(Permit)
            .where(
                Permit.request_name == name,
                Permit.application_id == app.id,
                or_(
                    Permit.updated_at.is_(None),
                    Permit.updated_at < at,
                    and_(Permit.updated_at == at, Permit.attempts <= snap.attempt),
                ),
                or_(Permit.phase.is_(None), Permit.phase.not_in(TERMINAL)),
            )
            .values(**values)
        ).rowcount
        if written and retry == app.permit_retries:
            follows: dict[str, Any] = {"updated_at": now}
            new_status = STATUS_OF_PHASE.get(snap.phase)
            if new_status is not None:
                follows["status"] = case(
                    (Application.status.in_(PERMIT_STATUSES), new_status),
                    else_=Application.status,
                )
            conn.execute(update(Application).where(Application.id == app.id).values(**follows))
    return True


def record_all(engine: Engine, snapshots: list[Snapshot]) -> None:
    """In order; raises on the first failure (the caller retries them all: each is idempotent)."""
    for snap in snapshots:
        record(engine, snap)
