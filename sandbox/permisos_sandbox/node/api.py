"""The calls the node agent makes to kube-apiserver, as `system:node:<name>`: the Node
authorizer lets it read only what the pods bound to it reference, and NodeRestriction lets it
write only its own Node, Lease and pods."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from permisos.kube import JSON, STRATEGIC_MERGE_PATCH, Kube, KubeError, fmt_time, now, parse_time

log = logging.getLogger("permisos.node")


def pod_path(pod: JSON, sub: str = "") -> str:
    meta = pod["metadata"]
    return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}{sub}"


class NodeApi:
    def __init__(self, kube: Kube, node_name: str) -> None:
        self.kube = kube
        self.node_name = node_name

    async def get_secret(self, namespace: str, name: str) -> JSON | None:
        return await self.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")

    async def get_configmap(self, namespace: str, name: str) -> JSON | None:
        return await self.kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")

    async def token(self, pod: JSON, audience: str | None, seconds: int) -> tuple[str, datetime]:
        """A ServiceAccount token bound to the pod (TokenRequest), as the kubelet asks for one:
        it dies with the pod."""
        meta, spec = pod["metadata"], pod.get("spec") or {}
        account = spec.get("serviceAccountName") or "default"
        answer = await self.kube.request(
            "POST",
            f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token",
            body={
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {
                    "audiences": [audience] if audience else [],
                    "expirationSeconds": max(seconds, 600),
                    "boundObjectRef": {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                },
            },
        )
        status = answer.get("status") or {}
        expires = parse_time(status.get("expirationTimestamp")) or now() + timedelta(
            seconds=seconds
        )
        return str(status.get("token") or ""), expires

    async def patch_status(self, pod: JSON, status: JSON) -> JSON:
        """A strategic merge patch, as the kubelet's status manager sends: conditions merge by
        type, so those of the scheduler and the controllers stay. The pod's addresses replace
        the list: merged by `ip`, a pod that an agent restarted at another address would name
        both, which the apiserver refuses (one address per family)."""
        if status.get("podIPs"):
            status = {**status, "podIPs": [*status["podIPs"], {"$patch": "replace"}]}
        return await self.kube.request(
            "PATCH",
            pod_path(pod, "/status"),
            body={"metadata": {"uid": pod["metadata"]["uid"]}, "status": status},
            content_type=STRATEGIC_MERGE_PATCH,
        )

    async def delete_pod(self, pod: JSON) -> None:
        """The final delete of a pod the agent has stopped: no grace left, and only this pod
        (a pod of the same name created since is someone else's)."""
        try:
            await self.kube.request(
                "DELETE",
                pod_path(pod),
                body={
                    "apiVersion": "v1",
                    "kind": "DeleteOptions",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": pod["metadata"]["uid"]},
                },
            )
        except KubeError as error:
            if error.status not in (404, 409):
                raise

    async def event(self, pod: JSON, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event about the pod, from the kubelet of this node. Best effort: an Event
        that cannot be written is not worth a retry."""
        meta = pod["metadata"]
        stamp = fmt_time(now())
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{uuid.uuid4().hex[:16]}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "kubelet", "host": self.node_name},
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.kube.request(
                "POST", f"/api/v1/namespaces/{meta['namespace']}/events", body=event
            )
        except Exception as error:  # events are best effort, as in client-go
            log.info("event %s on pod %s not written: %s", reason, meta["name"], error)
