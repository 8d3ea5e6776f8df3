"""What the observability tests share: the rules, the dashboard's queries, the metric names the
code exports, and a small PromQL reader that lists the metric names an expression selects."""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/permisos"
RULES = CHART / "files/prometheus-rules.yaml"
RULES_TEST = Path(__file__).with_name("rules_test.yaml")
DASHBOARD = CHART / "files/dashboards/permisos.json"
BUILDER = ROOT / "tools/build_dashboard.py"
RUNBOOKS = ROOT / "docs/runbooks.md"

# Debian's `prometheus` package; the tests start their own server, never the packaged service.
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

# What Grafana substitutes in the dashboard's queries, for running them outside Grafana.
RATE_INTERVAL = "5m"
# Prometheus's own series that the rules and the dashboard may use.
PROMETHEUS_OWN = frozenset({"up"})


def load_builder() -> ModuleType:
    """tools/build_dashboard.py, imported from its path (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("build_dashboard", BUILDER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return data


def rule_list() -> list[dict[str, Any]]:
    return [rule for group in rules()["groups"] for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rule_list() if "alert" in rule]


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rule_list() if "record" in rule}


@dataclass(frozen=True)
class Query:
    """One target of one dashboard panel."""

    panel: str
    ref: str
    expr: str  # as Grafana holds it, with $namespace and $__rate_interval

    def concrete(self, namespace: str) -> str:
        return self.expr.replace("$__rate_interval", RATE_INTERVAL).replace("$namespace", namespace)


def dashboard_queries(dashboard: dict[str, Any]) -> list[Query]:
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append(Query(panel["title"], target["refId"], target["expr"]))
    return found


# --- PromQL: the metric names an expression selects ----------------------------------------------

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring"}
    | {"group_left", "group_right", "inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """Names of the series an expression selects: identifiers that are not functions,
    aggregations, keywords, label names (in grouping clauses and matchers) or number parts."""
    text = _STRINGS.sub('""', expr)
    text = _GROUPING.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isalnum() or before in "._":
            continue  # the unit of a duration (5m) or the exponent of a number (1e3)
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


# --- what the code exports ----------------------------------------------------------------------

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def _sample_names(registry: CollectorRegistry) -> Iterator[str]:
    for family in registry.collect():
        for suffix in _SUFFIXES.get(family.type, ()):
            yield family.name + suffix


def api_registry() -> CollectorRegistry:
    """The registry of a real API app (its own metrics and the dispatcher's)."""
    from permisos_api.app import create_app
    from permisos_api.settings import ApiSettings

    # Nothing connects: building the app only creates the engine and the registry.
    app = create_app(ApiSettings(database_url="postgresql+psycopg://nobody@127.0.0.1:9/none"))
    services = app.state.services
    services.engine.dispose()
    registry: CollectorRegistry = services.metrics.registry
    return registry


def operator_registry() -> CollectorRegistry:
    """The operator's registry with its scrape-time collector, as __main__ assembles it."""
    from permisos_operator.metrics import OperatorMetrics, PoolSnapshot, StateCollector

    metrics = OperatorMetrics()
    metrics.registry.register(
        StateCollector(
            entries=list,
            pools=lambda: {("permisos", "default"): PoolSnapshot(1, 1, 2)},
            leading=lambda: True,
        )
    )
    return metrics.registry


def exported_names() -> set[str]:
    return {*_sample_names(api_registry()), *_sample_names(operator_registry())}
