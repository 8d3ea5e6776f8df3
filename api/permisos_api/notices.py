"""Permit notices: one mail per permit when it is ready or has failed for good.

The dispatcher's loop calls `send_permit_notices` on every pass. Each application is claimed with
`FOR UPDATE SKIP LOCKED` and its current permit's `notice_sent_at` is set in that same
transaction, after the mail went out: any number of replicas can run it and each notice goes once
(a crash between the mail and the commit is the only way to send it twice; a failed mail is tried
on the next pass). A retry is a new permit, so its outcome is mailed too.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from .db import utcnow
from .mail import Mailer
from .models import CURRENT_PERMIT, Application, ApplicationStatus, Permit
from .settings import ApiSettings

log = logging.getLogger("permisos_api.notices")

NOTICE_STATUSES = (ApplicationStatus.permit_ready.value, ApplicationStatus.permit_failed.value)


def notice(app: Application) -> tuple[str, dict[str, str]]:
    """The mail's kind and what it says, for a permit ready or failed for good."""
    context = {"first_name": app.first_name, "plates": app.plates, "application_id": str(app.id)}
    if app.status == ApplicationStatus.permit_ready:
        return "permit_ready", {**context, "folio": app.folio or ""}
    reason = app.permit_message or app.permit_reason or "El portal no indicó el motivo."
    return "permit_failed", {**context, "reason": reason}


def _send_one(engine: Engine, settings: ApiSettings, mailer: Mailer) -> str | None:
    """Claims, mails and marks one application; the notice's kind, or None when none waits."""
    with Session(engine) as db, db.begin():
        found = db.execute(
            select(Application, Permit)
            .join(Permit, CURRENT_PERMIT)
            .where(
                Application.status.in_(NOTICE_STATUSES),
                Permit.notice_sent_at.is_(None),
                Application.anonymized_at.is_(None),
            )
            .order_by(Permit.updated_at, Application.id)
            .limit(1)
            # Both rows: the flag is on the permit, so a replica that waited for this one
            # re-checks it after the lock instead of mailing again.
            .with_for_update(skip_locked=True, of=(Application, Permit))
        ).first()
        if found is None:
            return None
        app, permit = found
        kind, context = notice(app)
        mailer.send(app.email, kind, **context)
        permit.notice_sent_at = utcnow()
        log.info("permit notice sent", extra={"application": str(app.id), "notice": kind})
        return kind


def send_permit_notices(
    engine: Engine,
    settings: ApiSettings,
    mailer: Mailer,
    limit: int | None = None,
    outcomes: Counter | None = None,
) -> int:
    """Sends the pending notices (at most `limit`, default the dispatcher's batch size).

    `outcomes` counts permits by outcome exactly once each: when the applicant is told.
    """
    sent = 0
    for _ in range(limit or settings.dispatcher_batch_size):
        kind = _send_one(engine, settings, mailer)
        if kind is None:
            break
        if outcomes is not None:
            outcomes.labels("issued" if kind == "permit_ready" else "failed").inc()
        sent += 1
    return sent
