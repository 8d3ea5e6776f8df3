"""Prometheus metrics of the operator. Labels are low-cardinality: never a name or an id."""

from __future__ import annotations

import math
import re
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from permisos.resources import PHASES, TERMINAL_PHASES
from permisos_operator.circuit import CHANGED
from permisos_operator.indexes import Entry, Key
from permisos_operator.portal_gate import OPEN, Gate
from permisos_operator.timeutil import parse_time

_REASON = re.compile(r"^[A-Z][A-Za-z0-9]{0,63}$")
_MAX_REASONS = 50
# The runner names its steps (login, lookup, applicant, vehicle, confirm, processing, download,
# upload, total); anything else, or too many distinct ones, is `other`.
_STEP = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_MAX_STEPS = 20
# What `api_errors` counts (the `operation` label); each starts at 0 so rate() works from boot.
API_OPERATIONS = ("admission", "reconcile")


class PoolSnapshot:
    """What a pool's admission last saw."""

    def __init__(
        self, queued: int, running: int, limit: int, gate: Gate = OPEN, circuit: str = "Closed"
    ) -> None:
        self.queued, self.running, self.limit = queued, running, limit
        self.gate, self.circuit = gate, circuit


class StateCollector(Collector):
    """Gauges computed at scrape time from the indexes and the admissions' last passes, so they
    can never drift from what the operator knows.

    Pools are labelled by name alone (a cluster-wide operator adds up same-named pools of
    different namespaces): names of namespaces and requests stay out of the labels.
    """

    def __init__(
        self,
        *,
        entries: Callable[[], Iterable[tuple[Key, Entry]]],
        pools: Callable[[], Mapping[Key, PoolSnapshot]],
        leading: Callable[[], bool],
    ) -> None:
        self._entries, self._pools, self._leading = entries, pools, leading

    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "permisos_operator_leader",
            "1 while this replica is the active one of the peering, else 0.",
            value=1 if self._leading() else 0,
        )
        tally: Tally[str] = Tally()
        oldest: dict[str, datetime | None] = {}
        for (_, pool), entry in self._entries():
            tally[entry.phase or "Pending"] += 1
            since = parse_time(entry.open_since) if entry.open_since else None
            current = oldest.get(pool)
            if since is not None and (current is None or since < current):
                oldest[pool] = since
            else:
                oldest.setdefault(pool, current)
        by_phase = GaugeMetricFamily(
            "permisos_permitrequests", "PermitRequests by phase.", labels=["phase"]
        )
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
        snapshots: dict[str, list[PoolSnapshot]] = {}
        for (_, pool), snap in self._pools().items():
            snapshots.setdefault(pool, []).append(snap)
        for pool, snaps in sorted(snapshots.items()):
            depth.add_metric([pool], sum(s.queued for s in snaps))
            running.add_metric([pool], sum(s.running for s in snaps))
            limit.add_metric([pool], sum(s.limit for s in snaps))
            oldest.setdefault(pool, None)  # known pools report 0: no series means no operator
        yield depth
        yield running
        yield limit
        gates = GaugeMetricFamily(
            "permisos_runnerpool_portal_gate",
            "1 for the reason of the pool's PortalAvailable condition: whether it may start "
            "attempts at the portal now (PortalHealthy) or why not.",
            labels=["pool", "reason"],
        )
        for pool, snaps in sorted(snapshots.items()):
            for reason in sorted({s.gate.reason for s in snaps}):
                gates.add_metric([pool, reason], 1)
        yield gates
        circuits = GaugeMetricFamily(
            "permisos_runnerpool_circuit_state",
            "1 for the state of the pool's circuit breaker around the portal: Closed, Open or "
            "HalfOpen.",
            labels=["pool", "state"],
        )
        for pool, snaps in sorted(snapshots.items()):
            states = {s.circuit for s in snaps}
            for state in ("Closed", "Open", "HalfOpen"):
                circuits.add_metric([pool, state], 1 if state in states else 0)
        yield circuits
        family = GaugeMetricFamily(
            "permisos_permitrequest_oldest_open_seconds",
            "Age of the oldest PermitRequest not yet in a final phase, counted from its payment "
            "(spec.paidAt, else its creation); 0 when none is open.",
            labels=["pool"],
        )
        now = datetime.now(UTC)
        for pool, since in sorted(oldest.items()):
            family.add_metric([pool], max(0.0, (now - since).total_seconds()) if since else 0.0)
        yield family


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.probes = Counter(
            "permisos_portal_probes",
            "Finished probes of the portal by the pools' circuit breakers, by outcome "
            "(healthy, unavailable, changed).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in ("healthy", "unavailable", "changed"):  # at 0 from the start, for alerts
            self.probes.labels(outcome)
        self.attempts = Counter(
            "permisos_attempts",
            "Finished attempts by outcome and reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        # At 0 from the start, for alert PermisosPortalChanged: increase() cannot see the first
        # one in a series that is born at 1.
        self.attempts.labels("retryable", CHANGED)
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
        self.permit_runner_seconds = Histogram(
            "permisos_permit_runner_seconds",
            "What a PermitRequest cost in runner pods: the pod seconds of all its attempts, "
            "observed when it reaches a final phase, by that phase (Succeeded, Failed, "
            "Cancelled).",
            ["phase"],
            registry=self.registry,
            buckets=(5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600),
        )
        # Each final phase from 0, so rate() sees the first one too (cost per permit panel).
        for final in sorted(TERMINAL_PHASES):
            self.permit_runner_seconds.labels(final)
        self.api_errors = Counter(
            "permisos_operator_api_errors",
            "Failed calls to the Kubernetes API, by operation.",
            ["operation"],
            registry=self.registry,
        )
        for operation in API_OPERATIONS:
            self.api_errors.labels(operation)
        self._reasons: set[str] = {CHANGED}  # counted above, never Other
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
