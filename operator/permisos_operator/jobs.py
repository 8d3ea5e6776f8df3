"""The Job manifest of one attempt: the only way the operator runs a browser."""

from __future__ import annotations

from typing import Any

from permisos.resources import API_VERSION, PermitRequestSpec, RunnerPoolSpec
from permisos_operator.observe import RUNNER_CONTAINER
from permisos_operator.settings import OperatorSettings

LABEL_REQUEST = "permisosdigitales.mx/permitrequest"
LABEL_POOL = "permisosdigitales.mx/pool"
LABEL_ATTEMPT = "permisosdigitales.mx/attempt"
MANAGED_BY = {"app.kubernetes.io/managed-by": "permisos-operator"}
RUNNER_LABELS = {"app.kubernetes.io/name": "permisos-browser-runner", **MANAGED_BY}
RUNNER_UID = 10001


def pool_selector(pool: str) -> str:
    """The label selector of a pool's runner pods (RunnerPool status.selector, for an HPA)."""
    return f"app.kubernetes.io/name=permisos-browser-runner,{LABEL_POOL}={pool}"


def job_manifest(
    *,
    name: str,
    namespace: str,
    request: str,
    request_uid: str,
    attempt: int,
    spec: PermitRequestSpec,
    pool: RunnerPoolSpec,
    settings: OperatorSettings,
) -> dict[str, Any]:
    labels = {
        **RUNNER_LABELS,
        LABEL_REQUEST: request,
        LABEL_POOL: spec.pool,
        LABEL_ATTEMPT: str(attempt),
    }
    env: list[dict[str, Any]] = [
        {"name": "PERMISOS_RUNNER_PERMIT_REQUEST", "value": request},
        {"name": "PERMISOS_RUNNER_APPLICATION_ID", "value": spec.application_id},
        {"name": "PERMISOS_RUNNER_ATTEMPT", "value": str(attempt)},
        {"name": "PERMISOS_RUNNER_SECRET_DIR", "value": settings.secret_mount_path},
        {"name": "PERMISOS_RUNNER_TERMINATION_LOG", "value": settings.termination_message_path},
        {"name": "PERMISOS_RUNNER_PORTAL_URL", "value": pool.portal.url},
        {
            "name": "PERMISOS_RUNNER_PORTAL_TIMEOUT_SECONDS",
            "value": str(pool.portal.timeout_seconds),
        },
        {"name": "PERMISOS_RUNNER_S3_BUCKET", "value": pool.storage.bucket},
        {"name": "PERMISOS_RUNNER_S3_REGION", "value": pool.storage.region},
    ]
    if pool.storage.endpoint_url:
        env.append({"name": "PERMISOS_RUNNER_S3_ENDPOINT_URL", "value": pool.storage.endpoint_url})
    if spec.vehicle is not None:
        for key, value in spec.vehicle.wire().items():
            env.append({"name": f"PERMISOS_RUNNER_VEHICLE_{_upper(key)}", "value": str(value)})
    for secret_key, var in (("username", "USERNAME"), ("password", "PASSWORD")):
        env.append(
            {
                "name": f"PERMISOS_RUNNER_PORTAL_{var}",
                "valueFrom": {
                    "secretKeyRef": {"name": pool.portal.credentials_secret, "key": secret_key}
                },
            }
        )
    if pool.storage.credentials_secret:
        env.append(
            {
                "name": "AWS_ACCESS_KEY_ID",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": pool.storage.credentials_secret,
                        "key": "AWS_ACCESS_KEY_ID",
                    }
                },
            }
        )
        env.append(
            {
                "name": "AWS_SECRET_ACCESS_KEY",
                "valueFrom": {
                    "secretKeyRef": {
                        "name": pool.storage.credentials_secret,
                        "key": "AWS_SECRET_ACCESS_KEY",
                    }
                },
            }
        )
    env.extend({"name": e.name, "value": e.value} for e in pool.env)

    container: dict[str, Any] = {
        "name": RUNNER_CONTAINER,
        "image": pool.image,
        "imagePullPolicy": pool.image_pull_policy,
        "env": env,
        "resources": pool.resources.wire(),
        "terminationMessagePath": settings.termination_message_path,
        "terminationMessagePolicy": "File",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "applicant", "mountPath": settings.secret_mount_path, "readOnly": True},
            {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108 (in the pod)
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (in the pod)
        ],
    }
    if pool.command:
        container["command"] = list(pool.command)

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "PermitRequest",
                    "name": request,
                    "uid": request_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": pool.active_deadline_seconds,
            "ttlSecondsAfterFinished": pool.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    **(
                        {"serviceAccountName": pool.service_account_name}
                        if pool.service_account_name
                        else {}
                    ),
                    **(
                        {"imagePullSecrets": [{"name": n} for n in pool.image_pull_secrets]}
                        if pool.image_pull_secrets
                        else {}
                    ),
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUNNER_UID,
                        "runAsGroup": RUNNER_UID,
                        "fsGroup": RUNNER_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {
                            "name": "applicant",
                            "secret": {"secretName": spec.secret_name, "defaultMode": 0o440},
                        },
                        {
                            "name": "dshm",
                            "emptyDir": {"medium": "Memory", "sizeLimit": pool.shm_size},
                        },
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    }


def _upper(camel: str) -> str:
    return "".join(f"_{c}" if c.isupper() else c.upper() for c in camel)
