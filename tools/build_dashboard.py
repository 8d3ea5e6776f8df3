"""Builds the Grafana dashboard of Permisos Digitales as reviewed JSON.

    python tools/build_dashboard.py          # writes charts/permisos/files/dashboards/permisos.json
    python tools/build_dashboard.py --check  # exits 1 if the committed JSON is not this output

Plain dictionaries rather than grafana-foundation-sdk: no new dependency, and the panels and
their PromQL stay readable in one place (the portal's failure reasons are the operator's own,
imported). The chart ships the JSON (templates/monitoring/dashboard-configmap.yaml);
tests/observability checks that it equals this script's output, that every expression parses and
names only exported metrics, and that each one returns data from a real Prometheus scraping the
running API and operator.

Variables: `datasource` (a Prometheus) and `namespace` (the release's namespace, a label the
Prometheus Operator adds); jobs are `permisos-api` and `permisos-operator` (set by the chart's
ServiceMonitors).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from permisos_operator.circuit import CHANGED, UNAVAILABLE
from permisos_operator.portal_gate import HOLD_REASONS

OUTPUT = Path(__file__).resolve().parents[1] / "charts/permisos/files/dashboards/permisos.json"
UID = "permisos-overview"

NS = 'namespace="$namespace"'
# API traffic without the kubelet's probes and Prometheus's own scrapes (as in the rules).
API = f'{NS},route!~"/healthz|/readyz|/metrics"'
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Attempt reasons the operator's portal guard acts on: the failures its circuit breaker counts
# (the portal unavailable), PortalChanged (opens it at once) and the waits the portal asks for.
PORTAL_REASONS = sorted(UNAVAILABLE | {CHANGED} | set(HOLD_REASONS))

Panel = dict[str, Any]


def target(expr: str, legend: str = "__auto", ref: str = "A") -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}


class Layout:
    """Places panels left to right in rows of 24 columns, as Grafana's grid expects."""

    def __init__(self) -> None:
        self.panels: list[Panel] = []
        self._x = self._y = self._height = 0

    def _next_id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "id": self._next_id(),
                "panels": [],
                "title": title,
                "type": "row",
            }
        )
        self._y += 1

    def _newline(self) -> None:
        self._y += self._height
        self._x = self._height = 0

    def add(self, panel: Panel, width: int, height: int) -> None:
        if self._x + width > 24:
            self._newline()
        panel["gridPos"] = {"h": height, "w": width, "x": self._x, "y": self._y}
        panel["id"] = self._next_id()
        self.panels.append(panel)
        self._x += width
        self._height = max(self._height, height)


def timeseries(
    title: str,
    description: str,
    targets: list[tuple[str, str]],
    unit: str = "short",
    stack: bool = False,
) -> Panel:
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "custom": {
                    "drawStyle": "line",
                    "fillOpacity": 20 if stack else 0,
                    "lineWidth": 1,
                    "showPoints": "never",
                    "spanNulls": False,
                    "stacking": {"group": "A", "mode": "normal" if stack else "none"},
                },
                "min": 0,
                "unit": unit,
            },
            "overrides": [],
        },
        "options": {
            "legend": {
                "calcs": ["lastNotNull", "max"],
                "displayMode": "table",
                "placement": "bottom",
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)
        ],
        "title": title,
        "type": "timeseries",
    }


def stat(
    title: str,
    description: str,
    expr: str,
    unit: str,
    thresholds: list[tuple[float | None, str]],
) -> Panel:
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": color, "value": value} for value, color in thresholds],
                },
                "unit": unit,
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "area",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
        "targets": [target(expr, "", "A")],
        "title": title,
        "type": "stat",
    }


