"""CustomResourceDefinitions: loading them from YAML and turning them into resource types."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import resources as pkg_resources
from pathlib import Path
from typing import Any

import yaml

from .errors import FieldError
from .resources import COMMON_FIELDS, ResourceType, ScaleSpec

JSON = dict[str, Any]
CRD_API_VERSION = "apiextensions.k8s.io/v1"


def _documents(text: str) -> Iterator[JSON]:
    for doc in yaml.safe_load_all(text):
        if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
            yield doc


def load_crd_files(paths: Iterable[Path]) -> list[JSON]:
    """Reads CRDs from files and directories (every *.yaml / *.yml, multi-document)."""
    found: list[JSON] = []
    for path in paths:
        files = (
            sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml"))
            if path.is_dir()
            else [path]
        )
        for file in files:
            found.extend(_documents(file.read_text()))
    return found


def kopf_crds() -> list[JSON]:
    """The KopfPeering and ClusterKopfPeering CRDs, bundled with the package."""
    text = pkg_resources.files(__package__).joinpath("kopf_peering.yaml").read_text()
    return list(_documents(text))


def validate_crd(crd: JSON) -> list[FieldError]:
    """The few CRD checks that catch real mistakes before a broken type is served."""
    errors: list[FieldError] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    if not group:
        errors.append(FieldError("spec.group", "FieldValueRequired"))
    if not names.get("plural"):
        errors.append(FieldError("spec.names.plural", "FieldValueRequired"))
    if not names.get("kind"):
        errors.append(FieldError("spec.names.kind", "FieldValueRequired"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(
            FieldError(
                "spec.scope",
                "FieldValueNotSupported",
                spec.get("scope"),
                'supported values: "Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        errors.append(FieldError("spec.versions", "FieldValueRequired"))
    elif sum(1 for v in versions if v.get("storage")) != 1:
        errors.append(
            FieldError(
                "spec.versions",
                "FieldValueInvalid",
                None,
                "must have exactly one version marked as storage version",
            )
        )
    name = (crd.get("metadata") or {}).get("name")
    if group and names.get("plural") and name != f"{names['plural']}.{group}":
        errors.append(
            FieldError(
                "metadata.name",
                "FieldValueInvalid",
                name,
                'must be spec.names.plural+"."+spec.group',
            )
        )
    return errors


def default_crd(crd: JSON) -> JSON:
    """Fills what kube defaults and reports in a CRD: singular, listKind, Established status."""
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    spec.setdefault("conversion", {"strategy": "None"})
    return crd


def crd_status(crd: JSON, now: str) -> JSON:
    spec = crd.get("spec") or {}
    storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
    return {
        "acceptedNames": spec.get("names") or {},
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": now,
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": storage,
    }


def resource_type(crd: JSON) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served", True)]
    # The storage version first: it is where objects are kept and the preferred version.
    served.sort(key=lambda v: not v.get("storage"))
    status = False
    scale: ScaleSpec | None = None
    schemas: dict[str, JSON] = {}
    columns: dict[str, list[JSON]] = {}
    selectable: set[str] = set()
    for version in served:
        subresources = version.get("subresources") or spec.get("subresources") or {}
        status = status or "status" in subresources
        if "scale" in subresources and scale is None:
            s = subresources["scale"]
            scale = ScaleSpec(
                s["specReplicasPath"], s["statusReplicasPath"], s.get("labelSelectorPath")
            )
        schema = (version.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        schemas[version["name"]] = schema or {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
        }
        columns[version["name"]] = list(
            version.get("additionalPrinterColumns") or spec.get("additionalPrinterColumns") or []
        )
        selectable |= {f["jsonPath"].lstrip(".") for f in version.get("selectableFields") or []}
    return ResourceType(
        group=spec["group"],
        versions=[v["name"] for v in served],
        kind=names["kind"],
        plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(),
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        short_names=list(names.get("shortNames") or []),
        categories=list(names.get("categories") or []),
        status_subresource=status,
        scale=scale,
        schemas=schemas,
        printer_columns=columns,
        custom=True,
        has_generation=True,
        field_labels=COMMON_FIELDS | frozenset(selectable),
        return_deleted_object=True,
        crd_name=crd["metadata"]["name"],
    )
