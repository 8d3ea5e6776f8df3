"""Server-set object metadata: names, uids, timestamps and the built-in kinds' defaults."""

from __future__ import annotations

import base64
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from .errors import FieldError

JSON = dict[str, Any]
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# The alphabet kube's SimpleNameGenerator draws from (no vowels, no look-alike digits).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str) -> str:
    return prefix[:58] + "".join(secrets.choice(_ALPHABET) for _ in range(5))


def name_errors(name: str, dns_label: bool) -> list[FieldError]:
    if dns_label:
        if len(name) > 63 or not _LABEL.match(name):
            return [
                FieldError(
                    "metadata.name",
                    "FieldValueInvalid",
                    name,
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric character "
                    "(e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
        return []
    if len(name) > 253:
        return [
            FieldError(
                "metadata.name", "FieldValueInvalid", name, "must be no more than 253 characters"
            )
        ]
    if not _SUBDOMAIN.match(name):
        return [
            FieldError(
                "metadata.name",
                "FieldValueInvalid",
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character "
                "(e.g. "
                "'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    return []


def _container_defaults(container: JSON) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = str(container.get("image", ""))
    tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
    pull = "IfNotPresent" if tagged and not image.endswith(":latest") else "Always"
    container.setdefault("imagePullPolicy", pull)


def pod_spec_defaults(spec: JSON, restart_policy: str = "Always") -> None:
    if restart_policy:
        spec.setdefault("restartPolicy", restart_policy)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            if isinstance(container, dict):
                _container_defaults(container)


def secret_data(obj: JSON) -> None:
    """kube folds stringData into data (base64) on every write and never stores stringData."""
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
    obj.setdefault("type", "Opaque")


def builtin_create_defaults(key: str, obj: JSON) -> None:
    """The defaults and initial status kube's built-in strategies set on create."""
    meta = obj["metadata"]
    if key == "namespaces":
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj["status"] = {"phase": "Active"}
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
    elif key == "pods":
        pod_spec_defaults(obj.setdefault("spec", {}))
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif key == "secrets":
        secret_data(obj)
    elif key == "jobs.batch":
        spec = obj.setdefault("spec", {})
        uid = meta["uid"]
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": meta["name"],
                "controller-uid": uid,
                "job-name": meta["name"],
            }
        )
        pod_spec_defaults(template.setdefault("spec", {}), restart_policy="")
        obj["status"] = {}


def builtin_errors(key: str, obj: JSON) -> list[FieldError]:
    """The built-in validations the project's code could plausibly trip over."""
    if key == "jobs.batch":
        spec = obj.get("spec") or {}
        pod = ((spec.get("template") or {}).get("spec")) or {}
        errors: list[FieldError] = []
        if not pod.get("containers"):
            errors.append(FieldError("spec.template.spec.containers", "FieldValueRequired"))
        if pod.get("restartPolicy") not in ("OnFailure", "Never"):
            errors.append(
                FieldError(
                    "spec.template.spec.restartPolicy",
                    "FieldValueRequired"
                    if not pod.get("restartPolicy")
                    else "FieldValueNotSupported",
                    pod.get("restartPolicy"),
                    'supported values: "OnFailure", "Never"',
                )
            )
        return errors
    if key == "pods":
        spec = obj.get("spec") or {}
        if not spec.get("containers"):
            return [FieldError("spec.containers", "FieldValueRequired")]
    return []
