"""What the server knows about each resource type, built-in or defined by a CRD."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
SUB_VERBS = ["get", "patch", "update"]
COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


@dataclass(frozen=True)
class ScaleSpec:
    """A CRD's scale subresource: where replicas and the selector live in the object."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str | None = None


@dataclass
class ResourceType:
    group: str
    versions: list[str]
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    status_subresource: bool = False
    scale: ScaleSpec | None = None
    # Per served version; empty for built-ins, which the emulator does not validate.
    schemas: dict[str, JSON] = field(default_factory=dict)
    printer_columns: dict[str, list[JSON]] = field(default_factory=dict)
    custom: bool = False
    has_generation: bool = False
    field_labels: frozenset[str] = COMMON_FIELDS
    # kube returns the object from DELETE for some stores and a Status for others.
    return_deleted_object: bool = False
    # batch/v1 Jobs still orphan their pods when a client deletes without a policy.
    default_propagation: str = "Background"
    crd_name: str | None = None

    @property
    def key(self) -> str:
        """Storage key shared by all versions of the type."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def storage_version(self) -> str:
        return self.versions[0]

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    @property
    def qualified_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    def api_version(self, version: str | None = None) -> str:
        v = version or self.storage_version
        return f"{self.group}/{v}" if self.group else v


def _builtin(
    group: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short: list[str] | None = None,
    categories: list[str] | None = None,
    status: bool = False,
    generation: bool = False,
    fields: frozenset[str] = frozenset(),
    return_object: bool = False,
    propagation: str = "Background",
) -> ResourceType:
    return ResourceType(
        group=group,
        versions=["v1"],
        kind=kind,
        plural=plural,
        singular=kind.lower(),
        namespaced=namespaced,
        short_names=short or [],
        categories=categories or [],
        status_subresource=status,
        has_generation=generation,
        field_labels=COMMON_FIELDS | fields,
        return_deleted_object=return_object,
        default_propagation=propagation,
    )


_EVENT_FIELDS = frozenset(
    {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    }
)


def builtin_types() -> list[ResourceType]:
    """The built-in kinds the project's components and kubectl use."""
    return [
        _builtin(
            "",
            "Namespace",
            "namespaces",
            namespaced=False,
            short=["ns"],
            status=True,
            fields=frozenset({"status.phase"}),
            return_object=True,
        ),
        _builtin(
            "",
            "Pod",
            "pods",
            short=["po"],
            categories=["all"],
            status=True,
            fields=frozenset(
                {
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.nominatedNodeName",
                }
            ),
            return_object=True,
        ),
        _builtin("", "Secret", "secrets", fields=frozenset({"type"})),
        _builtin("", "ConfigMap", "configmaps", short=["cm"]),
        _builtin("", "Event", "events", short=["ev"], fields=_EVENT_FIELDS),
        _builtin("", "Service", "services", short=["svc"], categories=["all"], status=True),
        _builtin("", "ServiceAccount", "serviceaccounts", short=["sa"]),
        _builtin(
            "batch",
            "Job",
            "jobs",
            categories=["all"],
            status=True,
            generation=True,
            fields=frozenset({"status.successful"}),
            propagation="Orphan",
        ),
        _builtin("coordination.k8s.io", "Lease", "leases"),
        _builtin(
            "events.k8s.io",
            "Event",
            "events",
            short=["ev"],
            fields=frozenset(
                {
                    "regarding.kind",
                    "regarding.namespace",
                    "regarding.name",
                    "regarding.uid",
                    "reason",
                    "reportingController",
                    "type",
                }
            ),
        ),
        _builtin(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            namespaced=False,
            short=["crd", "crds"],
            categories=["api-extensions"],
            status=True,
            generation=True,
            return_object=True,
        ),
    ]
