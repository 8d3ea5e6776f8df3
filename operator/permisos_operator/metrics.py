"""Prometheus metrics of the operator. Labels are low-cardinality: never a name or an id."""

from __future__ import annotations

import re
from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from permisos.resources import PHASES

_REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
_MAX_REASONS = 50


class PoolSnapshot:
    """What the admission loop last saw of one pool."""

    def __init__(self, queued: int, running: int, limit: int) -> None:
        self.queued, self.running, self.limit = queued, running, limit


class StateCollector(Collector):
    """Gauges computed from the cache at scrape time, so they can never drift from it."""

    def __init__(
        self,
        phases: Callable[[], Tally[str]],
        pools: Callable[[], dict[str, PoolSnapshot]],
    ) -> None:
        self._phases, self._pools = phases, pools

    def collect(self) -> Iterable[GaugeMetricFamily]:
        by_phase = GaugeMetricFamily(
            "permisos_permitrequests", "PermitRequests by phase.", labels=["phase"]
        )
        tally = self._phases()
        for phase in PHASES:
            by_phase.add_metric([phase], tally.get(phase, 0))
        yield by_phase
        depth = GaugeMetricFamily(
            "permisos_queue_depth", "PermitRequests waiting for a runner.", labels=["pool"]
        )
        running = GaugeMetricFamily(
            "permisos_runner_concurrency", "Runner Jobs running now.", labels=["pool"]
        )
        limit = GaugeMetricFamily(
            "permisos_runner_concurrency_limit", "Runner Jobs allowed at once.", labels=["pool"]
        )
        for pool, snap in sorted(self._pools().items()):
            depth.add_metric([pool], snap.queued)
            running.add_metric([pool], snap.running)
            limit.add_metric([pool], snap.limit)
        yield depth
        yield running
        yield limit


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.attempts = Counter(
            "permisos_attempts",
            "Finished attempts by outcome and reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.transitions = Counter(
            "permisos_permitrequest_transitions",
            "Phase transitions, by the phase entered.",
            ["phase"],
            registry=self.registry,
        )
        self.reconcile = Histogram(
            "permisos_reconcile_duration_seconds",
            "Time to reconcile one PermitRequest.",
            registry=self.registry,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.job_start_delay = Histogram(
            "permisos_job_start_delay_seconds",
            "From a PermitRequest's creation to its first Job's creation.",
            registry=self.registry,
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
        )
        self.payment_to_permit = Histogram(
            "permisos_payment_to_permit_seconds",
            "From payment confirmed (spec.paidAt) to permit issued.",
            registry=self.registry,
            buckets=(30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600, 86400),
        )
        self.api_errors = Counter(
            "permisos_operator_api_errors",
            "Failed calls to the Kubernetes API, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self._reasons: set[str] = set()

    def reason_label(self, reason: str) -> str:
        """Reasons are CamelCase codes; anything else, or too many distinct ones, is Other."""
        if not _REASON.match(reason):
            return "Other"
        if reason not in self._reasons and len(self._reasons) >= _MAX_REASONS:
            return "Other"
        self._reasons.add(reason)
        return reason