def state_timeline(
    title: str,
    description: str,
    targets: list[tuple[str, str]],
    states: list[tuple[int, str, str]] | None = None,
    colors: list[tuple[str, str]] | None = None,
    color: str = "blue",
) -> Panel:
    """Which state each series was in over time: `states` names the values (value, text,
    color); `colors` colors series by a regular expression on their legend, the rest `color`."""
    mappings = []
    if states:
        options = {
            str(value): {"color": shade, "index": i, "text": text}
            for i, (value, text, shade) in enumerate(states)
        }
        mappings.append({"options": options, "type": "value"})
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {
            "defaults": {
                "color": {"fixedColor": color, "mode": "fixed"},
                "custom": {"fillOpacity": 70, "lineWidth": 0},
                "mappings": mappings,
            },
            "overrides": [
                {
                    "matcher": {"id": "byRegexp", "options": pattern},
                    "properties": [
                        {"id": "color", "value": {"fixedColor": shade, "mode": "fixed"}}
                    ],
                }
                for pattern, shade in colors or []
            ],
        },
        "options": {
            "alignValue": "left",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "auto" if states else "never",
            "tooltip": {"mode": "single", "sort": "none"},
        },
        "targets": [
            target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(targets)
        ],
        "title": title,
        "type": "state-timeline",
    }


