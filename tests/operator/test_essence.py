"""The operator's diff base for Kopf: a RunnerPool's essence is the very one Kopf's own storage
builds (its daemons and timers read it), any other kind's is empty (nothing reads it)."""

from __future__ import annotations

from typing import Any, cast

import kopf
import pytest

from permisos_operator.essence import LeanDiffBaseStorage

POOL: dict[str, Any] = {
    "apiVersion": "permisosdigitales.mx/v1alpha1",
    "kind": "RunnerPool",
    "metadata": {
        "name": "default",
        "namespace": "permisos",
        "uid": "0b7c6c1e-0000-4000-8000-000000000001",
        "resourceVersion": "812",
        "generation": 3,
        "labels": {"app.kubernetes.io/instance": "permisos"},
        "annotations": {
            "meta.helm.sh/release-name": "permisos",
            "kopf.zalando.org/last-handled-configuration": '{"spec": {"replicas": 2}}',
        },
        "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"],
        "managedFields": [{"manager": "helm", "fieldsV1": {"f:spec": {"f:replicas": {}}}}],
    },
    "spec": {"replicas": 3, "portal": {"url": "https://portal.example.gob.mx"}},
    "status": {"replicas": 2, "queued": 14, "kopf": {"progress": {"x": {"retries": 1}}}},
}


@pytest.mark.parametrize(
    "body",
    [
        POOL,
        {**POOL, "metadata": {"name": "bare"}},
        {"apiVersion": "v1", "kind": "RunnerPool", "metadata": {"name": "p"}},
    ],
)
def test_a_pools_essence_is_kopfs_essence(body: dict[str, Any]) -> None:
    wrapped = kopf.Body(cast(kopf.RawBody, body))
    ours = LeanDiffBaseStorage().build(body=wrapped)
    assert ours == kopf.AnnotationsDiffBaseStorage().build(body=wrapped)
    assert "status" not in ours and "managedFields" not in ours.get("metadata", {})


def test_asked_for_fields_of_the_status_come_from_the_whole_object() -> None:
    wrapped = kopf.Body(cast(kopf.RawBody, POOL))
    ours = LeanDiffBaseStorage().build(body=wrapped, extra_fields=["status.replicas"])
    assert ours["status"] == {"replicas": 2}


def test_other_kinds_have_an_empty_essence() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}, "spec": {"x": 1}}
    assert LeanDiffBaseStorage().build(body=kopf.Body(cast(kopf.RawBody, job))) == {}
