"""The chart's monitoring objects, rendered by the real Helm engine: the PrometheusRule carries the
rules file untouched (the alerts' own {{ }} templates included), the ServiceMonitors select the
chart's Services by their port names, the dashboard ConfigMap carries the JSON with Grafana's
sidecar label, and none of it renders unless enabled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.observability.support import CHART, DASHBOARD, RULES

# What the chart needs from any install (the other templates' required values).
BASE: dict[str, Any] = {"portal": {"url": "https://portal.example"}}
ENABLED: dict[str, Any] = {
    **BASE,
    "monitoring": {
        "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}},
        "prometheusRule": {"enabled": True, "labels": {"role": "alert-rules"}},
        "dashboard": {"enabled": True, "labels": {"grafana_dashboard": "1", "team": "ops"}},
    },
}


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(str(CHART)) as chart:
        manifests = chart.render(values=values, name="prod", namespace="permisos")
    docs: list[dict[str, Any]] = []
    for path, text in manifests.items():
        if not path.endswith(".yaml"):
            continue  # NOTES.txt
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


@pytest.fixture(scope="module")
def enabled() -> list[dict[str, Any]]:
    return render(ENABLED)


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_prometheus_rule_is_the_rules_file_verbatim(enabled: list[dict[str, Any]]) -> None:
    rule = only(enabled, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["namespace"] == "permisos"
    assert rule["metadata"]["labels"]["role"] == "alert-rules"
    assert rule["metadata"]["labels"]["app.kubernetes.io/instance"] == "prod"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    # Helm did not evaluate the alerts' templates: Prometheus must see them.
    texts = list(_strings(rule["spec"]))
    assert any("{{ $labels.namespace }}" in t for t in texts)
    assert any("{{ $value | humanizePercentage }}" in t for t in texts)


def test_service_monitors_scrape_the_api_and_operator_services(
    enabled: list[dict[str, Any]],
) -> None:
    services = [d for d in enabled if d["kind"] == "Service"]
    for component, port, job in (
        ("api", "http", "permisos-api"),
        ("operator", "metrics", "permisos-operator"),
    ):
        monitor = only(enabled, "ServiceMonitor", f"prod-permisos-{component}")
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert monitor["metadata"]["labels"]["release"] == "kps"
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector["app.kubernetes.io/component"] == component
        assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["permisos"]}
        matched = [
            s for s in services if selector.items() <= (s["metadata"].get("labels") or {}).items()
        ]
        assert len(matched) == 1, f"{component}: {[s['metadata']['name'] for s in matched]}"
        [endpoint] = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in matched[0]["spec"]["ports"]}
        assert endpoint["port"] == port and endpoint["path"] == "/metrics"
        assert endpoint["interval"] == "15s"
        # The rules and the dashboard select these jobs.
        assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": job}]


def test_dashboard_config_map_carries_the_json_for_the_sidecar(
    enabled: list[dict[str, Any]],
) -> None:
    config = only(enabled, "ConfigMap", "prod-permisos-dashboard")
    labels = config["metadata"]["labels"]
    assert labels["grafana_dashboard"] == "1" and labels["team"] == "ops"
    assert json.loads(config["data"]["permisos.json"]) == json.loads(DASHBOARD.read_text())
    # Grafana's legend templates survive Helm.
    assert "{{pool}} queued" in config["data"]["permisos.json"]


def test_nothing_is_rendered_unless_enabled() -> None:
    kinds = {d["kind"] for d in render(BASE)}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    names = {d["metadata"]["name"] for d in render(BASE) if d["kind"] == "ConfigMap"}
    assert "prod-permisos-dashboard" not in names
