"""`python -m permisos_api.cleanup [--dry-run]`: erase the personal data of abandoned applications.

An application is abandoned when no money was ever accepted for it and nobody touched it for
`PERMISOS_API_ABANDONED_RETENTION_DAYS` (default 30):

- its status is `draft`, `awaiting_payment`, `cancelled` or `expired` (`payment_pending` and
  `paid` are in flight, as for the account deletion; `permit_ready`, `permit_failed` and
  `refunded` were paid);
- it has no `paid_at`, and none of its payments succeeded, was refunded or is flagged for a
  manual refund (money that arrived after a cancellation counts as paid: a human owes a refund);
- neither it nor any of its payments changed within the retention period.

Such an application is erased the way the ARCO account deletion erases (`DELETE /v1/me`), by
`permisos_api.privacy`: the same placeholders replace names, CURP, email and phone, and
`anonymized_at` is set. The row stays (its payments and payment events are fiscal records and
point at it). A `draft` or `awaiting_payment` one also becomes `expired`, so nobody can edit or
pay an erased application. This module imports no web framework (no `permisos_api.routes`):
the CronJob starts fast.

This comes after `permisos_api.reconcile`, which expires unpaid OXXO applications after days,
not weeks. Rows are claimed in batches with `FOR UPDATE SKIP LOCKED` and the erasure is
conditional on `anonymized_at IS NULL`, so two runs at once erase each application once and a
second run finds nothing. It logs and prints counts only; exit code 2 with a one-line message
when the database is unreachable.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select, true
from sqlalchemy.orm import Session, sessionmaker

from .command import DATABASE_UNREACHABLE, run_command
from .db import utcnow
from .models import Application, ApplicationStatus, Payment
from .payments.state import SUCCEEDED
from .privacy import erase_applications
from .settings import ApiSettings

log = logging.getLogger("permisos_api.cleanup")

ERASABLE = (
    ApplicationStatus.draft.value,
    ApplicationStatus.awaiting_payment.value,
    ApplicationStatus.cancelled.value,
    ApplicationStatus.expired.value,
)
# Still payable: erased, they become `expired` so nobody fills placeholders into a permit.
CLOSED_ON_ERASURE = (ApplicationStatus.draft.value, ApplicationStatus.awaiting_payment.value)


@dataclass
class Report:
    dry_run: bool
    retention_days: int
    # Applications erased (or, with --dry-run, that would be), by the status they had.
    erased: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    batches: int = 0


def abandoned(cutoff: datetime) -> ColumnElement[bool]:
    """The WHERE clause of an abandoned application, idle since before `cutoff`."""
    money = exists().where(
        Payment.application_id == Application.id,
        or_(
            Payment.status == SUCCEEDED,
            Payment.succeeded_at.is_not(None),
            Payment.refunded_at.is_not(None),
            Payment.manual_refund_required == true(),
        ),
    )
    recent_payment = exists().where(
        Payment.application_id == Application.id, Payment.updated_at >= cutoff
    )
    return and_(
        Application.status.in_(ERASABLE),
        Application.anonymized_at.is_(None),
        Application.paid_at.is_(None),
        Application.updated_at < cutoff,
        ~money,
        ~recent_payment,
    )


def _count(db: Session, cutoff: datetime) -> dict[str, int]:
    rows = db.execute(
        select(Application.status, func.count())
        .where(abandoned(cutoff))
        .group_by(Application.status)
    ).all()
    return {status: count for status, count in rows}


def _erase_batch(db: Session, cutoff: datetime, now: datetime, batch_size: int) -> dict[str, int]:
    """Claims and erases up to `batch_size` applications; their count by former status."""
    claimed = db.execute(
        select(Application.id, Application.status)
        .where(abandoned(cutoff))
        .order_by(Application.updated_at, Application.id)
        .limit(batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    if not claimed:
        return {}
    # The condition again, under the lock: whatever changed since the SELECT is left alone.
    erased_ids = erase_applications(
        db,
        [row.id for row in claimed],
        now,
        where=(abandoned(cutoff),),
        values={
            "status": case(
                (Application.status.in_(CLOSED_ON_ERASURE), ApplicationStatus.expired.value),
                else_=Application.status,
            )
        },
    )
    counts: dict[str, int] = {}
    for row in claimed:
        if row.id in erased_ids:
            counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def cleanup(
    settings: ApiSettings,
    factory: sessionmaker[Session],
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> Report:
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.abandoned_retention_days)
    report = Report(dry_run=dry_run, retention_days=settings.abandoned_retention_days)
    if dry_run:
        with factory() as db:
            report.by_status = _count(db, cutoff)
        report.erased = sum(report.by_status.values())
        log.info("dry run: %d abandoned applications would be erased", report.erased)
        return report
    while True:
        # One short transaction per batch: locks are held briefly and progress is kept.
        with factory() as db, db.begin():
            counts = _erase_batch(db, cutoff, now, settings.cleanup_batch_size)
        if not counts:
            break
        report.batches += 1
        for status, n in counts.items():
            report.by_status[status] = report.by_status.get(status, 0) + n
        report.erased += sum(counts.values())
    log.info(
        "abandoned applications erased: %d (%s)",
        report.erased,
        ", ".join(f"{s}={n}" for s, n in sorted(report.by_status.items())) or "none",
    )
    return report


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m permisos_api.cleanup"
    parser = argparse.ArgumentParser(
        prog=prog, description="Erase the personal data of abandoned, never-paid applications."
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="count what would be erased; change nothing"
    )
    args = parser.parse_args(argv)
    report = run_command(
        prog, lambda settings, factory: cleanup(settings, factory, dry_run=args.dry_run)
    )
    return DATABASE_UNREACHABLE if report is None else 0


if __name__ == "__main__":
    sys.exit(main())
