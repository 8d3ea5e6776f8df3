"""values.yaml is documented value by value, and values.schema.json refuses wrong values clearly."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import pytest
import yaml

from .conftest import CHART, VALUE_FILES, values_of

# Maps documented as one value (their inner keys are free-form or a fixed shape).
MAP_VALUED = {"resources", "labels", "annotations", "podAnnotations", "nodeSelector", "affinity"}
# A row of the README's "## Values" tables: | `key` | type | `default (JSON)` | meaning |
ROW = re.compile(r"^\| `([^`]+)` \| (string|integer|number|boolean|list|map) \| `(.*)` \| (.+) \|$")
MONITORING_BLOCK = """monitoring:
  serviceMonitor:
    enabled: false
    interval: 30s
    labels: {}
  prometheusRule:
    enabled: false
    labels: {}
  dashboard:
    enabled: false
    labels:
      grafana_dashboard: "1"
"""


def leaves(values: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value and key not in MAP_VALUED:
            yield from leaves(value, path)
        else:
            yield path, value


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "map"


def documented() -> dict[str, tuple[str, str, str]]:
    rows = {}
    readme = (CHART / "README.md").read_text()
    for line in readme.split("\n## Values\n", 1)[1].splitlines():
        match = ROW.match(line)
        if match:
            key, kind, default, meaning = match.groups()
            assert key not in rows, f"{key} is documented twice"
            rows[key] = (kind, default, meaning)
    return rows


def test_every_value_is_documented_with_its_type_default_and_meaning() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = documented()
    problems = []
    for path, value in leaves(values):
        if path not in rows:
            problems.append(f"{path}: not in README.md")
            continue
        kind, default, meaning = rows[path]
        if kind != type_name(value):
            problems.append(f"{path}: README says {kind}, values.yaml has {type_name(value)}")
        if json.loads(default) != value:
            problems.append(f"{path}: README default {default}, values.yaml {value!r}")
        if len(meaning.strip()) < 5:
            problems.append(f"{path}: no meaning")
    documented_paths = {path for path, _ in leaves(values)}
    problems += [f"{key}: documented but not a value" for key in set(rows) - documented_paths]
    assert problems == []


def test_values_end_with_the_monitoring_block() -> None:
    assert (CHART / "values.yaml").read_text().endswith(MONITORING_BLOCK)


@pytest.mark.parametrize("name", list(VALUE_FILES))
def test_the_schema_accepts_the_shipped_values(chart: helm.Chart, name: str) -> None:
    chart.validate_schema(values_of(name))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        # A secret pasted into values is refused: only Secret names are values.
        (
            {"database": {"url": "postgresql://u:p@db/permisos"}},
            "at '/database': additional properties 'url' not allowed",
        ),
        (
            {"stripe": {"secretKey": "sk_live_123"}},
            "at '/stripe': additional properties 'secretKey' not allowed",
        ),
        ({"replicaCount": 3}, "additional properties 'replicaCount' not allowed"),
        ({"api": {"replicas": 0}}, "at '/api/replicas': minimum: got 0, want 1"),
        (
            {"operator": {"scope": "everywhere"}},
            "at '/operator/scope': value must be one of 'namespace', 'cluster'",
        ),
        ({"api": {"image": {"tag": 1.2}}}, "at '/api/image/tag': got number, want string"),
        (
            {"api": {"image": {"pullPolicy": "Sometimes"}}},
            "at '/api/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            {"operator": {"resources": {"limits": None}}},
            "at '/operator/resources': missing property 'limits'",
        ),
        (
            {"runnerPool": {"resources": {"requests": {"memory": "a lot"}}}},
            "at '/runnerPool/resources/requests/memory'",
        ),
        ({"runnerPool": {"replicas": 5000}}, "at '/runnerPool/replicas': maximum: got 5,000"),
        # The CRD's limit on RunnerPool names (attempt Jobs append `-a<N>`), not 63.
        ({"runnerPool": {"name": "p" * 57}}, "at '/runnerPool/name': maxLength: got 57, want 56"),
        ({"api": {"permitPool": "p" * 57}}, "at '/api/permitPool': maxLength: got 57, want 56"),
        (
            {"cronJobs": {"reconcile": {"schedule": "every hour"}}},
            "at '/cronJobs/reconcile/schedule': 'every hour' does not match pattern",
        ),
        (
            {"portal": {"url": "portal.gob.mx"}},
            "at '/portal/url': 'portal.gob.mx' does not match pattern",
        ),
        (
            {"portal": {"existingSecret": "Portal_Account"}},
            "at '/portal/existingSecret': 'Portal_Account' does not match pattern",
        ),
        (
            {"networkPolicy": {"database": {"ports": []}}},
            "at '/networkPolicy/database/ports': minItems: got 0, want 1",
        ),
        (
            {"fullnameOverride": "x" * 41},
            "at '/fullnameOverride': maxLength: got 41, want 40",
        ),
        (
            {"monitoring": {"serviceMonitor": {"interval": "half a minute"}}},
            "at '/monitoring/serviceMonitor/interval'",
        ),
    ],
)
def test_the_schema_refuses_wrong_values_naming_the_path(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.validate_schema(values)
    assert message in str(refused.value)
    # `helm install` says the same before it renders anything.
    with pytest.raises(helm.HelmError) as failed:
        chart.render(values, name="prod", namespace="permisos", is_install=True)
    assert message in str(failed.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"cronJobs": {"reminders": {"permitValidityDays": 5, "expiryReminderDays": 5}}},
            "cronJobs.reminders.expiryReminderDays must be less than "
            "cronJobs.reminders.permitValidityDays",
        ),
        (
            {"api": {"autoscaling": {"enabled": True, "minReplicas": 4, "maxReplicas": 3}}},
            "api.autoscaling.maxReplicas must not be less than api.autoscaling.minReplicas",
        ),
        (
            {"runnerPool": {"retryPolicy": {"backoffSeconds": 60, "maxBackoffSeconds": 30}}},
            "runnerPool.retryPolicy.maxBackoffSeconds must not be less than "
            "runnerPool.retryPolicy.backoffSeconds",
        ),
    ],
)
def test_rules_between_values_are_refused_before_install(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    """What the schema cannot say (one value against another), the templates refuse."""
    with pytest.raises(helm.HelmRenderError) as failed:
        chart.render(values, name="prod", namespace="permisos", is_install=True)
    assert message in str(failed.value)
