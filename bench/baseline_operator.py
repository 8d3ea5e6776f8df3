"""The smallest Kopf operator that turns a PermitRequest into a Job: the benchmark's baseline.

`kopf run --standalone --all-namespaces bench/baseline_operator.py` with KUBECONFIG set. On
creation it makes one Job `<name>-a1` labelled with the request's name, through the official
client's asyncio API, and does nothing else: no queue, no admission, no status, no retries.
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes.aio import client, config

LABEL_REQUEST = "permisosdigitales.mx/permitrequest"

_batch: Any = None


async def _jobs() -> Any:
    global _batch
    if _batch is None:
        await config.load_kube_config()  # type: ignore[no-untyped-call]
        _batch = client.BatchV1Api(client.ApiClient())
    return _batch


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
        await (await _jobs()).create_namespaced_job(namespace, manifest)
    except client.ApiException as error:
        if error.status != 409:  # AlreadyExists is success
            raise
