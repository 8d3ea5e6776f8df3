"""The operator metrics added for the alerts and the dashboard: leadership, the oldest unfinished
request, portal step durations, and counters that exist from the start."""

from __future__ import annotations

import ast
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from permisos_operator.indexes import Entry, entry_of
from permisos_operator.metrics import (
    API_OPERATIONS,
    OperatorMetrics,
    PoolSnapshot,
    StateCollector,
)
from permisos_operator.timeutil import format_time
from tests.observability.support import ROOT


def entry(
    pool: str, phase: str | None, created: datetime, paid: datetime | None = None, **meta: Any
) -> tuple[tuple[str, str], Entry]:
    """What the operator's `requests_by_pool` index holds for such a request."""
    body: dict[str, Any] = {
        "metadata": {"name": "x", "creationTimestamp": format_time(created), **meta},
        "spec": {"pool": pool},
    }
    if paid is not None:
        body["spec"]["paidAt"] = format_time(paid)
    if phase is not None:
        body["status"] = {"phase": phase}
    return ("permisos", pool), entry_of(body)


def collect(collector: StateCollector) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def test_leader_gauge_follows_the_peering() -> None:
    running = False
    registry = collect(StateCollector(entries=list, pools=dict, leading=lambda: running))
    assert registry.get_sample_value("permisos_operator_leader") == 0
    running = True
    assert registry.get_sample_value("permisos_operator_leader") == 1


def test_oldest_open_request_counts_from_payment_and_skips_finished_ones() -> None:
    now = datetime.now(UTC)
    entries = [
        # Paid two hours ago, created an hour ago (the outbox waited): the payment counts.
        entry("default", "Retrying", now - timedelta(hours=1), now - timedelta(hours=2)),
        entry("default", "Queued", now - timedelta(minutes=5)),
        # Finished or going away: nobody waits for them.
        entry("default", "Succeeded", now - timedelta(days=1)),
        entry("default", "Failed", now - timedelta(days=1)),
        entry("default", "Running", now - timedelta(days=1), deletionTimestamp="x"),
        # A pool whose admission has not run yet, and a request with no status yet.
        entry("fast", None, now - timedelta(minutes=10)),
    ]
    pools = {
        ("permisos", "default"): PoolSnapshot(1, 1, 2),
        ("permisos", "idle"): PoolSnapshot(0, 0, 2),
    }
    registry = collect(
        StateCollector(entries=lambda: entries, pools=lambda: pools, leading=lambda: True)
    )

    def age(pool: str) -> float:
        value = registry.get_sample_value(
            "permisos_permitrequest_oldest_open_seconds", {"pool": pool}
        )
        assert value is not None, pool
        return value

    assert 7195 <= age("default") <= 7260
    assert 595 <= age("fast") <= 660
    assert age("idle") == 0
    phases = {"phase": "Pending"}
    assert registry.get_sample_value("permisos_permitrequests", phases) == 1


def test_pools_of_one_name_in_two_namespaces_add_up() -> None:
    """A cluster-wide operator: one series per pool name (namespaces stay out of the labels)."""
    pools = {("a", "default"): PoolSnapshot(3, 2, 2), ("b", "default"): PoolSnapshot(1, 1, 4)}
    registry = collect(StateCollector(entries=list, pools=lambda: pools, leading=lambda: True))
    labels = {"pool": "default"}
    assert registry.get_sample_value("permisos_queue_depth", labels) == 4
    assert registry.get_sample_value("permisos_runner_concurrency", labels) == 3
    assert registry.get_sample_value("permisos_runner_concurrency_limit", labels) == 6


def test_portal_steps_are_observed_with_bounded_labels() -> None:
    metrics = OperatorMetrics()
    metrics.observe_steps("succeeded", {"login": 1.5, "processing": 40.0, "total": 45.0})
    metrics.observe_steps("retryable", {"login": -1.0, "upload": math.nan, "Bad Name": 2.0})

    def count(step: str, outcome: str) -> float | None:
        return metrics.registry.get_sample_value(
            "permisos_portal_step_duration_seconds_count", {"step": step, "outcome": outcome}
        )

    assert count("login", "succeeded") == 1 and count("processing", "succeeded") == 1
    assert count("login", "retryable") is None and count("upload", "retryable") is None
    assert count("other", "retryable") == 1
    for i in range(40):
        metrics.observe_steps("succeeded", {f"step{i}": 1.0})
    steps = {
        s.labels["step"]
        for family in metrics.registry.collect()
        if family.name == "permisos_portal_step_duration_seconds"
        for s in family.samples
    }
    assert len(steps) <= 21 and "other" in steps  # at most 20 names, then `other`


def test_counters_the_alerts_rate_exist_from_the_start() -> None:
    registry = OperatorMetrics().registry
    failed = {"phase": "Failed"}
    assert registry.get_sample_value("permisos_permitrequest_transitions_total", failed) == 0
    for operation in API_OPERATIONS:
        labels = {"operation": operation}
        assert registry.get_sample_value("permisos_operator_api_errors_total", labels) == 0
    # PermisosPortalChanged: the first attempt that meets a changed page is an increase.
    changed = {"outcome": "retryable", "reason": "PortalChanged"}
    assert registry.get_sample_value("permisos_attempts_total", changed) == 0
    for outcome in ("healthy", "unavailable", "changed"):
        assert registry.get_sample_value("permisos_portal_probes_total", {"outcome": outcome}) == 0
    # The cost-per-permit panel rates this histogram: the first Failed is an increase too.
    for final in ("Succeeded", "Failed", "Cancelled"):
        labels = {"phase": final}
        assert registry.get_sample_value("permisos_permit_runner_seconds_count", labels) == 0


def test_portal_changed_is_never_counted_as_other() -> None:
    metrics = OperatorMetrics()
    for i in range(60):
        metrics.reason_label(f"Reason{i}")
    assert metrics.reason_label("Reason99") == "Other"
    assert metrics.reason_label("PortalChanged") == "PortalChanged"


def test_api_operations_are_the_ones_the_operator_counts() -> None:
    used = set()
    for path in (ROOT / "operator/permisos_operator").glob("*.py"):
        if path.name == "metrics.py":
            continue  # where API_OPERATIONS itself is spelled out
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "labels"
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "api_errors"
            ):
                [arg] = node.args
                assert isinstance(arg, ast.Constant), f"{path}: a computed operation label"
                used.add(arg.value)
    assert used == set(API_OPERATIONS)
