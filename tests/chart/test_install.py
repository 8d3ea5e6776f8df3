"""`helm install` for real: the helm built with the control plane, against the session's
kube-apiserver. A server dry run of each shipped values file, whose manifests (hooks included)
the apiserver then validates as it would on install (`kubectl apply --dry-run=server`: the
schemas, CRDs with their CEL rules, strict field validation, admission); and bad values refused
before anything reaches the cluster."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from permisos_sandbox.cluster import ControlPlane
from tests.accounts import CHART_CRDS, install_crds
from tests.cluster import helm, kubectl

from .conftest import CHART, RELEASE, VALUE_FILES

# The Prometheus Operator's kinds have no CRDs here (helm cannot map them): the values that
# render them are turned off for this test (tests/observability/test_chart.py checks them).
NO_MONITORING = (
    *("--set", "monitoring.serviceMonitor.enabled=false"),
    *("--set", "monitoring.prometheusRule.enabled=false"),
)


@pytest.fixture
async def namespace(control_plane: ControlPlane) -> str:
    admin = control_plane.admin_kubeconfig
    await install_crds(admin, CHART_CRDS)
    name = f"helm-{uuid.uuid4().hex[:8]}"
    await kubectl(admin, "create", "namespace", name)
    return name


def install(namespace: str, values: str, *extra: str) -> list[str]:
    """`helm install` of the chart as release `prod` with one of the shipped values files."""
    path = VALUE_FILES[values]
    files = [] if path is None else ["-f", str(path)]
    return ["install", RELEASE, str(CHART), "-n", namespace, *files, *extra]


def manifests(release: dict[str, Any]) -> list[dict[str, Any]]:
    """The release's objects and its hooks' objects, as helm would send them."""
    texts = [release["manifest"], *(hook["manifest"] for hook in release.get("hooks") or [])]
    return [doc for text in texts for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("name", list(VALUE_FILES))
async def test_the_apiserver_accepts_what_helm_would_install(
    control_plane: ControlPlane, namespace: str, name: str, tmp_path: Path
) -> None:
    admin = control_plane.admin_kubeconfig
    _, out, _ = await helm(
        admin, *install(namespace, name, *NO_MONITORING, "--dry-run=server", "-o", "json")
    )
    objects = manifests(json.loads(out))
    assert len(objects) >= 20
    path = tmp_path / "release.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    code, applied, err = await kubectl(
        admin,
        *("apply", "--dry-run=server", "--validate=strict", "--server-side", "--force-conflicts"),
        *("-n", namespace, "-f", str(path)),
        check=False,
    )
    assert code == 0, err
    assert applied.count("(server dry run)") == len(objects)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("api.replicas=0", "at '/api/replicas': minimum: got 0, want 1"),
        ("runnerPool.name=" + "p" * 57, "at '/runnerPool/name': maxLength: got 57, want 56"),
        ("operator.scope=everywhere", "at '/operator/scope': value must be one of"),
    ],
)
async def test_helm_refuses_bad_values_and_installs_nothing(
    control_plane: ControlPlane, namespace: str, setting: str, message: str
) -> None:
    admin = control_plane.admin_kubeconfig
    code, _, err = await helm(admin, *install(namespace, "staging", "--set", setting), check=False)
    assert code != 0 and message in err, err
    _, listed, _ = await helm(admin, "list", "-n", namespace, "-o", "json")
    assert json.loads(listed) == []
    _, objects, _ = await kubectl(
        admin, "get", "all,secrets,configmaps", "-n", namespace, "-o", "name"
    )
    assert "permisos" not in objects
