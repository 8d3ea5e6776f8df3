"""`python -m permisos_api.reminders [--dry-run]`: mail each applicant whose permit expires soon.

A permit is valid `PERMISOS_API_PERMIT_VALIDITY_DAYS` (default 30, the portal's rule) from its
issue; the platform does not read the validity off the permit document. The issue time is when
the PermitRequest succeeded: the API's mirror writes that transition's time into
the current permit's `permits.updated_at` with `phase = 'Succeeded'`, and terminal phases never
change again. Each application in `permit_ready` whose permit expires within
`PERMISOS_API_EXPIRY_REMINDER_DAYS` (default 5), and has not expired yet, gets one reminder.

Exactly once, with any number of runs at once: a run first claims a
batch (a conditional UPDATE of `expiry_reminder_claimed_at`, after `FOR UPDATE SKIP LOCKED`) and
commits, then mails, then sets `expiry_reminder_sent_at`. A claim is a lease: if
the run dies before mailing, the row is claimable again after `CLAIM_LEASE`. A failed mail
releases the claim and stops the run (exit code 1), so the next run tries again. Only a crash
between the mail and the mark can send a reminder twice. Anonymized applications are skipped.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from .command import DATABASE_UNREACHABLE, run_command
from .db import utcnow
from .es_mx import MEXICO_CITY
from .mail import Mailer
from .models import CURRENT_PERMIT, Application, ApplicationStatus, Permit
from .settings import ApiSettings

log = logging.getLogger("permisos_api.reminders")

SUCCEEDED_PHASE = "Succeeded"
# Longer than a batch of mails can take (each SMTP connection times out after 10 s).
CLAIM_LEASE = timedelta(minutes=15)
_MONTHS = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)


@dataclass
class Report:
    dry_run: bool
    validity_days: int
    reminder_days: int
    due: int = 0  # waiting and unclaimed when the run started (what --dry-run would send)
    sent: int = 0
    mail_errors: int = 0


@dataclass(frozen=True)
class Reminder:
    """What one mail needs, read while the claim is held."""

    application_id: uuid.UUID
    to: str
    first_name: str
    plates: str
    folio: str | None
    expires_at: datetime


def expiry_date_es(moment: datetime) -> str:
    """`12 de enero de 2027`: the day the applicant sees, in Mexico City."""
    day = moment.astimezone(MEXICO_CITY).date()
    return f"{day.day} de {_MONTHS[day.month - 1]} de {day.year}"


def reminder_context(reminder: Reminder) -> dict[str, str]:
    """What the expiry reminder (`mail_templates/permit_expiry_reminder.*`) says."""
    return {
        "first_name": reminder.first_name,
        "plates": reminder.plates,
        "folio": reminder.folio or "",
        "expires": expiry_date_es(reminder.expires_at),
        "application_id": str(reminder.application_id),
    }


def _due(settings: ApiSettings, now: datetime) -> ColumnElement[bool]:
    """Permits that expire in (now, now + reminder days] and were not reminded."""
    validity = timedelta(days=settings.permit_validity_days)
    window = timedelta(days=settings.expiry_reminder_days)
    issued = Permit.updated_at
    # Bounds computed here, not in SQL: date arithmetic is not portable between databases.
    return and_(
        CURRENT_PERMIT,
        Application.status == ApplicationStatus.permit_ready.value,
        Permit.phase == SUCCEEDED_PHASE,
        Application.anonymized_at.is_(None),
        Application.expiry_reminder_sent_at.is_(None),
        issued > now - validity,
        issued <= now + window - validity,
    )


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        Application.expiry_reminder_claimed_at.is_(None),
        Application.expiry_reminder_claimed_at < now - CLAIM_LEASE,
    )


def _claim(
    db: Session, settings: ApiSettings, now: datetime, claimed_at: datetime
) -> list[Reminder]:
    candidates = list(
        db.scalars(
            select(Application.id)
            .where(_due(settings, now), _claimable(claimed_at))
            .order_by(Permit.updated_at, Application.id)
            .limit(settings.reminder_batch_size)
            .with_for_update(skip_locked=True, of=Application)
        )
    )
    if not candidates:
        return []
    # Conditional: a row another run claimed in the meantime is not ours.
    claimed = list(
        db.scalars(
            update(Application)
            .where(Application.id.in_(candidates), _due(settings, now), _claimable(claimed_at))
            .values(expiry_reminder_claimed_at=claimed_at)
            .returning(Application.id)
            .execution_options(synchronize_session=False)
        )
    )
    if not claimed:
        return []
    validity = timedelta(days=settings.permit_validity_days)
    rows = db.execute(
        select(
            Application.id,
            Application.email,
            Application.first_name,
            Application.plates,
            Permit.folio,
            Permit.updated_at,
        )
        .join(Permit, CURRENT_PERMIT)
        .where(Application.id.in_(claimed))
        .order_by(Permit.updated_at, Application.id)
    ).all()
    return [
        Reminder(row.id, row.email, row.first_name, row.plates, row.folio, issued + validity)
        for row in rows
        if (issued := row.updated_at) is not None
    ]


def _mark_sent(factory: sessionmaker[Session], application_id: uuid.UUID) -> None:
    with factory() as db, db.begin():
        db.execute(
            update(Application)
            .where(Application.id == application_id, Application.expiry_reminder_sent_at.is_(None))
            .values(expiry_reminder_sent_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def _release(factory: sessionmaker[Session], ids: list[uuid.UUID], claimed_at: datetime) -> None:
    """Gives back claims this run holds (not ones another run took after a lease lapsed)."""
    with factory() as db, db.begin():
        db.execute(
            update(Application)
            .where(
                Application.id.in_(ids),
                Application.expiry_reminder_sent_at.is_(None),
                Application.expiry_reminder_claimed_at == claimed_at,
            )
            .values(expiry_reminder_claimed_at=None)
            .execution_options(synchronize_session=False)
        )


def send_reminders(
    settings: ApiSettings,
    factory: sessionmaker[Session],
    mailer: Mailer,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Report:
    started = utcnow()
    now = now or started
    # A caller's `now` (tests, a replay) shifts the run's whole clock; claims are still stamped
    # when each batch is taken, so a long run's later batches do not look lapsed to other runs.
    skew = now - started
    report = Report(
        dry_run=dry_run,
        validity_days=settings.permit_validity_days,
        reminder_days=settings.expiry_reminder_days,
    )
    with factory() as db:
        report.due = (
            db.scalar(
                select(func.count())
                .select_from(Application)
                .where(_due(settings, now), _claimable(now))
            )
            or 0
        )
    if dry_run:
        log.info("dry run: %d permit-expiry reminders would be sent", report.due)
        return report
    while True:
        claimed_at = utcnow() + skew
        with factory() as db, db.begin():
            batch = _claim(db, settings, now, claimed_at)
        if not batch:
            break
        for i, reminder in enumerate(batch):
            try:
                mailer.send(reminder.to, "permit_expiry_reminder", **reminder_context(reminder))
            except Exception as exc:
                # The mail service is down: give back this claim and the rest, try next run.
                log.warning("reminder not sent: %s", type(exc).__name__)
                report.mail_errors += 1
                _release(factory, [r.application_id for r in batch[i:]], claimed_at)
                break
            _mark_sent(factory, reminder.application_id)
            report.sent += 1
            log.info(
                "permit-expiry reminder sent", extra={"application": str(reminder.application_id)}
            )
        if report.mail_errors:
            break
    log.info("permit-expiry reminders sent: %d, mail errors: %d", report.sent, report.mail_errors)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m permisos_api.reminders"
    parser = argparse.ArgumentParser(
        prog=prog, description="Mail one reminder per permit that expires soon."
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count the reminders due; send and change nothing"
    )
    args = parser.parse_args(argv)
    report = run_command(
        prog,
        lambda settings, factory: send_reminders(
            settings, factory, Mailer(settings), dry_run=args.dry_run
        ),
    )
    if report is None:
        return DATABASE_UNREACHABLE
    if report.mail_errors:
        print(
            f"{prog}: the mail service failed; unsent reminders wait for the next run",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
