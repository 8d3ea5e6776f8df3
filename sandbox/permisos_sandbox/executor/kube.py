"""The few API calls the executor makes, over lightkube, on plain JSON dicts.

Everything goes through the real Kubernetes HTTP API, so the executor works against any API
server, not only the emulator.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, cast

from lightkube import ApiError, AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Event, Pod, Secret
from lightkube.types import CascadeType, PatchType

from permisos.kube import fmt_time as fmt_time
from permisos.kube import now as now
from permisos.kube import parse_time as parse_time  # the executor's modules take it from here

JSON = dict[str, Any]
log = logging.getLogger("permisos.executor")


def as_dict(obj: Any) -> JSON:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def status_code(error: BaseException) -> int | None:
    if isinstance(error, ApiError):
        return int(error.status.code or 0)
    return None


def key_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"].get("uid") or "")


class Kube:
    """A lightkube client with the executor's verbs; failures are lightkube ApiErrors."""

    def __init__(self, client: AsyncClient, component: str, host: str | None = None) -> None:
        self.client = client
        self.component = component
        self.host = host

    async def close(self) -> None:
        await self.client.close()

    async def get_secret(self, namespace: str, name: str) -> JSON | None:
        return await self._get(Secret, namespace, name)

    async def get_configmap(self, namespace: str, name: str) -> JSON | None:
        return await self._get(ConfigMap, namespace, name)

    async def get_job(self, namespace: str, name: str) -> JSON | None:
        return await self._get(Job, namespace, name)

    async def get_pod(self, namespace: str, name: str) -> JSON | None:
        return await self._get(Pod, namespace, name)

    async def _get(self, res: Any, namespace: str, name: str) -> JSON | None:
        try:
            return as_dict(await self.client.get(res, name, namespace=namespace))
        except ApiError as error:
            if status_code(error) == 404:
                return None
            raise

    async def create_pod(self, pod: JSON) -> JSON:
        return as_dict(await self.client.create(Pod.from_dict(pod)))

    async def delete_pod(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(Pod, name, namespace=namespace)
        except ApiError as error:
            if status_code(error) != 404:
                raise

    async def delete_job(self, namespace: str, name: str, cascade: CascadeType) -> None:
        try:
            await self.client.delete(Job, name, namespace=namespace, cascade=cascade)
        except ApiError as error:
            if status_code(error) != 404:
                raise

    async def patch_pod_status(self, namespace: str, name: str, status: JSON) -> JSON | None:
        """A merge patch of the pod's status, as the kubelet's status manager sends (None when
        the pod is gone)."""
        try:
            return as_dict(
                await self.client.patch(
                    Pod.Status,
                    name,
                    {"status": status},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                )
            )
        except ApiError as error:
            if status_code(error) == 404:
                return None
            raise

    async def patch_job_status(
        self, namespace: str, name: str, status: JSON, resource_version: str
    ) -> JSON:
        """Writes the Job's status only if nobody changed the Job since we read it (409 else)."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        return as_dict(
            await self.client.patch(
                Job.Status, name, body, namespace=namespace, patch_type=PatchType.MERGE
            )
        )

    async def set_pod_finalizers(
        self, namespace: str, name: str, finalizers: list[str], resource_version: str
    ) -> JSON | None:
        body = {"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}}
        try:
            return as_dict(
                await self.client.patch(
                    Pod, name, body, namespace=namespace, patch_type=PatchType.MERGE
                )
            )
        except ApiError as error:
            if status_code(error) == 404:
                return None
            raise

    async def event(
        self, obj: Mapping[str, Any], event_type: str, reason: str, message: str
    ) -> None:
        """Posts a core/v1 Event about `obj`; best effort, as client-go's recorder is. Messages
        name objects and containers only, never anything read from a Secret."""
        meta = obj["metadata"]
        stamp = fmt_time(now())
        namespace = meta.get("namespace") or "default"
        event: JSON = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", ""),
                "kind": obj.get("kind", ""),
                "name": meta["name"],
                "namespace": namespace,
                "uid": meta.get("uid", ""),
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": self.component},
            "reportingComponent": self.component,
            "reportingInstance": self.component,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        if self.host:
            event["source"]["host"] = event["reportingInstance"] = self.host
        try:
            await self.client.create(cast(Event, Event.from_dict(event)))
        except Exception as error:  # events never stop the work they describe
            log.debug("event %s not recorded: %s", reason, error)
