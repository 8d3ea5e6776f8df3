"""The Grafana dashboard: the committed JSON is the builder's output, every query parses (promtool
reads them as recording rules) and selects only metrics the code exports or the rules record,
and it shows what issues #6 and #14 ask for."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from permisos_operator.circuit import CHANGED, UNAVAILABLE
from permisos_operator.portal_gate import HOLD_REASONS
from tests.observability.support import (
    DASHBOARD,
    PROMETHEUS_OWN,
    PROMTOOL,
    dashboard_queries,
    exported_names,
    load_builder,
    metric_names,
    recorded_names,
)


def test_committed_json_is_the_builders_output() -> None:
    builder = load_builder()
    assert DASHBOARD.read_text() == builder.render(), "run: python tools/build_dashboard.py"
    assert builder.main(["--check"]) == 0


def test_every_query_parses(tmp_path: Path) -> None:
    queries = dashboard_queries(json.loads(DASHBOARD.read_text()))
    records = [
        {"record": f"dashboard:query_{i}", "expr": query.concrete("permisos")}
        for i, query in enumerate(queries)
    ]
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    run = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"SUCCESS: {len(records)} rules found" in run.stdout


def test_a_broken_query_fails_the_parse_check(tmp_path: Path) -> None:
    # The check above would be worthless if promtool accepted anything.
    path = tmp_path / "broken.yaml"
    rule = {"record": "dashboard:broken", "expr": "sum by (pool (permisos_queue_depth)"}
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [rule]}]}))
    run = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert run.returncode != 0


def test_queries_select_only_metrics_the_code_exports() -> None:
    known = exported_names() | recorded_names() | PROMETHEUS_OWN
    for query in dashboard_queries(json.loads(DASHBOARD.read_text())):
        names = metric_names(query.expr)
        assert names, f"{query.panel} {query.ref}: selects nothing"
        assert names <= known, f"{query.panel} {query.ref}: {sorted(names - known)}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (pool) (permisos_queue_depth{namespace="$namespace"})', {"permisos_queue_depth"}),
        (
            'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x=~"b|c"}[5m]))) > 1e3',
            {"a_bucket"},
        ),
        ("x / on(a) group_left(b) y offset 5m and ignoring(c) z", {"x", "y", "z"}),
        ("namespace:a:rate5m unless absent(up{job='j'})", {"namespace:a:rate5m", "up"}),
    ],
)
def test_metric_names_reads_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def expressions(dashboard: dict[str, Any], metric: str) -> list[str]:
    return [q.expr for q in dashboard_queries(dashboard) if metric in metric_names(q.expr)]


def test_attempts_failing_at_the_portal_are_the_reasons_the_operator_acts_on() -> None:
    # The circuit breaker's failures, PortalChanged, and the waits the portal asks for, as the
    # operator has them now (the builder imports them: a new one means running it again).
    dashboard = json.loads(DASHBOARD.read_text())
    (panel,) = [p for p in dashboard["panels"] if p["title"] == "Attempts failing at the portal"]
    (expr,) = [t["expr"] for t in panel["targets"]]
    found = re.search(r'reason=~"([^"]*)"', expr)
    assert found is not None, expr
    assert set(found.group(1).split("|")) == UNAVAILABLE | {CHANGED} | set(HOLD_REASONS)


def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    shown = set().union(*(metric_names(q.expr) for q in dashboard_queries(dashboard)))
    required = {
        # queue depth and runner concurrency against the pool limit
        "permisos_queue_depth",
        "permisos_runner_concurrency",
        "permisos_runner_concurrency_limit",
        # attempts by outcome and reason; portal step durations; payment-to-permit time
        "permisos_attempts_total",
        "permisos_portal_step_duration_seconds_bucket",
        "permisos_payment_to_permit_seconds_bucket",
        # API rate, errors, latency; payments by method and outcome
        "permisos_http_requests_total",
        "permisos_http_request_duration_seconds_bucket",
        "permisos_payments_total",
        # issue #14: the pools' portal gate and circuit, the probes, cost per permit
        "permisos_runnerpool_portal_gate",
        "permisos_runnerpool_circuit_state",
        "permisos_portal_probes_total",
        "permisos_permit_runner_seconds_bucket",
        "permisos_permit_runner_seconds_sum",
        "permisos_permit_runner_seconds_count",
    }
    assert required <= shown, sorted(required - shown)
    by_metric = {name: expressions(dashboard, name) for name in required}
    assert any("by (pool, reason)" in e for e in by_metric["permisos_runnerpool_portal_gate"])
    assert any("by (outcome)" in e for e in by_metric["permisos_portal_probes_total"])
    cost = by_metric["permisos_permit_runner_seconds_bucket"]
    for quantile in ("0.5", "0.95"):
        assert any(f"histogram_quantile({quantile}, sum by (phase, le)" in e for e in cost)
    assert any(
        "by (phase)" in e and "_sum" in e and "/" in e
        for e in by_metric["permisos_permit_runner_seconds_count"]
    ), "the mean: sum over count by phase"
    attempts = [q.expr for q in dashboard_queries(dashboard) if "permisos_attempts_total" in q.expr]
    assert any("by (outcome, reason)" in expr for expr in attempts)
    payments = [q.expr for q in dashboard_queries(dashboard) if "permisos_payments_total" in q.expr]
    assert any("by (method, outcome)" in expr for expr in payments)
    # Grafana's sidecar needs a stable uid and the variables the queries use.
    assert dashboard["uid"] == "permisos-overview"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace"}
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel.get("description"), panel["title"]
