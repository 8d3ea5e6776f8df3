"""The platform's Helm release: `charts/permisos` installed with the real `helm` (built with the
control plane) into the local cluster, as an engineer installs it anywhere: the Secrets that
`existingSecret` names first, then `helm install -f chart-values.yaml -f <this machine's
addresses>`, then until its Deployments are Ready."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path
from typing import Any

import yaml

from permisos.kube import Kube, KubeError
from permisos_sandbox.cluster.build import bin_dir

from .children import PartFailed

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "permisos"
VALUES = Path(__file__).with_name("chart-values.yaml")
RELEASE = "permisos"


def helm_binary() -> Path:
    return bin_dir() / "helm"


def helm_env(state_dir: Path) -> dict[str, str]:
    """Helm's cache, settings and data beside the kubeconfig, never in the user's home."""
    home = state_dir / "helm"
    return {f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}


async def helm(
    kubeconfig: Path, *args: str, check: bool = True, within: float = 300.0
) -> tuple[int, str, str]:
    """The real helm against `kubeconfig`: exit code, stdout, stderr; with `check`, a failure
    raises PartFailed with helm's own message."""
    proc = await asyncio.create_subprocess_exec(
        str(helm_binary()),
        *("--kubeconfig", str(kubeconfig), *args),
        env={**os.environ, **helm_env(kubeconfig.parent)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), within)
    code = proc.returncode or 0
    if check and code:
        raise PartFailed(f"helm {args[0]} failed: {err.decode().strip()}")
    return code, out.decode(), err.decode()


async def create_secrets(kube: Kube, namespace: str, secrets: dict[str, dict[str, str]]) -> None:
    for name, values in secrets.items():
        data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}
        await kube.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body=body)


def write_values(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(
        "# This machine's addresses for the chart, written by the platform at every start.\n"
        + yaml.safe_dump(values, sort_keys=False)
    )
    return path


async def install(kubeconfig: Path, namespace: str, machine_values: Path) -> str:
    _, out, _ = await helm(
        kubeconfig,
        *("install", RELEASE, str(CHART), "-n", namespace),
        *("-f", str(VALUES), "-f", str(machine_values)),
    )
    return out


async def deployments_ready(kube: Kube, namespace: str) -> dict[str, str]:
    """Each Deployment of the release as `kubectl get deploy` shows it: ready/wanted, where a
    rollout still under way (`kubectl rollout status` would wait) counts no ready replica."""
    found = await kube.get(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        labelSelector=f"app.kubernetes.io/instance={RELEASE}",
    )
    shown = {}
    for d in (found or {}).get("items") or []:
        wanted, status = d["spec"]["replicas"], d.get("status") or {}
        rolled = (
            status.get("observedGeneration", 0) >= d["metadata"]["generation"]
            and status.get("updatedReplicas", 0) == wanted
            and status.get("replicas", 0) == wanted  # no old pod left
        )
        shown[d["metadata"]["name"]] = f"{status.get('readyReplicas', 0) if rolled else 0}/{wanted}"
    return shown


async def wait_ready(kube: Kube, namespace: str, within: float = 180.0) -> dict[str, str]:
    """Until every Deployment of the release has rolled out: all its replicas up to date and
    Ready, none of an older revision left."""
    deadline = time.monotonic() + within
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        try:
            seen = await deployments_ready(kube, namespace)
        except KubeError:
            seen = {}
        if seen and all(a == b for a, b in (v.split("/") for v in seen.values())):
            return seen
        await asyncio.sleep(0.5)
    raise PartFailed(
        f"the release's Deployments were not Ready within {within:.0f} s: {seen} "
        f"(`kubectl get pods -n {namespace}` and `kubectl logs` say why)"
    )
