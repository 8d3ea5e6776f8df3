"""Paying an application: who may and when, then the payment itself (`service.create_payment`)
and its mails. The JSON API (`routes/payments.py`) and the web page (`web/paying.py`) both pay
through here."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from ..context import Services
from ..models import Application
from ..problems import FieldError, ProblemError, validation_problem
from . import mails
from .cancelling import cancel_or_refuse
from .service import PAYABLE, Created, Mail, Transition, create_payment, deliver


def pay_application(
    db: Session,
    svc: Services,
    application_id: uuid.UUID,
    payer_id: uuid.UUID,
    method: str,
    payment_method: str | None = None,
    return_url: str | None = None,
    *,
    admin_may_see: bool = False,
) -> tuple[Application, Created]:
    """Creates the payment and commits it; `payment-declined` when the card was refused (the
    declined payment is recorded first). Someone else's application is `not-found` (an admin's
    view of it is `forbidden`: only the applicant pays)."""
    app = db.get(Application, application_id, with_for_update=True)
    if app is None or (app.owner_id != payer_id and not admin_may_see):
        raise ProblemError("not-found", "No such application.")
    if app.owner_id != payer_id:
        raise ProblemError("forbidden", "Only the applicant can pay an application.")
    if app.status not in PAYABLE:
        raise ProblemError(
            "invalid-state", f"An application in status {app.status} is not payable."
        )
    if method == "oxxo" and payment_method:
        raise validation_problem(
            [FieldError(field="payment_method", rule="card_only", detail="Only for cards")]
        )
    if return_url and not payment_method:
        raise validation_problem(
            [
                FieldError(
                    field="return_url",
                    rule="needs_payment_method",
                    detail="Only with a card payment_method that the API confirms",
                )
            ]
        )
    moved = []
    if method == "oxxo":
        # A card form left open in a browser could still take money besides the voucher's.
        moved = cancel_or_refuse(db, svc, app, method="card")
    created = create_payment(db, svc.stripe, svc.settings, app, method, payment_method, return_url)
    db.commit()
    for transition in [*moved, created.transition]:
        deliver(transition, svc.mailer, svc.metrics)
    if created.payment.voucher_number:
        _mail_voucher(svc, app, created)
    if created.declined:
        snap = created.snapshot
        code = snap.decline_code or snap.error_code or "declined"
        raise ProblemError("payment-declined", f"The card was declined ({code}).")
    return app, created


def _mail_voucher(svc: Services, app: Application, created: Created) -> None:
    """The voucher by mail too (its reference and expiry), as a transition's mail is sent."""
    mail = Mail(app.email, "oxxo_voucher", mails.oxxo_voucher(app, created.payment))
    deliver(Transition(outcome="applied", mail=mail), svc.mailer, None)
