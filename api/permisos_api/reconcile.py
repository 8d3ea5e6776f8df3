"""`python -m permisos_api.reconcile [--older-than-minutes N] [--application ID ...]`.

Repairs what webhooks missed.

Re-fetches, with the SDK and under the application's row lock (as the webhooks do), every
payment whose local state looks stuck (not final and unchanged for longer than N minutes; this
includes intents that succeeded at Stripe but not here) and applies what Stripe says through the
same transition function the webhooks use. Then expires
applications whose OXXO voucher lapsed more than the grace days ago. Prints a JSON summary.
Run it from a CronJob; running it twice, or alongside webhooks, is harmless.
"""

from __future__ import annotations

import argparse
import logging
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .command import DATABASE_UNREACHABLE, run_command
from .db import utcnow
from .mail import Mailer
from .metrics import Metrics
from .models import Application, ApplicationStatus, Payment
from .payments.service import apply_intent, deliver, expire_abandoned_applications
from .payments.state import FINAL
from .payments.stripe_client import StripeUnavailable, make_stripe_client, stripe_retriever
from .settings import ApiSettings

log = logging.getLogger("permisos_api.reconcile")

# Intents older than this are left alone: an OXXO voucher lives at most 7 days.
MAX_AGE_DAYS = 14
_WATCHED = (
    ApplicationStatus.draft,
    ApplicationStatus.awaiting_payment,
    ApplicationStatus.payment_pending,
    ApplicationStatus.expired,
)


@dataclass
class Report:
    checked: int = 0
    repaired: int = 0
    paid: int = 0
    errors: int = 0
    expired_applications: int = 0


def stuck_intents(
    db: Session,
    older_than: timedelta,
    now: datetime,
    application_ids: Sequence[uuid.UUID] | None = None,
) -> list[str]:
    query = (
        select(Payment.stripe_payment_intent_id)
        .join(Application, Application.id == Payment.application_id)
        .where(
            Payment.status.not_in(FINAL),
            Payment.updated_at < now - older_than,
            Payment.created_at > now - timedelta(days=MAX_AGE_DAYS),
            Application.status.in_([s.value for s in _WATCHED]),
        )
        .order_by(Payment.updated_at)
    )
    if application_ids is not None:
        query = query.where(Payment.application_id.in_(application_ids))
    return list(db.scalars(query))


def reconcile(
    settings: ApiSettings,
    factory: sessionmaker[Session],
    client: stripe.StripeClient,
    *,
    older_than_minutes: float = 30,
    application_ids: Sequence[uuid.UUID] | None = None,
    mailer: Mailer | None = None,
    metrics: Metrics | None = None,
    now: datetime | None = None,
) -> Report:
    now = now or utcnow()
    report = Report()
    with factory() as db:
        intents = stuck_intents(db, timedelta(minutes=older_than_minutes), now, application_ids)
    retrieve = stripe_retriever(client)
    for intent_id in intents:
        report.checked += 1
        try:
            # Read under the application's lock, like the webhooks: a read taken before a
            # webhook's never overwrites what that webhook applied.
            with factory() as db, db.begin():
                application_id = db.scalar(
                    select(Payment.application_id).where(
                        Payment.stripe_payment_intent_id == intent_id
                    )
                )
                db.get(Application, application_id, with_for_update=True)
                current = retrieve(intent_id)
                if current is None:
                    report.errors += 1
                    log.error("ALERT %s is recorded here but Stripe has no such intent", intent_id)
                    continue
                transition = apply_intent(db, current)
        except StripeUnavailable as exc:
            report.errors += 1
            log.warning("could not fetch %s: %s", intent_id, exc)
            continue
        if transition.changed:
            report.repaired += 1
            log.info(
                "repaired %s: now %s", intent_id, transition.payment and transition.payment.status
            )
        report.paid += transition.became_paid
        deliver(transition, mailer, metrics)
    with factory() as db, db.begin():
        expired = expire_abandoned_applications(
            db, settings.oxxo_expired_application_grace_days, now
        )
    report.expired_applications = len(expired)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m permisos_api.reconcile")
    parser.add_argument(
        "--older-than-minutes",
        type=float,
        default=30,
        help="only payments whose state has not changed for this long (default 30)",
    )
    parser.add_argument(
        "--application",
        action="append",
        type=uuid.UUID,
        metavar="ID",
        help="only this application's payments (repeatable)",
    )
    args = parser.parse_args(argv)
    report = run_command(
        "python -m permisos_api.reconcile",
        lambda settings, factory: reconcile(
            settings,
            factory,
            make_stripe_client(settings, timeout=settings.stripe_read_timeout_seconds),
            older_than_minutes=args.older_than_minutes,
            application_ids=args.application,
            mailer=Mailer(settings),
        ),
    )
    return DATABASE_UNREACHABLE if report is None else 0


if __name__ == "__main__":
    sys.exit(main())
