"""Prometheus metrics, one registry per app (so several apps in one process do not collide).

Labels are route templates, methods, statuses and service types only: never an id or a person.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# The Stripe events the webhook endpoint acts on (the metric's bounded `type` values).
PAYMENT_EVENT_TYPES = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "payment_intent.processing",
    "payment_intent.canceled",
)
# Outcomes that page: their series exist from the start at 0, so the first one is an increase.
ALERTING_WEBHOOK_OUTCOMES = ("rejected_unconfirmed", "rejected_mismatch")
# Why a webhook request was refused before it was read (the bounded `reason` values).
SIGNATURE_FAILURE_REASONS = ("missing", "unconfigured", "mismatch", "stale", "malformed")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "permisos_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "permisos_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "permisos_http_requests_in_flight",
            "HTTP requests being answered now (a scrape counts itself).",
            registry=self.registry,
        )
        self.applications_created = Counter(
            "permisos_applications_created",
            "Applications created, by service type.",
            ["service_type"],
            registry=self.registry,
        )
        self.payments = Counter(
            "permisos_payments",
            "Payment outcomes, by method (card, oxxo) and outcome (initiated, requires_action, "
            "succeeded, declined, expired, canceled, rejected_mismatch, error).",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.webhook_events = Counter(
            "permisos_webhook_events",
            "Stripe webhook events received, by type and outcome (applied, ignored_stale, "
            "ignored_unknown, rejected_mismatch, rejected_unconfirmed: Stripe does not confirm "
            "it, provider_unavailable: answered 502 for Stripe to retry, duplicate).",
            ["type", "outcome"],
            registry=self.registry,
        )
        for event_type in PAYMENT_EVENT_TYPES:
            for outcome in ALERTING_WEBHOOK_OUTCOMES:
                self.webhook_events.labels(event_type, outcome)
        self.manual_refunds_flagged = Counter(
            "permisos_payments_manual_refund_required",
            "Payments that succeeded for an application that could no longer take them (already "
            "paid, cancelled, expired or erased), flagged for a refund by hand.",
            registry=self.registry,
        )
        self.webhook_signature_failures = Counter(
            "permisos_webhook_signature_failures",
            "Stripe webhook requests refused, by reason (missing: no Stripe-Signature, "
            "unconfigured: no webhook secret set, mismatch: not signed with our secret, stale: "
            "signed longer ago than the tolerance, malformed: signed but not an event).",
            ["reason"],
            registry=self.registry,
        )
        # From 0, so the first refusal of each kind is an increase for the alert.
        for reason in SIGNATURE_FAILURE_REASONS:
            self.webhook_signature_failures.labels(reason)
