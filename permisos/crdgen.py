"""Generates the CustomResourceDefinitions in `crds/` from the models in `permisos.resources`.

Run `python -m permisos.crdgen` after changing a model: it writes `crds/` and the Helm chart's
`charts/permisos/crds/` (Helm installs only from the chart's own folder), so both hold the same
files; tests fail while either differs from what this produces. `python -m permisos.crdgen DIR...`
writes only the folders named.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel

from permisos.resources import (
    CATEGORY,
    GROUP,
    MAX_NAME_LENGTH,
    VERSION,
    PermitRequestSpec,
    PermitRequestStatus,
    RunnerPoolSpec,
    RunnerPoolStatus,
    cel,
)

# Keys of pydantic's JSON Schema output that a structural schema does not take.
_DROPPED_KEYS = {"title"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    """Inline `$ref`s, turn `Optional[X]` into X and drop what OpenAPI v3 in CRDs rejects."""
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        choices = [c for c in node["anyOf"] if c.get("type") != "null"]
        if len(choices) == 1:
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            merged = {**choices[0], **rest}
            # A default of None is "not set", which the schema expresses by leaving it out.
            if merged.get("default", 0) is None:
                del merged["default"]
            return _resolve(merged, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "properties":
            out[key] = {name: _resolve(prop, defs) for name, prop in value.items()}
        elif key in ("default", "enum", "x-kubernetes-list-map-keys"):
            out[key] = value
        else:
            out[key] = _resolve(value, defs)
    if out.get("type") == "object" and "properties" in out:
        # pydantic marks defaulted fields as not required already; keep the order stable.
        out.setdefault("required", [])
        if not out["required"]:
            del out["required"]
    return out


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside `X`, `X | None` or `list[X]`, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found:
            return found
    return None


def _factory_defaults(model: type[BaseModel], schema: dict[str, Any]) -> None:
    """Write the defaults that pydantic's schema leaves out: those made by a default_factory.

    A defaulted sub-object becomes `default: {}`, so the API server fills in its own defaults.
    """
    for name, field in model.model_fields.items():
        prop = schema["properties"][field.alias or name]
        if field.default_factory is not None:
            value = field.default_factory()  # type: ignore[call-arg]
            prop["default"] = {} if isinstance(value, BaseModel) else value
        nested = _nested_model(field.annotation)
        if nested is not None:
            _factory_defaults(nested, prop.get("items", prop))


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI v3 schema of a model, in the structural form CRDs require."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _resolve(raw, defs)
    _factory_defaults(model, schema)
    return schema


def _crd(
    *,
    kind: str,
    plural: str,
    short: str,
    description: str,
    spec: type[BaseModel],
    status: type[BaseModel],
    columns: list[dict[str, Any]],
    subresources: dict[str, Any],
) -> dict[str, Any]:
    root = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "x-kubernetes-validations": [
            cel(
                f"size(self.metadata.name) <= {MAX_NAME_LENGTH}",
                f"metadata.name must be at most {MAX_NAME_LENGTH} characters: attempt Jobs "
                "append '-a<N>' and Job names must fit in a 63-character label",
            )
        ],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec),
            "status": structural_schema(status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": [short],
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root},
                    "subresources": subresources,
                    "additionalPrinterColumns": columns,
                }
            ],
        },
    }


def _column(name: str, kind: str, path: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "jsonPath": path, "description": description, **extra}


AGE = _column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")


def permitrequest_crd() -> dict[str, Any]:
    return _crd(
        kind="PermitRequest",
        plural="permitrequests",
        short="pr",
        description=(
            "PermitRequest asks the operator to obtain one paid application's permit PDFs from "
            "the government portal, through one browser-runner Job per attempt."
        ),
        spec=PermitRequestSpec,
        status=PermitRequestStatus,
        subresources={"status": {}},
        columns=[
            _column("Phase", "string", ".status.phase", "Where the request is in its life."),
            _column("Attempts", "integer", ".status.attempts", "Attempts started so far."),
            _column("Folio", "string", ".status.result.folio", "The portal's folio."),
            _column(
                "Reason",
                "string",
                '.status.conditions[?(@.type=="Ready")].reason',
                "Reason of the Ready condition.",
            ),
            _column("Pool", "string", ".spec.pool", "RunnerPool.", priority=1),
            _column(
                "Waiting",
                "string",
                '.status.conditions[?(@.type=="Admitted")].reason',
                "Why it waits (or Admitted).",
                priority=1,
            ),
            _column("Position", "integer", ".status.queuePosition", "Place in line.", priority=1),
            _column(
                "Est. Start", "string", ".status.estimatedStartAt", "Expected start.", priority=1
            ),
            _column("Next", "date", ".status.nextAttemptAt", "Next attempt.", priority=1),
            _column(
                "Runner s", "number", ".status.runnerSeconds", "Runner pod seconds.", priority=1
            ),
            AGE,
        ],
    )


def runnerpool_crd() -> dict[str, Any]:
    return _crd(
        kind="RunnerPool",
        plural="runnerpools",
        short="rp",
        description=(
            "RunnerPool bounds how many browser-runner Jobs run at once (scale it like a "
            "Deployment) and says how each runner is run."
        ),
        spec=RunnerPoolSpec,
        status=RunnerPoolStatus,
        subresources={
            "status": {},
            "scale": {
                "specReplicasPath": ".spec.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector",
            },
        },
        columns=[
            _column("Limit", "integer", ".spec.replicas", "Runner Jobs allowed at once."),
            _column("Running", "integer", ".status.replicas", "Runner Jobs running now."),
            _column("Queued", "integer", ".status.queued", "Requests waiting for a runner."),
            _column(
                "Portal",
                "string",
                '.status.conditions[?(@.type=="PortalAvailable")].reason',
                "Whether attempts may start at the portal, and why not.",
            ),
            _column("Circuit", "string", ".status.circuit.state", "Closed, Open or HalfOpen."),
            _column(
                "Failures",
                "integer",
                ".status.circuit.consecutiveFailures",
                "Attempts in a row that found the portal unavailable.",
                priority=1,
            ),
            _column("Opened", "date", ".status.circuit.openedAt", "When it opened.", priority=1),
            _column(
                "Next Probe", "string", ".status.circuit.nextProbeAt", "Next probe.", priority=1
            ),
            _column("Image", "string", ".spec.image", "Runner image.", priority=1),
            AGE,
        ],
    )


CRDS = {"permitrequests.yaml": permitrequest_crd, "runnerpools.yaml": runnerpool_crd}

HEADER = "# Generated by `python -m permisos.crdgen` from permisos/resources.py; do not edit.\n"


def render(name: str) -> str:
    return HEADER + yaml.safe_dump(CRDS[name](), sort_keys=False, width=100, allow_unicode=True)


# Where the generated files go by default, relative to the repository root.
DEFAULT_DIRS = ("crds", "charts/permisos/crds")


def main(argv: list[str]) -> int:
    for out in map(Path, argv[1:] or DEFAULT_DIRS):
        out.mkdir(parents=True, exist_ok=True)
        for name in CRDS:
            (out / name).write_text(render(name))
            print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
