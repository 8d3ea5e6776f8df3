"""A namespace of its own per test on a real control plane, and the project's resources in it, as
plain JSON through the project's Kubernetes client (`permisos.kube.Kube`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from permisos.kube import JSON, MERGE_PATCH, Kube, KubeError
from permisos.resources import API_VERSION
from permisos_sandbox.platform.accounts import OPERATOR_ACCOUNT, RBAC, cluster_role_name
from permisos_sandbox.platform.kubernetes import POD_SECURITY
from tests.cluster import eventually

# Where each kind the tests touch is served.
API_PATHS = {
    "permitrequests": f"/apis/{API_VERSION}",
    "runnerpools": f"/apis/{API_VERSION}",
    "kopfpeerings": "/apis/kopf.dev/v1",
    "jobs": "/apis/batch/v1",
    "pods": "/api/v1",
    "events": "/api/v1",
    "secrets": "/api/v1",
    "serviceaccounts": "/api/v1",
    "configmaps": "/api/v1",
    "deployments": "/apis/apps/v1",
    "cronjobs": "/apis/batch/v1",
}


@dataclass
class Namespace:
    kube: Kube
    name: str

    def path(self, resource: str, name: str = "", subresource: str = "") -> str:
        path = f"{API_PATHS[resource]}/namespaces/{self.name}/{resource}"
        return path + (f"/{name}" if name else "") + (f"/{subresource}" if subresource else "")

    async def create(self, resource: str, body: JSON) -> JSON:
        body = {**body, "metadata": {**body.get("metadata", {}), "namespace": self.name}}
        return await self.kube.request("POST", self.path(resource), body=body)

    async def get(self, resource: str, name: str) -> JSON | None:
        return await self.kube.get(self.path(resource, name))

    async def objects(self, resource: str, **query: Any) -> list[JSON]:
        items: list[JSON] = (await self.kube.request("GET", self.path(resource), query=query))[
            "items"
        ]
        return items

    async def patch(
        self, resource: str, name: str, body: JSON, subresource: str = "", *, kind: str = ""
    ) -> JSON:
        return await self.kube.request(
            "PATCH",
            self.path(resource, name, subresource),
            body=body,
            content_type=kind or MERGE_PATCH,
        )

    async def delete(self, resource: str, name: str, **query: Any) -> None:
        try:
            await self.kube.request("DELETE", self.path(resource, name), query=query)
        except KubeError as error:
            if error.status != 404:
                raise

    async def discard(self) -> None:
        """The namespace goes, with the cluster roles made for its operator; requests and peering
        objects lose their finalizers first, the operator that would release them being gone."""
        for resource in ("permitrequests", "kopfpeerings"):
            for held in await self.objects(resource):
                name = held["metadata"]["name"]
                await self.patch(resource, name, {"metadata": {"finalizers": None}})
        await self.kube.request("DELETE", f"/api/v1/namespaces/{self.name}")
        for kind in ("clusterrolebindings", "clusterroles"):
            path = f"{RBAC}/{kind}/{cluster_role_name(OPERATOR_ACCOUNT, self.name)}"
            if await self.kube.get(path):
                await self.kube.request("DELETE", path)

    async def events_for(self, name: str) -> list[JSON]:
        """The Events about the object `name`, oldest first."""
        events = await self.objects("events", fieldSelector=f"involvedObject.name={name}")
        return sorted(
            events,
            key=lambda e: (e.get("firstTimestamp") or "", int(e["metadata"]["resourceVersion"])),
        )


async def new_namespace(kube: Kube, prefix: str) -> Namespace:
    """A namespace enforcing the `restricted` Pod Security Standard, as the chart's is, once its
    default ServiceAccount exists (pods without an account of their own need it)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await kube.request(
        "POST",
        "/api/v1/namespaces",
        body={
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": POD_SECURITY},
        },
    )
    await eventually(lambda: kube.get(f"/api/v1/namespaces/{name}/serviceaccounts/default"))
    return Namespace(kube, name)


async def forget_cluster_peering(kube: Kube, name: str) -> None:
    """Deletes a ClusterKopfPeering, without the finalizer Kopf put on it for the controller's
    daemon (which the stopped operator leaves behind)."""
    path = f"/apis/kopf.dev/v1/clusterkopfpeerings/{name}"
    await kube.request(
        "PATCH", path, body={"metadata": {"finalizers": None}}, content_type=MERGE_PATCH
    )
    await kube.request("DELETE", path)


def permit_request(name: str, **spec: Any) -> JSON:
    return {
        "apiVersion": API_VERSION,
        "kind": "PermitRequest",
        "metadata": {"name": name},
        "spec": {"applicationId": name, "secretName": f"{name}-applicant", **spec},
    }


def runner_pool(name: str = "default", **spec: Any) -> JSON:
    return {
        "apiVersion": API_VERSION,
        "kind": "RunnerPool",
        "metadata": {"name": name},
        "spec": spec,
    }
