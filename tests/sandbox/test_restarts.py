"""The platform's Kubernetes parts crash and come back with their state, as the chaos run makes
them: kube-apiserver killed and started with the same flags, etcd killed and started on its data
directory, the node agent killed (its containers with it) and started again, taking back the
pods bound to its node. Each checked through the real kubectl."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from permisos_sandbox.platform.kubernetes import NODE_NAME, LocalKubernetes
from tests.cluster import eventually, kubectl
from tests.sandbox.test_controlplane import apply, get_json
from tests.sandbox.test_node import deployment, python

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(300)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalKubernetes]:
    """The platform's control plane and node agent (without a pod network: one machine holds
    one, and these tests need none)."""
    state = tmp_path_factory.mktemp("restarts")
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "VIRTUAL_ENV")}
    kubernetes = LocalKubernetes(state, "permisos", state / "logs", env, "", ())
    await kubernetes.start()
    try:
        yield kubernetes
    finally:
        await kubernetes.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def namespace(local: LocalKubernetes) -> str:
    name = f"r-{uuid.uuid4().hex[:8]}"
    await kubectl(local.kubeconfig, "create", "namespace", name)
    return name


async def config_map(local: LocalKubernetes, namespace: str, name: str) -> dict[str, Any]:
    return await get_json(local.kubeconfig, "configmap", name, "-n", namespace)


async def test_kube_apiserver_killed_then_started_serves_every_object_again(
    local: LocalKubernetes, namespace: str
) -> None:
    cp = local.control_plane
    assert cp is not None
    admin = local.kubeconfig
    await kubectl(admin, "create", "configmap", "before", "-n", namespace, "--from-literal=a=1")
    pid = cp.pids()["kube-apiserver"]

    cp.kill_component("kube-apiserver")
    assert "kube-apiserver" not in cp.pids() and not cp.serving()
    code, _, err = await kubectl(admin, "get", "configmaps", "-n", namespace, check=False)
    assert code != 0 and "refused" in err

    took = cp.start_component("kube-apiserver")
    assert cp.serving() and cp.pids()["kube-apiserver"] != pid and took < 60
    # The same address and certificates: the kubeconfig made before works as it did.
    assert (await config_map(local, namespace, "before"))["data"] == {"a": "1"}
    await kubectl(admin, "create", "configmap", "after", "-n", namespace)


async def test_etcd_killed_then_started_keeps_every_object(
    local: LocalKubernetes, namespace: str
) -> None:
    cp = local.control_plane
    assert cp is not None
    admin = local.kubeconfig
    await kubectl(admin, "create", "configmap", "kept", "-n", namespace, "--from-literal=b=2")

    cp.kill_component("etcd")
    assert "etcd" not in cp.pids()
    code, _, _ = await kubectl(
        admin, "create", "configmap", "lost", "-n", namespace, "--request-timeout=3s", check=False
    )
    assert code != 0, "no write is accepted without etcd"

    cp.start_component("etcd")

    async def served() -> bool:
        return cp.serving()

    await eventually(served, timeout=60, every=0.5)
    assert (await config_map(local, namespace, "kept"))["data"] == {"b": "2"}
    await kubectl(admin, "create", "configmap", "written-after", "-n", namespace)


async def test_the_node_agent_killed_and_started_again_takes_its_pods_back(
    local: LocalKubernetes, namespace: str
) -> None:
    admin = local.kubeconfig
    code = 'import time; print("up", flush=True); time.sleep(3600)'
    await apply(admin, deployment("sleeper", namespace, python(code, name="sleeper")))

    async def running(restarts: int) -> tuple[str, int] | None:
        pods = (await get_json(admin, "pods", "-n", namespace, "-l", "app=sleeper"))["items"]
        if len(pods) != 1:
            return None
        (status,) = pods[0]["status"].get("containerStatuses") or [{}]
        if "running" not in status.get("state", {}) or status["restartCount"] != restarts:
            return None
        return pods[0]["metadata"]["uid"], int(status["containerID"].removeprefix("local://"))

    uid, pid = await eventually(lambda: running(0), timeout=60)
    agent = local.node
    assert agent is not None and agent.proc is not None
    agent_pid = agent.proc.pid

    took = await local.restart_node()

    assert agent.alive() and agent.proc.pid != agent_pid and took < 60
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid), "the container died with its agent"
    # The same pod, its container started again by the new agent (restartPolicy Always), which
    # reports the old one as the kubelet reports a container it cannot find.
    again_uid, again_pid = await eventually(lambda: running(1), timeout=60)
    assert again_uid == uid and again_pid != pid
    pod = await get_json(admin, "pods", "-n", namespace, "-l", "app=sleeper")
    (status,) = pod["items"][0]["status"]["containerStatuses"]
    assert status["lastState"]["terminated"]["reason"] == "ContainerStatusUnknown"
    node = await get_json(admin, "node", NODE_NAME)
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert ready["Ready"] == "True"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


async def test_a_container_restarted_while_the_apiserver_is_down_is_reported_once_it_is_back(
    local: LocalKubernetes, namespace: str
) -> None:
    """The kubelet's status manager keeps trying: a change whose report failed is reported
    when the apiserver answers again, though nothing changes after it."""
    cp = local.control_plane
    assert cp is not None
    admin = local.kubeconfig
    code = 'import time; print("patient", flush=True); time.sleep(3600)'
    await apply(admin, deployment("patient", namespace, python(code, name="patient")))

    async def running(restarts: int) -> int | None:
        pods = (await get_json(admin, "pods", "-n", namespace, "-l", "app=patient"))["items"]
        statuses = pods[0]["status"].get("containerStatuses") or [{}] if len(pods) == 1 else [{}]
        state = statuses[0].get("state", {})
        if "running" not in state or statuses[0]["restartCount"] != restarts:
            return None
        return int(statuses[0]["containerID"].removeprefix("local://"))

    pid = await eventually(lambda: running(0), timeout=60)
    cp.kill_component("kube-apiserver")
    try:
        os.kill(pid, signal.SIGKILL)
        # Restarted after the kubelet's first back-off (10 s), its report failing meanwhile.
        await eventually(_sync(lambda: _restarted(local, pid)), timeout=30, every=0.5)
        await asyncio.sleep(5)  # the agent's quick retries of that report are over
    finally:
        cp.start_component("kube-apiserver")
    again = await eventually(lambda: running(1), timeout=30, every=0.5)
    assert again != pid


def _restarted(local: LocalKubernetes, old_pid: int) -> bool:
    """A new process of the `patient` container runs (seen in /proc, not through the API)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == old_pid:
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b'print("patient"' in cmdline:
            return True
    return False


