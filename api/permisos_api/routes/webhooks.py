"""POST /v1/webhooks/stripe: Stripe's signed events, confirmed with Stripe, answered fast.

The signature is checked on the raw body; the work is one database transaction in a worker
thread, around one retrieval of the event's PaymentIntent from Stripe; mail goes out after the
answer.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker

from ..deps import Svc
from ..payments.service import deliver
from ..payments.stripe_client import Retrieve, StripeUnavailable, stripe_retriever
from ..payments.webhooks import Processed, SignatureError, metric_type, process_event, verify
from ..problems import ProblemError, problem_responses
from ..schemas import WebhookAck

log = logging.getLogger("permisos_api.webhooks")
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def _process(
    factory: sessionmaker[Session], event: dict[str, object], retrieve: Retrieve
) -> Processed:
    with factory() as db:
        return process_event(db, event, retrieve)


@router.post(
    "/stripe",
    response_model=WebhookAck,
    summary="Stripe webhook endpoint",
    description="Verifies `Stripe-Signature` on the raw body (400 `invalid-signature` when "
    "missing, wrong or older than the tolerance), deduplicates by event id, and for "
    "payment_intent.succeeded, payment_failed, requires_action, processing and canceled "
    "retrieves the PaymentIntent from Stripe and applies what Stripe reports, never the "
    "payload. An intent Stripe does not have, or a payload that contradicts it, is recorded as "
    "`rejected_unconfirmed` and changes nothing. 502 `payment-provider-error` (with "
    "Retry-After) when Stripe cannot be asked: the event is not recorded, and Stripe sends it "
    "again.",
    responses=problem_responses(400, 502, 503),
)
async def stripe_webhook(request: Request, svc: Svc, background: BackgroundTasks) -> WebhookAck:
    payload = await request.body()
    settings = svc.settings
    try:
        event = verify(
            payload,
            request.headers.get("stripe-signature"),
            settings.stripe_webhook_secret.get_secret_value(),
            settings.stripe_webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        svc.metrics.webhook_signature_failures.labels(exc.reason).inc()
        log.warning("webhook refused: %s", exc.reason)
        raise ProblemError("invalid-signature") from None
    try:
        processed = await run_in_threadpool(
            _process, request.app.state.sessionmaker, event, stripe_retriever(svc.stripe_reads)
        )
    except StripeUnavailable as exc:
        svc.metrics.webhook_events.labels(
            metric_type(str(event.get("type") or "")), "provider_unavailable"
        ).inc()
        log.warning("webhook not confirmed, Stripe unreachable: %s", exc)
        raise ProblemError(
            "payment-provider-error",
            "Stripe could not be asked to confirm the event; deliver it again.",
            headers={"Retry-After": "30"},
        ) from None
    svc.metrics.webhook_events.labels(metric_type(processed.event_type), processed.outcome).inc()
    if processed.transition is not None:
        background.add_task(deliver, processed.transition, svc.mailer, svc.metrics)
    return WebhookAck(outcome=processed.outcome)
