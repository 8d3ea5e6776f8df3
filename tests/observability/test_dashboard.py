"""The Grafana dashboard: the committed JSON is the builder's output, every query parses (promtool
reads them as recording rules) and selects only metrics the code exports or the rules record,
and it shows what issue #6 asks for."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

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
    }
    assert required <= shown, sorted(required - shown)
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
