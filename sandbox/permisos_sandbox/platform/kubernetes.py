"""The platform's Kubernetes: the real control plane (`permisos_sandbox.cluster`), the node
agent that runs its pods (`permisos_sandbox.node`) on a pod network of its own, the chart's CRDs
and the platform's namespace, enforcing the `restricted` Pod Security Standard as a production
namespace would."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from permisos.kube import JSON, MERGE_PATCH, Kube, KubeError
from permisos_sandbox.cluster import ControlPlane

from .children import Child, PartFailed

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "crds"
# The project's CRDs and Kopf's peering CRDs, as `helm install` would install them.
CHART_CRDS = ROOT / "charts" / "permisos" / "crds"
NODE_NAME = "permisos-local"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
APPLY_PATCH = "application/apply-patch+yaml"
POD_SECURITY = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


def load_crds(directory: Path = CRDS) -> list[JSON]:
    return [
        crd
        for path in sorted(directory.glob("*.yaml"))
        for crd in yaml.safe_load_all(path.read_text())
        if crd
    ]


async def apply_crds(kube: Kube, crds: list[JSON], within: float = 60.0) -> None:
    """Server-side apply of every CRD, then waits until each is Established."""
    names = []
    for crd in crds:
        if crd:
            name = crd["metadata"]["name"]
            names.append(name)
            await kube.request(
                "PATCH",
                f"{CRD_PATH}/{name}",
                query={"fieldManager": "permisos-platform", "force": True},
                body=crd,  # the client sends it as JSON, which is YAML
                content_type=APPLY_PATCH,
            )
    deadline = time.monotonic() + within
    for name in names:
        while True:
            crd = await kube.get(f"{CRD_PATH}/{name}") or {}
            conditions = (crd.get("status") or {}).get("conditions") or []
            established = any(
                c["type"] == "Established" and c["status"] == "True" for c in conditions
            )
            # Established is not yet served: for a moment the apiserver answers 429 "storage is
            # (re)initializing" to lists of the new resource.
            if established and await _lists(kube, crd):
                break
            if time.monotonic() > deadline:
                raise PartFailed(f"the CRD {name} was not Established within {within:.0f} s")
            await asyncio.sleep(0.1)  # the apiextensions controller has no event to wait on


async def _lists(kube: Kube, crd: JSON) -> bool:
    spec = crd["spec"]
    version = next(v["name"] for v in spec["versions"] if v.get("storage"))
    try:
        await kube.request("GET", f"/apis/{spec['group']}/{version}/{spec['names']['plural']}")
    except KubeError as error:
        if error.status == 429:
            return False
        raise
    return True


async def prepare_namespace(kube: Kube, namespace: str) -> None:
    """The namespace, created if needed, with Pod Security `restricted` enforced."""
    labels = {"metadata": {"labels": POD_SECURITY}}
    try:
        await kube.request(
            "PATCH", f"/api/v1/namespaces/{namespace}", body=labels, content_type=MERGE_PATCH
        )
    except KubeError as error:
        if error.status != 404:
            raise
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, **labels["metadata"]},
        }
        await kube.request("POST", "/api/v1/namespaces", body=body)


def _ready_condition(node: JSON) -> JSON:
    found = [c for c in (node.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"]
    return found[0] if found else {}


async def wait_node_ready(
    kube: Kube, node: str, child: Child, within: float = 60.0, *, old_heartbeat: str = ""
) -> None:
    """Until the Node is Ready and untainted, so the scheduler binds pods to it; with
    `old_heartbeat`, also until a heartbeat newer than that one (an agent started again)."""
    deadline = time.monotonic() + within
    while True:
        if not child.alive():
            raise child.failure("exited while starting")
        found: JSON = await kube.get(f"/api/v1/nodes/{node}") or {}
        ready = _ready_condition(found)
        fresh = not old_heartbeat or ready.get("lastHeartbeatTime") != old_heartbeat
        if ready.get("status") == "True" and fresh and not (found.get("spec") or {}).get("taints"):
            return
        if time.monotonic() > deadline:
            raise child.failure(f"did not make node {node} Ready within {within:.0f}s")
        await asyncio.sleep(0.2)


class LocalKubernetes:
    """Started by `start()`, stopped (node agent first, then the control plane) by `stop()`."""

    def __init__(
        self,
        state_dir: Path,
        namespace: str,
        logs: Path,
        env: dict[str, str],
        pod_network: str,
        host_ports: tuple[int, ...],
    ) -> None:
        self.state_dir = state_dir
        self.namespace = namespace
        self.logs = logs
        self.env = env
        self.pod_network = pod_network
        self.host_ports = host_ports
        self.control_plane: ControlPlane | None = None
        self.node: Child | None = None
        self.kube: Kube | None = None

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig, where kubectl users expect it (`var/kubeconfig`)."""
        return self.state_dir / "kubeconfig"

    @property
    def pod_logs(self) -> Path:
        """The node's container logs, `<namespace>_<pod>_<uid>/<container>/<n>.log`, kept after
        their pods are gone (a node's /var/log/pods)."""
        return self.state_dir / "node" / "logs"

    async def start(self) -> Kube:
        shutil.rmtree(self.state_dir / "controlplane", ignore_errors=True)
        cp = ControlPlane(self.state_dir / "controlplane", log=lambda line: print(line, flush=True))
        self.control_plane = cp
        await asyncio.to_thread(cp.start)
        shutil.copyfile(cp.admin_kubeconfig, self.kubeconfig)
        self.kubeconfig.chmod(0o600)
        self.kube = await Kube.from_kubeconfig(self.kubeconfig)
        await apply_crds(self.kube, load_crds(CHART_CRDS))
        await prepare_namespace(self.kube, self.namespace)
        creds = cp.node_credentials(NODE_NAME)
        self.node = Child(
            "node agent",
            [
                *(sys.executable, "-m", "permisos_sandbox.node", f"--name={NODE_NAME}"),
                f"--kubeconfig={creds.kubeconfig}",
                f"--tls-cert={creds.serving.cert}",
                f"--tls-key={creds.serving.key}",
                f"--client-ca={creds.client_ca}",
                f"--state-dir={self.state_dir / 'node'}",
            ],
            {
                **self.env,
                "PERMISOS_NODE_POD_NETWORK": self.pod_network,
                "PERMISOS_NODE_HOST_PORTS": json.dumps(list(self.host_ports)),
            },
            self.logs / "node.log",
        ).start()
        await wait_node_ready(self.kube, NODE_NAME, self.node)
        return self.kube

    async def restart_node(self) -> float:
        """The node agent crashes (SIGKILL; its containers die with it) and starts again on the
        same state directory, as systemd restarts a kubelet: it takes back the pods bound to the
        node (`node/agent.py`). Returns the seconds until the Node was Ready again."""
        assert self.node is not None and self.kube is not None
        before = _ready_condition(await self.kube.get(f"/api/v1/nodes/{NODE_NAME}") or {})
        began = time.monotonic()
        await asyncio.to_thread(self.node.kill)
        self.node.start()
        heartbeat = str(before.get("lastHeartbeatTime") or "")
        await wait_node_ready(self.kube, NODE_NAME, self.node, old_heartbeat=heartbeat)
        return time.monotonic() - began

    async def stop(self) -> None:
        if self.node is not None:
            await asyncio.to_thread(self.node.stop, 30.0)
            self.node = None
        if self.kube is not None:
            await self.kube.close()
            self.kube = None
        if self.control_plane is not None:
            await asyncio.to_thread(self.control_plane.stop)
            self.control_plane = None

    async def create(self, path: str, body: dict[str, Any]) -> None:
        assert self.kube is not None
        await self.kube.request("POST", path, body=body)
