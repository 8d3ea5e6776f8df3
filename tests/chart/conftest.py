"""The Helm chart rendered by Helm's own engine (helm-python-sdk binds Helm's Go SDK; no binary).

Each values set is rendered once per session: the default values, a production-like install
(`charts/permisos/ci/production-values.yaml`) and a self-contained staging one with both
simulators and a cluster-wide operator (`ci/staging-values.yaml`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "permisos"
RELEASE = "prod"
NAMESPACE = "permisos"
VALUE_FILES: dict[str, Path | None] = {
    "default": None,
    "production": CHART / "ci" / "production-values.yaml",
    "staging": CHART / "ci" / "staging-values.yaml",
}
# Kinds whose pods the chart defines, and where each keeps its pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
POD_TEMPLATE_LABELS: dict[str, tuple[str, ...]] = {
    kind: (*path[:-1], "metadata", "labels") for kind, path in POD_SPEC_PATHS.items()
}

Manifest = dict[str, Any]


def values_of(name: str) -> dict[str, Any]:
    path = VALUE_FILES[name]
    return {} if path is None else dict(yaml.safe_load(path.read_text()))


def dig(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        obj = obj[key]
    return obj


@dataclass
class Rendered:
    """What `helm template` would print for one values set, parsed."""

    values: dict[str, Any]
    files: dict[str, str]
    manifests: list[Manifest] = field(default_factory=list)

    def __post_init__(self) -> None:
        for path, text in sorted(self.files.items()):
            if path.endswith(".txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc.setdefault("__source", path)
                    self.manifests.append(doc)

    @property
    def notes(self) -> str:
        return next(t for p, t in self.files.items() if p.endswith("NOTES.txt"))

    def of_kind(self, *kinds: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] in kinds]

    def get(self, kind: str, name: str) -> Manifest:
        found = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"{len(found)} {kind} named {name}"
        return found[0]

    def pods(self) -> list[tuple[str, dict[str, str], dict[str, Any]]]:
        """(kind/name, pod labels, pod spec) of every workload the chart renders."""
        return [
            (
                f"{m['kind']}/{m['metadata']['name']}",
                dict(dig(m, POD_TEMPLATE_LABELS[m["kind"]]) or {}),
                dig(m, POD_SPEC_PATHS[m["kind"]]),
            )
            for m in self.of_kind(*POD_SPEC_PATHS)
        ]


def clean(manifest: Manifest) -> Manifest:
    """The manifest as Kubernetes receives it (without the test's own bookkeeping)."""
    return {k: v for k, v in manifest.items() if k != "__source"}


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(
    chart: helm.Chart,
    values: dict[str, Any] | None = None,
    *,
    namespace: str = NAMESPACE,
    release: str = RELEASE,
) -> Rendered:
    files = chart.render(values or {}, name=release, namespace=namespace, is_install=True)
    return Rendered(chart.merge_values(values or {}), files)


@pytest.fixture(scope="session")
def renders(chart: helm.Chart) -> dict[str, Rendered]:
    return {name: render(chart, values_of(name)) for name in VALUE_FILES}


@pytest.fixture(params=list(VALUE_FILES))
def rendered(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    return renders[request.param]
