"""The Job manifests of an attempt and of a portal probe: the only ways the operator runs a
browser."""

from __future__ import annotations

from typing import Any

from permisos.resources import API_VERSION, PermitRequestSpec, RunnerPoolSpec
from permisos_operator.observe import RUNNER_CONTAINER
from permisos_operator.settings import OperatorSettings

LABEL_REQUEST = "permisosdigitales.mx/permitrequest"
LABEL_POOL = "permisosdigitales.mx/pool"
LABEL_ATTEMPT = "permisosdigitales.mx/attempt"
LABEL_PROBE = "permisosdigitales.mx/probe"  # the pool a probe Job checks the portal for
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
    ]
    if spec.vehicle is not None:
        for key, value in spec.vehicle.wire().items():
            env.append({"name": f"PERMISOS_RUNNER_VEHICLE_{_upper(key)}", "value": str(value)})
    owner = _owner("PermitRequest", request, request_uid)
    return _runner_job(name, namespace, labels, owner, env, pool, settings, spec.secret_name)


def probe_manifest(
    *,
    name: str,
    namespace: str,
    pool_name: str,
    pool_uid: str,
    pool: RunnerPoolSpec,
    settings: OperatorSettings,
) -> dict[str, Any]:
    """A probe of the portal for the pool's circuit breaker: the runner in probe mode, with no
    applicant Secret and no request; owned by the pool."""
    labels = {**RUNNER_LABELS, LABEL_POOL: pool_name, LABEL_PROBE: pool_name}
    env: list[dict[str, Any]] = [
        {"name": "PERMISOS_RUNNER_MODE", "value": "probe"},
        {"name": "PERMISOS_RUNNER_PROBE_NAME", "value": name},
    ]
    owner = _owner("RunnerPool", pool_name, pool_uid)
    return _runner_job(name, namespace, labels, owner, env, pool, settings, None)


def _owner(kind: str, name: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _runner_job(
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: dict[str, Any],
    first_env: list[dict[str, Any]],
    pool: RunnerPoolSpec,
    settings: OperatorSettings,
    applicant_secret: str | None,
) -> dict[str, Any]:
    env: list[dict[str, Any]] = [
        *first_env,
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
            {"name": "dshm", "mountPath": "/dev/shm"},  # noqa: S108 (in the pod)
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 (in the pod)
        ],
    }
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": pool.shm_size}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    if applicant_secret is not None:
        container["volumeMounts"].insert(
            0, {"name": "applicant", "mountPath": settings.secret_mount_path, "readOnly": True}
        )
        volumes.insert(
            0,
            {"name": "applicant", "secret": {"secretName": applicant_secret, "defaultMode": 0o440}},
        )
    if pool.command:
        container["command"] = list(pool.command)

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner],
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
                    "volumes": volumes,
                },
            },
        },
    }


def _upper(camel: str) -> str:
    return "".join(f"_{c}" if c.isupper() else c.upper() for c in camel)
