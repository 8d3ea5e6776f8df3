"""The smallest Kopf operator that turns a PermitRequest into a Job: the benchmark's baseline.

`kopf run --standalone --all-namespaces bench/baseline_operator.py` with KUBECONFIG set. On
creation it makes one Job `<name>-a1` labelled with the request's name, through lightkube's
AsyncClient, and does nothing else: no queue, no admission, no status, no retries.
"""

from __future__ import annotations

from typing import Any

import kopf
from lightkube import ApiError, AsyncClient
from lightkube.resources.batch_v1 import Job

LABEL_REQUEST = "permisosdigitales.mx/permitrequest"

_client: AsyncClient | None = None


def _kube() -> AsyncClient:
    global _client
    if _client is None:
        _client = AsyncClient(field_manager="baseline-operator")
    return _client


def job_for(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{name}-a1",
            "namespace": namespace,
            "labels": {LABEL_REQUEST: name},
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {LABEL_REQUEST: name}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "runner", "image": "busybox"}],
                },
            },
        },
    }


@kopf.on.create("permisosdigitales.mx", "v1alpha1", "permitrequests")
async def create_job(name: str, namespace: str, body: kopf.Body, **_: Any) -> None:
    manifest = job_for(name, namespace)
    kopf.adopt(manifest, owner=body)
    try:
        await _kube().create(Job.from_dict(manifest), namespace=namespace)
    except ApiError as error:
        if error.status.code != 409:  # AlreadyExists is success
            raise
