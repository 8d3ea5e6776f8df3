"""The Node this agent registers and keeps alive, as the kubelet does: the machine's capacity,
the Ready condition, its address and kubelet port (where the apiserver fetches logs), and a
Lease in `kube-node-lease` renewed every 10 s so the node lifecycle controller sees it alive."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path

from permisos.kube import JSON, MERGE_PATCH, STRATEGIC_MERGE_PATCH, Kube, KubeError, fmt_time, now

from .config import (
    LEASE_DURATION_SECONDS,
    LEASE_RENEW_SECONDS,
    NODE_IP,
    STATUS_REPORT_SECONDS,
    NodeConfig,
)

log = logging.getLogger("permisos.node")
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
RUNTIME_VERSION = "permisos-node://processes"


def micro_time(moment: datetime) -> str:
    """A MicroTime, as Leases want it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def memory_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def capacity(config: NodeConfig) -> JSON:
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_bytes() // 1024}Ki",
        "pods": str(config.max_pods),
    }


def conditions(heartbeat: str, transition: str) -> list[JSON]:
    def cond(type_: str, status: str, reason: str, message: str) -> JSON:
        return {
            "type": type_,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": transition,
        }

    return [
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        cond("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]


def node_status(config: NodeConfig, port: int, version: str, since: str) -> JSON:
    stamp = fmt_time(now())
    machine = _read("/etc/machine-id")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "capacity": capacity(config),
        "allocatable": capacity(config),
        "conditions": conditions(stamp, since),
        "addresses": [
            {"type": "InternalIP", "address": NODE_IP},
            {"type": "Hostname", "address": config.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": machine,
            "systemUUID": machine,
            "bootID": _read("/proc/sys/kernel/random/boot_id"),
            "kernelVersion": platform.release(),
            "osImage": _os_image(),
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch,
        },
    }


def _os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.platform()


class Registration:
    """Creates (or takes back) the Node, then keeps its Lease and status fresh until stopped."""

    def __init__(self, kube: Kube, config: NodeConfig, port: int) -> None:
        self.kube = kube
        self.config = config
        self.port = port
        self.since = fmt_time(now())
        self.version = ""
        self.uid = ""

    @property
    def path(self) -> str:
        return f"/api/v1/nodes/{self.config.name}"

    async def register(self) -> None:
        self.version = str((await self.kube.request("GET", "/version")).get("gitVersion") or "")
        arch = node_status(self.config, self.port, self.version, self.since)["nodeInfo"][
            "architecture"
        ]
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.config.name,
                "labels": {
                    "kubernetes.io/hostname": self.config.name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": arch,
                },
            },
        }
        try:
            created = await self.kube.request("POST", "/api/v1/nodes", body=node)
        except KubeError as error:
            if error.status != 409:
                raise
            created = await self.kube.request("GET", self.path)
        self.uid = str(created["metadata"]["uid"])
        await self.report_status()
        await self.renew_lease()
        log.info(
            "node %s registered (%s, kubelet port %s)", self.config.name, hostname(), self.port
        )

    async def report_status(self) -> None:
        status = node_status(self.config, self.port, self.version, self.since)
        await self.kube.request(
            "PATCH",
            f"{self.path}/status",
            body={"status": status},
            content_type=STRATEGIC_MERGE_PATCH,
        )

    async def renew_lease(self) -> None:
        name = self.config.name
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": micro_time(now()),
        }
        try:
            await self.kube.request(
                "PATCH", f"{LEASES}/{name}", body={"spec": spec}, content_type=MERGE_PATCH
            )
        except KubeError as error:
            if error.status != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uid}
            lease = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": name, "ownerReferences": [owner]},
                "spec": spec,
            }
            await self.kube.request("POST", LEASES, body=lease)

    async def keep_alive(self) -> None:
        """The Lease every 10 s, the status every minute; a failure is logged and retried at
        the next beat (the node goes NotReady only if they stay away for 40 s)."""
        last_status = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(LEASE_RENEW_SECONDS)
            try:
                await self.renew_lease()
                if asyncio.get_running_loop().time() - last_status >= STATUS_REPORT_SECONDS:
                    await self.report_status()
                    last_status = asyncio.get_running_loop().time()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the next beat tries again
                log.warning("node %s: heartbeat failed: %s", self.config.name, error)


def hostname() -> str:
    return socket.gethostname()