def panels() -> list[Panel]:
    grid = Layout()
    ok, warn, bad = "green", "orange", "red"

    grid.row("At a glance")
    grid.add(
        stat(
            "API error ratio",
            "5xx answers over all answers, 5 minutes (probes and scrapes excluded). "
            "Alert PermisosApiErrorRateHigh above 5%.",
            f"sum(namespace:permisos_http_errors:ratio_rate5m{{{NS}}})",
            "percentunit",
            [(None, ok), (0.01, warn), (0.05, bad)],
        ),
        4,
        4,
    )
    grid.add(
        stat(
            "API p95 latency",
            "95th percentile of API response times, 5 minutes. Alert PermisosApiLatencyHigh "
            "above 2 s.",
            f"max(namespace:permisos_http_request_duration_seconds:p95_rate5m{{{NS}}})",
            "s",
            [(None, ok), (1, warn), (2, bad)],
        ),
        4,
        4,
    )
    grid.add(
        stat(
            "Waiting for a runner",
            "PermitRequests queued in all pools.",
            f"sum(permisos_queue_depth{{{NS}}})",
            "short",
            [(None, ok), (10, warn), (50, bad)],
        ),
        4,
        4,
    )
    grid.add(
        stat(
            "Payment to permit, p95 (1 h)",
            "95th percentile of the time from payment to permit over the last hour. "
            "Objective: 30 minutes (alert PermisosPaymentToPermitSlow).",
            f"max(namespace:permisos_payment_to_permit_seconds:p95_rate1h{{{NS}}})",
            "s",
            [(None, ok), (900, warn), (1800, bad)],
        ),
        4,
        4,
    )
    grid.add(
        stat(
            "Oldest unfinished permit",
            "Since its payment, the oldest PermitRequest not yet Succeeded, Failed or "
            "Cancelled. Alert PermisosPermitOverdue above 1 h.",
            f"max(permisos_permitrequest_oldest_open_seconds{{{NS}}})",
            "s",
            [(None, ok), (1800, warn), (3600, bad)],
        ),
        4,
        4,
    )
    grid.add(
        stat(
            "Active operator replicas",
            "Operator replicas running the controller; exactly 1 is right (Kopf peering). "
            "Alert PermisosOperatorNoLeader at 0.",
            f'sum(permisos_operator_leader{{{NS},job="permisos-operator"}})',
            "short",
            [(None, bad), (1, ok), (2, warn)],
        ),
        4,
        4,
    )

    grid.row("Permits")
    grid.add(
        timeseries(
            "Queue depth and runners against the pool limit",
            "Per pool: PermitRequests waiting, runner Jobs running, and the pool's limit "
            "(RunnerPool spec.replicas; kubectl scale runnerpool/<pool> --replicas=N).",
            [
                (f"sum by (pool) (permisos_queue_depth{{{NS}}})", "{{pool}} queued"),
                (f"sum by (pool) (permisos_runner_concurrency{{{NS}}})", "{{pool}} running"),
                (f"sum by (pool) (permisos_runner_concurrency_limit{{{NS}}})", "{{pool}} limit"),
            ],
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "PermitRequests by phase",
            "PermitRequests that exist now, by phase (the active operator's view).",
            [(f"sum by (phase) (permisos_permitrequests{{{NS}}})", "{{phase}}")],
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Attempts by outcome and reason",
            "Runner attempts finished per minute: succeeded, retryable or permanent, and why.",
            [
                (
                    "sum by (outcome, reason) "
                    f"(rate(permisos_attempts_total{{{NS}}}[$__rate_interval])) * 60",
                    "{{outcome}} {{reason}}",
                )
            ],
            stack=True,
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Runner failure ratio",
            "Attempts that did not succeed, over 15 minutes. Alert "
            "PermisosRunnerFailureRateHigh above 25%.",
            [(f"sum(namespace:permisos_attempts_failed:ratio_rate15m{{{NS}}})", "failed")],
            unit="percentunit",
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Portal step durations",
            "Time runner attempts spend in each portal step (login, lookup, applicant, vehicle, "
            "confirm, processing, download, upload, and the whole attempt as total).",
            [
                (
                    "histogram_quantile(0.95, sum by (step, le) "
                    f"(rate(permisos_portal_step_duration_seconds_bucket{{{NS}}}"
                    "[$__rate_interval])))",
                    "{{step}} p95",
                ),
                (
                    "histogram_quantile(0.5, sum by (step, le) "
                    f"(rate(permisos_portal_step_duration_seconds_bucket{{{NS}}}"
                    "[$__rate_interval])))",
                    "{{step}} p50",
                ),
            ],
            unit="s",
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Payment to permit time",
            "From payment confirmed to permit issued, over the last hour. Objective: 95% "
            "within 30 minutes.",
            [
                (
                    f"max(namespace:permisos_payment_to_permit_seconds:p95_rate1h{{{NS}}})",
                    "p95",
                ),
                (
                    "histogram_quantile(0.5, sum by (le) "
                    f"(rate(permisos_payment_to_permit_seconds_bucket{{{NS}}}[1h])))",
                    "p50",
                ),
                (
                    f"max by (pool) (permisos_permitrequest_oldest_open_seconds{{{NS}}})",
                    "oldest unfinished ({{pool}})",
                ),
            ],
            unit="s",
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "PermitRequests finished",
            "PermitRequests reaching a final phase per hour (Failed ones need an admin: "
            "retry or refund).",
            [
                (
                    "sum by (phase) (increase(permisos_permitrequest_transitions_total"
                    f'{{{NS},phase=~"Succeeded|Failed|Cancelled"}}[1h]))',
                    "{{phase}}",
                )
            ],
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Time to first runner",
            "From a PermitRequest's creation to its first Job (queueing plus admission).",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(permisos_job_start_delay_seconds_bucket{{{NS}}}[$__rate_interval])))",
                    "p95",
                )
            ],
            unit="s",
        ),
        12,
        8,
    )

    grid.add(
        timeseries(
            "Cost per permit: runner seconds",
            "Runner pod seconds a PermitRequest took over all its attempts, observed when it "
            "reaches a final phase (Succeeded, Failed, Cancelled), over the last hour: median, "
            "95th percentile and mean by that phase. Retries and portal trouble raise it.",
            [
                (
                    "histogram_quantile(0.5, sum by (phase, le) "
                    f"(rate(permisos_permit_runner_seconds_bucket{{{NS}}}[1h])))",
                    "{{phase}} p50",
                ),
                (
                    "histogram_quantile(0.95, sum by (phase, le) "
                    f"(rate(permisos_permit_runner_seconds_bucket{{{NS}}}[1h])))",
                    "{{phase}} p95",
                ),
                (
                    f"sum by (phase) (rate(permisos_permit_runner_seconds_sum{{{NS}}}[1h])) "
                    f"/ sum by (phase) (rate(permisos_permit_runner_seconds_count{{{NS}}}[1h]))",
                    "{{phase}} mean",
                ),
            ],
            unit="s",
        ),
        24,
        8,
    )

    grid.row("Portal")
    grid.add(
        state_timeline(
            "Portal gate by pool",
            "Why each pool may or may not start attempts at the portal (its PortalAvailable "
            "condition): PortalHealthy; the circuit open (PortalUnavailable, PortalChanged, "
            "Probing) or recovering in waves (PortalRecovering); MaintenanceWindow; RateLimited "
            "(the pool's limit or the portal's Retry-After). kubectl describe runnerpool tells "
            "more.",
            [
                (
                    f"max by (pool, reason) (permisos_runnerpool_portal_gate{{{NS}}})",
                    "{{pool}}: {{reason}}",
                )
            ],
            colors=[
                (": PortalHealthy$", ok),
                (": (PortalUnavailable|PortalChanged|Probing)$", bad),
            ],
            color=warn,
        ),
        12,
        8,
    )
    grid.add(
        state_timeline(
            "Portal circuit breaker by pool",
            "Each pool's circuit breaker around the portal: Closed (attempts run), Open (none "
            "starts until a probe passes; alerts PermisosPortalUnavailable after 15 minutes, "
            "PermisosPortalCircuitStuckOpen after 2 hours) or HalfOpen (the queue released in "
            "waves of 1, 2, 4...).",
            [
                (
                    f'max by (pool) (2 * permisos_runnerpool_circuit_state{{{NS},state="Open"}} '
                    f'or permisos_runnerpool_circuit_state{{{NS},state="HalfOpen"}})',
                    "{{pool}}",
                )
            ],
            states=[(0, "Closed", ok), (1, "HalfOpen", warn), (2, "Open", bad)],
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Portal probes by outcome",
            "Probes of the portal finished in the last hour: healthy (the circuit half-opens), "
            "unavailable (it reopens, with a longer cool-down), changed (the pages changed: alert "
            "PermisosPortalChanged).",
            [
                (
                    f"sum by (outcome) (increase(permisos_portal_probes_total{{{NS}}}[1h]))",
                    "{{outcome}}",
                )
            ],
            stack=True,
        ),
        12,
        8,
    )
    reasons = "|".join(PORTAL_REASONS)
    grid.add(
        timeseries(
            "Attempts failing at the portal",
            "Attempts per minute that failed because of the portal: the failures the circuit "
            "breaker counts (5xx, maintenance page, timeouts, aborted downloads), PortalChanged "
            "(opens the circuit at once: alert PermisosPortalChanged) and RateLimited (the pool "
            "waits as the portal asks).",
            [
                (
                    "sum by (reason) (rate(permisos_attempts_total"
                    f'{{{NS},reason=~"{reasons}"}}[$__rate_interval])) * 60',
                    "{{reason}}",
                )
            ],
            stack=True,
        ),
        12,
        8,
    )

    grid.row("Payments")
    grid.add(
        timeseries(
            "Payments by method and outcome",
            "Card and OXXO payments per minute: initiated, requires_action, succeeded, "
            "declined, failed, expired, canceled, rejected_mismatch.",
            [
                (
                    "sum by (method, outcome) "
                    f"(rate(permisos_payments_total{{{NS}}}[$__rate_interval])) * 60",
                    "{{method}} {{outcome}}",
                )
            ],
            stack=True,
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Stripe webhooks",
            "Webhook events per minute by type and outcome, and requests refused for their "
            "signature (alert PermisosWebhookSignatureFailures).",
            [
                (
                    "sum by (type, outcome) "
                    f"(rate(permisos_webhook_events_total{{{NS}}}[$__rate_interval])) * 60",
                    "{{type}} {{outcome}}",
                ),
                (
                    "sum(rate(permisos_webhook_signature_failures_total"
                    f"{{{NS}}}[$__rate_interval])) * 60",
                    "signature refused",
                ),
            ],
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Outbox: paid applications on their way to Kubernetes",
            "Rows waiting for the dispatcher, PermitRequests delivered and failed deliveries "
            "per minute (alert PermisosPermitRequestCreationFailing).",
            [
                (f"max(permisos_outbox_pending{{{NS}}})", "pending"),
                (
                    f"sum(rate(permisos_outbox_dispatched_total{{{NS}}}[$__rate_interval])) * 60",
                    "delivered",
                ),
                (
                    f"sum(rate(permisos_outbox_errors_total{{{NS}}}[$__rate_interval])) * 60",
                    "failed",
                ),
            ],
        ),
        12,
        8,
    )
    grid.add(
        timeseries(
            "Applications and permit notices",
            "Applications created per minute by service type, and applicants told per minute "
            "that their permit is issued or failed.",
            [
                (
                    "sum by (service_type) (rate(permisos_applications_created_total"
                    f"{{{NS}}}[$__rate_interval])) * 60",
                    "created {{service_type}}",
                ),
                (
                    f"sum by (outcome) (rate(permisos_permits_total{{{NS}}}[$__rate_interval]))"
                    " * 60",
                    "permit {{outcome}}",
                ),
            ],
        ),
        12,
        8,
    )

    grid.row("API")
    grid.add(
        timeseries(
            "API requests by route",
            "Requests per second by route template (probes and scrapes excluded).",
            [
                (
                    f"sum by (route) (rate(permisos_http_requests_total{{{API}}}"
                    "[$__rate_interval]))",
                    "{{route}}",
                )
            ],
            unit="reqps",
            stack=True,
        ),
        8,
        8,
    )
    grid.add(
        timeseries(
            "API errors by route",
            "5xx answers per second by route and status: 503 database, 502 Stripe, 500 a bug.",
            [
                (
                    "sum by (route, status) (rate(permisos_http_requests_total"
                    f'{{{API},status=~"5.."}}[$__rate_interval]))',
                    "{{route}} {{status}}",
                ),
                (f"sum(namespace:permisos_http_errors:rate5m{{{NS}}})", "all 5xx (5m)"),
            ],
            unit="reqps",
        ),
        8,
        8,
    )
    grid.add(
        timeseries(
            "API latency by route (p95)",
            "95th percentile of response time by route template.",
            [
                (
                    "histogram_quantile(0.95, sum by (route, le) "
                    f"(rate(permisos_http_request_duration_seconds_bucket{{{API}}}"
                    "[$__rate_interval])))",
                    "{{route}}",
                ),
                (
                    f"max(namespace:permisos_http_request_duration_seconds:p95_rate5m{{{NS}}})",
                    "all routes (5m)",
                ),
            ],
            unit="s",
        ),
        8,
        8,
    )

    grid.row("Operator")
    grid.add(
        timeseries(
            "Operator replicas",
            "Replicas scraped (up) and replicas running the controller (exactly one should).",
            [
                (f'sum(up{{{NS},job="permisos-operator"}})', "up"),
                (f'sum(permisos_operator_leader{{{NS},job="permisos-operator"}})', "active"),
            ],
        ),
        8,
        8,
    )
    grid.add(
        timeseries(
            "Reconcile duration",
            "Time to reconcile one PermitRequest.",
            [
                (
                    "histogram_quantile(0.95, sum by (le) "
                    f"(rate(permisos_reconcile_duration_seconds_bucket{{{NS}}}"
                    "[$__rate_interval])))",
                    "p95",
                )
            ],
            unit="s",
        ),
        8,
        8,
    )
    grid.add(
        timeseries(
            "Operator errors by operation",
            "Failed calls per minute: mirror is the database, the others the Kubernetes API "
            "(alert PermisosOperatorErrors).",
            [
                (
                    "sum by (operation) (rate(permisos_operator_api_errors_total"
                    f"{{{NS}}}[$__rate_interval])) * 60",
                    "{{operation}}",
                )
            ],
        ),
        8,
        8,
    )
    return grid.panels


def dashboard() -> dict[str, Any]:
    return {
        "annotations": {"list": []},
        "description": "Permisos Digitales: permits, the portal, payments, the API and the "
        "operator.",
        "editable": False,
        "graphTooltip": 1,
        "links": [],
        "panels": panels(),
        "refresh": "30s",
        "schemaVersion": 39,
        "tags": ["permisos"],
        "templating": {
            "list": [
                {
                    "current": {},
                    "hide": 0,
                    "label": "Data source",
                    "name": "datasource",
                    "query": "prometheus",
                    "refresh": 1,
                    "type": "datasource",
                },
                {
                    "current": {},
                    "datasource": DATASOURCE,
                    "definition": 'label_values(up{job=~"permisos-api|permisos-operator"}, '
                    "namespace)",
                    "hide": 0,
                    "label": "Namespace",
                    "name": "namespace",
                    "query": {
                        "query": 'label_values(up{job=~"permisos-api|permisos-operator"}, '
                        "namespace)",
                        "refId": "namespace",
                    },
                    "refresh": 2,
                    "sort": 1,
                    "type": "query",
                },
            ]
        },
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "utc",
        "title": "Permisos Digitales",
        "uid": UID,
        "version": 1,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is out of date: run python tools/build_dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
