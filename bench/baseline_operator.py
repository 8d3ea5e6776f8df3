"""The smallest Kopf operator that turns a PermitRequest into a Job: the benchmark's baseline.

`kopf run --standalone --namespace=<ns> bench/baseline_operator.py` with KUBECONFIG set. On
creation it makes the request's first Job `<name>-a1` through the official client's asyncio API,
and does nothing else: no queue, no admission, no status, no Events, no retries. The Job is the
very manifest our operator makes for that request in a default RunnerPool
(`permisos_operator.jobs`), so both operators ask the apiserver for the same Jobs and the
comparison is about the operators.
"""

from __future__ import annotations

from typing import Any

import kopf
from kubernetes.aio import client, config

from permisos.resources import PermitRequestSpec, RunnerPoolSpec
from permisos_operator.jobs import job_manifest
from permisos_operator.settings import OperatorSettings

_batch: Any = None
POOL = RunnerPoolSpec()
SETTINGS = OperatorSettings()


async def _jobs() -> Any:
    global _batch
    if _batch is None:
        await config.load_kube_config()  # type: ignore[no-untyped-call]
        _batch = client.BatchV1Api(client.ApiClient())
    return _batch


def job_for(name: str, namespace: str, uid: str, spec: dict[str, Any]) -> dict[str, Any]:
    return job_manifest(
        name=f"{name}-a1",
        namespace=namespace,
        request=name,
        request_uid=uid,
        attempt=1,
        spec=PermitRequestSpec.model_validate(spec),
        pool=POOL,
        settings=SETTINGS,
    )


@kopf.on.create("permisosdigitales.mx", "v1alpha1", "permitrequests")
async def create_job(name: str, namespace: str, uid: str, spec: kopf.Spec, **_: Any) -> None:
    manifest = job_for(name, namespace, uid, dict(spec))
    try:
        await (await _jobs()).create_namespaced_job(namespace, manifest)
    except client.ApiException as error:
        if error.status != 409:  # AlreadyExists is success
            raise
