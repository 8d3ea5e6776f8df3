"""Prometheus metrics of the operator. Labels are low-cardinality: never a name or an id."""

from __future__ import annotations

import math
import re
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from permisos.resources import PHASES, TERMINAL_PHASES
from permisos_operator.timeutil import parse_time

_REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
_MAX_REASONS = 50
# The runner names its steps (login, lookup, applicant, vehicle, confirm, processing, download,
# upload, total); anything else, or too many distinct ones, is `other`.
_STEP = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_STEPS = 20
# What `api_errors` counts (the `operation` label); each starts at 0 so rate() works from boot.
API_OPERATIONS = ("admission", "controller", "event", "mirror", "reconcile", "resync")


class PoolSnapshot:
    """What the admission loop last saw of one pool."""

    def __init__(self, queued: int, running: int, limit: int) -> None:
        self.queued, self.running, self.limit = queued, running, limit


def _open_since(request: Mapping[str, Any]) -> datetime | None:
    """When an unfinished request's customer started waiting: payment, else creation."""
    meta = request.get("metadata") or {}
    phase = (request.get("status") or {}).get("phase") or "Pending"
    if phase in TERMINAL_PHASES or meta.get("deletionTimestamp"):
        return None
    stamp = (request.get("spec") or {}).get("paidAt") or meta.get("creationTimestamp")
    return parse_time(stamp) if stamp else None


class StateCollector(Collector):
    """Gauges computed from the cache at scrape time, so they can never drift from it."""

    def __init__(
        self,
        phases: Callable[[], Tally[str]],
        pools: Callable[[], dict[str, PoolSnapshot]],
        *,
        requests: Callable[[], Iterable[Mapping[str, Any]]],
        leading: Callable[[], bool],
    ) -> None:
        self._phases, self._pools = phases, pools
        self._requests, self._leading = requests, leading

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "permisos_operator_leader",
            "1 while this replica's controller runs (the active peer), else 0.",
            value=1 if self._leading() else 0,
        )
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
        snapshots = self._pools()
        for pool, snap in sorted(snapshots.items()):
            depth.add_metric([pool], snap.queued)
            running.add_metric([pool], snap.running)
            limit.add_metric([pool], snap.limit)
        yield depth
        yield running
        yield limit
        yield self._oldest_open(snapshots)

    def _oldest_open(self, snapshots: dict[str, PoolSnapshot]) -> GaugeMetricFamily:
        # Known pools report 0 when nothing waits, so "no series" always means "no operator".
        oldest: dict[str, datetime | None] = dict.fromkeys(snapshots)
        for request in self._requests():
            since = _open_since(request)
            if since is None:
                continue
            pool = str((request.get("spec") or {}).get("pool") or "default")
            current = oldest.get(pool)
            oldest[pool] = since if current is None else min(current, since)
        family = GaugeMetricFamily(
            "permisos_permitrequest_oldest_open_seconds",
            "Age of the oldest PermitRequest not yet in a final phase, counted from its payment "
            "(spec.paidAt, else its creation); 0 when none is open.",
            labels=["pool"],
        )
        now = datetime.now(UTC)
        for pool, since in sorted(oldest.items()):
            family.add_metric([pool], max(0.0, (now - since).total_seconds()) if since else 0.0)
        return family


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
        # Every phase from 0, so increase() also counts the first Failed after a restart.
        for phase in PHASES:
            self.transitions.labels(phase)
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
        self.portal_steps = Histogram(
            "permisos_portal_step_duration_seconds",
            "Time a runner attempt spent in each portal step (from its result's timings), by "
            "step and the attempt's outcome.",
            ["step", "outcome"],
            registry=self.registry,
            buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
        )
        self.api_errors = Counter(
            "permisos_operator_api_errors",
            "Failed calls to the Kubernetes API, by operation.",
            ["operation"],
            registry=self.registry,
        )
        for operation in API_OPERATIONS:
            self.api_errors.labels(operation)
        self._reasons: set[str] = set()
        self._steps: set[str] = set()

    def reason_label(self, reason: str) -> str:
        """Reasons are CamelCase codes; anything else, or too many distinct ones, is Other."""
        if not _REASON.match(reason):
            return "Other"
        if reason not in self._reasons and len(self._reasons) >= _MAX_REASONS:
            return "Other"
        self._reasons.add(reason)
        return reason

    def step_label(self, step: str) -> str:
        """Step names are the runner's lowercase words; anything else, or too many, is other."""
        if not _STEP.match(step):
            return "other"
        if step not in self._steps and len(self._steps) >= _MAX_STEPS:
            return "other"
        self._steps.add(step)
        return step

    def observe_steps(self, outcome: str, timings: Mapping[str, float]) -> None:
        """Records the step durations one finished attempt reported."""
        for step, seconds in timings.items():
            if math.isfinite(seconds) and seconds >= 0:
                self.portal_steps.labels(self.step_label(step), outcome).observe(seconds)
