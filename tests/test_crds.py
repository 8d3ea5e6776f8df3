"""The CRDs in crds/ are what the shared models say, and they teach through `kubectl explain`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from permisos import crdgen
from permisos.resources import PermitRequestSpec, PermitRequestStatus, RunnerPoolSpec

CRDS = Path(__file__).resolve().parents[1] / "crds"


def _schema(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / name).read_text())
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crds_equal_the_generated_ones() -> None:
    for name in crdgen.CRDS:
        assert (CRDS / name).read_text() == crdgen.render(name), (
            f"crds/{name} is stale: run `make crds`"
        )


def _walk(schema: dict[str, Any], path: str) -> list[str]:
    missing = []
    for prop, sub in schema.get("properties", {}).items():
        where = f"{path}.{prop}"
        if prop != "metadata" and not sub.get("description"):
            missing.append(where)
        missing += _walk(sub, where)
    if isinstance(schema.get("items"), dict):
        missing += _walk(schema["items"], f"{path}[]")
    return missing


def test_every_field_has_a_description() -> None:
    for name in crdgen.CRDS:
        assert _walk(_schema(name), "") == []


def test_schemas_are_structural() -> None:
    """Every node has a type; no anyOf/oneOf/$ref survive (the API server rejects them)."""

    def check(node: dict[str, Any], where: str) -> None:
        assert "type" in node, f"{where} has no type"
        for bad in ("$ref", "anyOf", "oneOf", "allOf", "title"):
            assert bad not in node, f"{where} has {bad}"
        for prop, sub in node.get("properties", {}).items():
            check(sub, f"{where}.{prop}")
        if isinstance(node.get("items"), dict):
            check(node["items"], f"{where}[]")

    for name in crdgen.CRDS:
        check(_schema(name), name)


def test_model_fields_and_schema_fields_agree() -> None:
    """Field by field: each model field is in the schema under its wire name, and nothing else."""
    pr = _schema("permitrequests.yaml")["properties"]
    rp = _schema("runnerpools.yaml")["properties"]
    for model, props in (
        (PermitRequestSpec, pr["spec"]["properties"]),
        (PermitRequestStatus, pr["status"]["properties"]),
        (RunnerPoolSpec, rp["spec"]["properties"]),
    ):
        wire = {f.alias or n for n, f in model.model_fields.items()}
        assert wire == set(props)


def test_runnerpool_scales_and_permitrequest_prints_columns() -> None:
    rp = yaml.safe_load((CRDS / "runnerpools.yaml").read_text())["spec"]
    version = rp["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    pr = yaml.safe_load((CRDS / "permitrequests.yaml").read_text())["spec"]
    columns = [c["name"] for c in pr["versions"][0]["additionalPrinterColumns"]]
    assert {"Phase", "Attempts", "Folio", "Age"} <= set(columns)
    # Why a request waits, with `-o wide`; the pool's portal and its circuit (#14).
    wide = {
        c["name"]: c["jsonPath"]
        for c in pr["versions"][0]["additionalPrinterColumns"]
        if c.get("priority") == 1
    }
    assert wide["Waiting"] == '.status.conditions[?(@.type=="Admitted")].reason'
    assert wide["Position"] == ".status.queuePosition"
    assert wide["Est. Start"] == ".status.estimatedStartAt"
    pool_columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert pool_columns["Portal"] == '.status.conditions[?(@.type=="PortalAvailable")].reason'
    assert pool_columns["Circuit"] == ".status.circuit.state"
    assert pool_columns["Failures"] == ".status.circuit.consecutiveFailures"
    assert pool_columns["Opened"] == ".status.circuit.openedAt"
    assert pool_columns["Next Probe"] == ".status.circuit.nextProbeAt"
    assert pr["names"]["shortNames"] == ["pr"]
    assert pr["names"]["categories"] == ["permisos"]