def _sync(check: Any) -> Any:
    async def probe() -> bool:
        return bool(check())

    return probe


async def test_a_pod_marked_not_ready_by_the_node_controller_is_reported_ready_again(
    local: LocalKubernetes, namespace: str
) -> None:
    """While the apiserver cannot hear the node (down for a minute, say), the node lifecycle
    controller marks its pods not Ready; the node agent, like the kubelet, puts back what it
    knows once it sees that, or the pods stay out of their Services for good."""
    admin = local.kubeconfig
    code = 'import time; print("steady", flush=True); time.sleep(3600)'
    await apply(admin, deployment("steady", namespace, python(code, name="steady")))

    async def ready(expected: str) -> str | None:
        pods = (await get_json(admin, "pods", "-n", namespace, "-l", "app=steady"))["items"]
        if len(pods) != 1:
            return None
        conditions = {c["type"]: c["status"] for c in pods[0]["status"].get("conditions") or []}
        return pods[0]["metadata"]["name"] if conditions.get("Ready") == expected else None

    name = await eventually(lambda: ready("True"), timeout=60)
    marked = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "NodeStatusUnknown"},
            ]
        }
    }
    await kubectl(
        admin,
        *("patch", "pod", name, "-n", namespace, "--subresource=status"),
        *("--type=strategic", "-p", json.dumps(marked)),
    )
    await eventually(lambda: ready("True"), timeout=15, every=0.5)
