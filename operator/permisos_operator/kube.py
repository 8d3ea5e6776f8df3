"""The operator's writes to the Kubernetes API, through lightkube.

Every status write carries the resourceVersion the decision was made from, so a decision taken on
a stale view fails with 409 Conflict instead of overwriting a newer state.
"""

from __future__ import annotations

import socket
from typing import Any, cast

from lightkube import ALL_NS, ApiError, AsyncClient
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Event, Pod
from lightkube.types import CascadeType, PatchType

from permisos.resources import GROUP, VERSION
from permisos_operator.timeutil import format_time, utcnow

PermitRequest = create_namespaced_resource(GROUP, VERSION, "PermitRequest", "permitrequests")
RunnerPool = create_namespaced_resource(GROUP, VERSION, "RunnerPool", "runnerpools")

Body = dict[str, Any]
COMPONENT = "permisos-operator"


class Conflict(Exception):
    """The object changed since the decision was made; decide again from the fresh object."""


def _dict(obj: Any) -> Body:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


class Kube:
    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.host = socket.gethostname()

    async def close(self) -> None:
        await self.client.close()

    async def _patch(
        self, res: Any, namespace: str, name: str, patch: Body, kind: PatchType = PatchType.MERGE
    ) -> Body:
        try:
            result = await self.client.patch(res, name, patch, namespace=namespace, patch_type=kind)
        except ApiError as error:
            if error.status.code == 409:
                raise Conflict(str(error.status.message)) from error
            raise
        return _dict(result)

    async def write_status(
        self, namespace: str, name: str, resource_version: str, old: Body, new: Body
    ) -> Body:
        """Replaces the status with `new`, if the object is still at `resource_version`."""
        patch: Body = {k: None for k in old if k not in new}
        patch.update(new)
        body = {"metadata": {"resourceVersion": resource_version}, "status": patch}
        return await self._patch(PermitRequest.Status, namespace, name, body)

    async def set_finalizers(
        self, namespace: str, name: str, resource_version: str, finalizers: list[str]
    ) -> Body:
        body = {"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}}
        return await self._patch(PermitRequest, namespace, name, body)

    async def write_pool_status(self, namespace: str, name: str, status: Body) -> Body:
        return await self._patch(RunnerPool.Status, namespace, name, {"status": status})

    async def create_job(self, manifest: Body) -> Body | None:
        """Creates the Job; one that already exists is the same attempt, so that is success."""
        try:
            return _dict(await self.client.create(Job.from_dict(manifest)))
        except ApiError as error:
            if error.status.code == 409:
                return None
            raise

    async def delete_job(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(Job, name, namespace=namespace, cascade=CascadeType.BACKGROUND)
        except ApiError as error:
            if error.status.code != 404:
                raise

    async def post_event(self, obj: Body, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about `obj`, which `kubectl describe` lists."""
        meta = obj["metadata"]
        now = format_time(utcnow())
        event = cast(
            Event,
            Event.from_dict(
                {
                    "metadata": {
                        "generateName": f"{meta['name']}.",
                        "namespace": meta["namespace"],
                    },
                    "involvedObject": {
                        "apiVersion": obj.get("apiVersion", f"{GROUP}/{VERSION}"),
                        "kind": obj.get("kind", "PermitRequest"),
                        "name": meta["name"],
                        "namespace": meta["namespace"],
                        "uid": meta.get("uid"),
                        "resourceVersion": meta.get("resourceVersion"),
                    },
                    "type": type_,
                    "reason": reason,
                    "message": message[:1024],
                    "source": {"component": COMPONENT, "host": self.host},
                    "reportingComponent": COMPONENT,
                    "reportingInstance": self.host,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                }
            ),
        )
        await self.client.create(event)

    async def list_all(self, namespaces: list[str]) -> dict[str, list[Body]]:
        """Every object the operator caches, for a full resync."""
        targets = namespaces or [ALL_NS]
        out: dict[str, list[Body]] = {"requests": [], "pools": [], "jobs": [], "pods": []}
        selector: dict[str, Any] = {"app.kubernetes.io/managed-by": "permisos-operator"}
        for ns in targets:
            plan: tuple[tuple[str, Any, dict[str, Any] | None], ...] = (
                ("requests", PermitRequest, None),
                ("pools", RunnerPool, None),
                ("jobs", Job, selector),
                ("pods", Pod, selector),
            )
            for field, res, labels in plan:
                async for item in self.client.list(res, namespace=ns, labels=labels):
                    body = _dict(item)
                    body.setdefault("kind", res.__name__)
                    out[field].append(body)
        return out
