"""The node agent: registers the Node, follows the pods bound to it and gives each a worker.

Pods are watched with `fieldSelector=spec.nodeName=<node>`, as the kubelet does. At start it
removes what an agent that died left in its memory-backed directory, and takes back the pods
bound to the node (their processes died with the old agent; `pods.PodWorker` decides what that
means for each). On stop every container gets SIGTERM and a few seconds, the pods are reported
Failed as on a graceful node shutdown, and nothing of theirs is left in memory or on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from permisos.kube import JSON, Kube, KubeError
from permisos_sandbox.cluster.pki import KUBERNETES_SERVICE_IP

from .api import NodeApi
from .config import STOP_GRACE_SECONDS, NodeConfig
from .logs import LogServer
from .network import PodNetwork
from .pods import PodWorker, describe
from .registration import Registration

log = logging.getLogger("permisos.node")
SECRETS_MOUNT_POINT = Path("/run/secrets")


def _make_mount_point() -> None:
    """The host's /run/secrets, where each container mounts a small tmpfs of its own. It stays
    (empty) when the agent stops: removing it would detach the mounts of containers that other
    agents on this machine still run."""
    SECRETS_MOUNT_POINT.mkdir(mode=0o755, exist_ok=True)


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class NodeAgent:
    def __init__(
        self,
        config: NodeConfig,
        kube: Kube,
        *,
        tls_cert: Path,
        tls_key: Path,
        client_ca: Path,
        port: int = 0,
    ) -> None:
        self.config = config
        self.kube = kube
        self.api = NodeApi(kube, config.name)
        self.pods: dict[str, JSON] = {}  # uid -> the latest pod object bound here
        self.workers: dict[str, PodWorker] = {}
        self._finished: set[str] = set()
        self._tls = (tls_cert, tls_key, client_ca)
        self._port = port
        self.logs = LogServer(config.logs_dir, self.find_pod, self._is_running)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.registration: Registration | None = None
        self.network: PodNetwork | None = None

    @property
    def _api_address(self) -> tuple[str, int]:
        server = urlparse(str(self.kube.configuration.host))
        return server.hostname or "127.0.0.1", server.port or 443

    @property
    def container_env(self) -> dict[str, str]:
        """What every container gets beside its own environment: where the API is (the
        `kubernetes` Service's address with a pod network; else the apiserver's own, on
        loopback), then the node's extra settings."""
        host, number = self._api_address
        if self.network is not None:
            host, number = self.network.service_ip, 443
        port = str(number)
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            **self.config.extra_env,
        }

    # --- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        shutil.rmtree(self.config.runtime_dir, ignore_errors=True)  # a dead agent's leftovers
        self.config.pods_dir.mkdir(mode=0o700, parents=True)
        self.config.runtime_dir.chmod(0o700)
        self.config.logs_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.config.mount_namespaces:
            _make_mount_point()
        if self.config.pod_network:
            network = PodNetwork(
                self.config.pod_network,
                self.config.state_dir,
                self._api_address,
                KUBERNETES_SERVICE_IP,
                self.config.host_ports,
            )
            await network.start()
            self.network = network
        cert, key, ca = self._tls
        port = await self.logs.start(self._port, cert, key, ca)
        self.registration = Registration(self.kube, self.config, port)
        await self.registration.register()
        resource_version = await self._list()
        self._tasks.append(asyncio.create_task(self.registration.keep_alive()))
        self._tasks.append(asyncio.create_task(self._watch(resource_version)))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        workers = list(self.workers.values())
        for worker in workers:
            worker.request_stop("shutdown")
        running = [w.task for w in workers if w.task is not None]
        if running:
            await asyncio.wait(running, timeout=STOP_GRACE_SECONDS + 10)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.logs.stop()
        if self.network is not None:
            await self.network.stop()
        shutil.rmtree(self.config.runtime_dir, ignore_errors=True)

    # --- pods ------------------------------------------------------------------------------

    @property
    def _pods_path(self) -> str:
        return "/api/v1/pods"

    @property
    def _selector(self) -> str:
        return f"spec.nodeName={self.config.name}"

    async def _list(self) -> str:
        listing = await self.kube.request(
            "GET", self._pods_path, query={"fieldSelector": self._selector}
        )
        seen = set()
        items = sorted(
            listing.get("items") or [],
            key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
        )
        for pod in items:
            seen.add(pod["metadata"]["uid"])
            self._on_pod("MODIFIED", pod)
        for uid in [u for u in self.pods if u not in seen]:
            self._on_pod("DELETED", self.pods[uid])
        return str((listing.get("metadata") or {}).get("resourceVersion") or "")

    async def _watch(self, resource_version: str) -> None:
        delay = 0.5
        while True:
            try:
                async for kind, obj in self.kube.watch(
                    self._pods_path, resource_version=resource_version, fieldSelector=self._selector
                ):
                    if kind == "BOOKMARK":
                        resource_version = obj["metadata"]["resourceVersion"]
                    elif kind == "ERROR":
                        raise KubeError(int(obj.get("code") or 500), str(obj.get("message")))
                    else:
                        resource_version = obj["metadata"]["resourceVersion"]
                        self._on_pod(kind, obj)
                delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not (isinstance(error, KubeError) and error.status == 410):
                    log.warning("watching pods failed (%s); listing again", error)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                with contextlib.suppress(Exception):
                    resource_version = await self._list()

    def _on_pod(self, kind: str, pod: JSON) -> None:
        if self._stopping:
            return
        uid = str(pod["metadata"]["uid"])
        worker = self.workers.get(uid)
        if kind == "DELETED":
            self.pods.pop(uid, None)
            self._finished.discard(uid)
            if worker is not None:
                worker.update(pod)
                worker.request_stop("gone")
            return
        self.pods[uid] = pod
        if worker is not None:
            worker.update(pod)
            return
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        if is_terminal(pod) or uid in self._finished:
            if deleting:
                self._spawn(self.delete_pod(pod))  # nothing runs: it may go at once
            return
        worker = PodWorker(self, pod)
        if deleting:
            worker.request_stop("deleted")
        self.workers[uid] = worker
        worker.task = asyncio.create_task(worker.run(), name=f"pod-{pod['metadata']['name']}")

    def release(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]
        if worker.uid in self.pods:
            self._finished.add(worker.uid)

    async def delete_pod(self, pod: JSON) -> None:
        try:
            await self.api.delete_pod(pod)
        except Exception as error:
            log.warning("pod %s: not deleted (%s)", describe(pod), error)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    # --- what the log endpoint asks ---------------------------------------------------------

    def find_pod(self, namespace: str, name: str) -> JSON | None:
        for pod in self.pods.values():
            meta = pod["metadata"]
            if meta.get("namespace") == namespace and meta["name"] == name:
                return pod
        return None

    def _is_running(self, namespace: str, name: str) -> bool:
        pod = self.find_pod(namespace, name)
        return pod is not None and str(pod["metadata"]["uid"]) in self.workers
