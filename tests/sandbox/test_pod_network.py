"""Contract tests of the node agent's pod network: each pod in a network namespace of its own
with an address from the node's CIDR, as a CNI bridge gives, on a control plane of this module
(its node is the only one, so the scheduler puts every pod there)."""

from __future__ import annotations

import errno
import http.server
import ipaddress
import re
import socket
import subprocess
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.ports import free_port
from tests.cluster import eventually, kubectl
from tests.nodes import NodeAgentProcess
from tests.sandbox.test_controlplane import apply, get_json
from tests.sandbox.test_node import deployment, job, job_condition, pods_of, python

CIDR = "10.244.7.0/24"
PORT = 8080  # every replica listens on the same port, each in its own namespace


GATEWAY = "10.244.7.1"


class Answer(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"from the host")


@pytest.fixture(scope="module")
def host_server() -> Iterator[int]:
    """A server of this machine on loopback only, as PostgreSQL or the simulators are."""
    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def cluster(host_server: int) -> Iterator[tuple[ControlPlane, NodeAgentProcess]]:
    with ControlPlane(log=lambda line: None) as cp, tempfile.TemporaryDirectory() as directory:
        agent = NodeAgentProcess(
            cp, "permisos-podnet", Path(directory), pod_network=CIDR, host_ports=(host_server,)
        )
        agent.start()
        try:
            yield cp, agent
        finally:
            agent.stop()


@pytest.fixture
async def namespace(cluster: tuple[ControlPlane, NodeAgentProcess]) -> str:
    name = f"net-{uuid.uuid4().hex[:8]}"
    await kubectl(cluster[0].admin_kubeconfig, "create", "namespace", name)
    return name


def links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


async def test_replicas_listen_on_one_port_each_at_its_own_address(
    cluster: tuple[ControlPlane, NodeAgentProcess], namespace: str
) -> None:
    admin = cluster[0].admin_kubeconfig
    await apply(admin, deployment("web", namespace, echo_server(), replicas=2))
    pods = await eventually(lambda: ready_pods(admin, namespace, "web", 2), timeout=60)
    addresses = {pod["status"]["podIP"]: pod["metadata"]["name"] for pod in pods}
    assert len(addresses) == 2
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(CIDR) for a in addresses)
    for address, name in addresses.items():
        with urllib.request.urlopen(f"http://{address}:{PORT}/", timeout=5) as answer:
            assert answer.read().decode() == name
    # Each pod's own veth is on the node's bridge.
    assert links().count("master pm") >= 2


async def test_a_pod_reaches_the_api_at_the_kubernetes_service_address(
    cluster: tuple[ControlPlane, NodeAgentProcess], namespace: str
) -> None:
    admin = cluster[0].admin_kubeconfig
    code = f"""
        import os
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException
        config.load_incluster_config()
        print(os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"])
        try:
            client.CoreV1Api().list_namespaced_secret("{namespace}")
        except ApiException as error:
            print("secrets:", error.status)
    """
    await apply(admin, job("client", namespace, python(code)))
    done = await eventually(lambda: job_condition(admin, namespace, "client"), timeout=60)
    assert done["type"] == "Complete"
    _, out, _ = await kubectl(admin, "logs", "job/client", "-n", namespace)
    assert out == "10.96.0.1 443\nsecrets: 403\n"


async def test_a_pod_reaches_the_hosts_loopback_servers_on_the_ports_the_node_is_given(
    cluster: tuple[ControlPlane, NodeAgentProcess], namespace: str, host_server: int
) -> None:
    admin = cluster[0].admin_kubeconfig
    other = free_port("127.0.0.1")  # not given to the node: nothing answers there
    code = f"""
        import urllib.request
        print(urllib.request.urlopen("http://{GATEWAY}:{host_server}/", timeout=5).read().decode())
        try:
            urllib.request.urlopen("http://{GATEWAY}:{other}/", timeout=5)
        except OSError as error:
            print("other port:", type(error.reason).__name__)
    """
    await apply(admin, job("fetch", namespace, python(code)))
    done = await eventually(lambda: job_condition(admin, namespace, "fetch"), timeout=60)
    assert done["type"] == "Complete"
    _, out, _ = await kubectl(admin, "logs", "job/fetch", "-n", namespace)
    assert out == "from the host\nother port: ConnectionRefusedError\n"


async def test_a_pods_network_does_not_change_once_it_runs(
    cluster: tuple[ControlPlane, NodeAgentProcess], namespace: str
) -> None:
    """The addresses a pod sees when it starts are the ones it keeps: a browser that sees an
    address appear (the IPv6 link-local one, after duplicate address detection) fails its
    navigation under way with ERR_NETWORK_CHANGED."""
    admin = cluster[0].admin_kubeconfig
    code = """
        import pathlib, time
        first = pathlib.Path("/proc/net/if_inet6").read_text()
        time.sleep(3)
        print(first == pathlib.Path("/proc/net/if_inet6").read_text(), "eth0" in first)
    """
    await apply(admin, job("settled", namespace, python(code)))
    done = await eventually(lambda: job_condition(admin, namespace, "settled"), timeout=60)
    assert done["type"] == "Complete"
    _, out, _ = await kubectl(admin, "logs", "job/settled", "-n", namespace)
    assert out == "True False\n"


async def test_a_pod_keeps_reaching_the_host_while_other_pods_come_and_go(
    cluster: tuple[ControlPlane, NodeAgentProcess], namespace: str, host_server: int
) -> None:
    """Pods ending must not move the gateway: a bridge takes its lowest port's MAC unless it has
    its own, and a pod holding the old one in its ARP cache lost the database and the API for
    up to half a minute (the e2e's 503s and 30 s silences)."""
    admin = cluster[0].admin_kubeconfig
    code = f"""
        import pathlib, time, urllib.request
        failures, macs, first = 0, set(), True
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen("http://{GATEWAY}:{host_server}/", timeout=1).read()
            except OSError:
                failures += 1
            for line in pathlib.Path("/proc/net/arp").read_text().splitlines()[1:]:
                if line.split()[0] == "{GATEWAY}":
                    macs.add(line.split()[3])
            if first:
                print("fetching", flush=True)
                first = False
            time.sleep(0.2)
        print("failures", failures, "gateway MACs", len(macs))
    """
    await apply(admin, job("watcher", namespace, python(code)))

    async def fetching() -> bool | None:
        _, out, _ = await kubectl(admin, "logs", "job/watcher", "-n", namespace, check=False)
        return True if "fetching" in out else None

    await eventually(fetching, timeout=60)
    # Six short pods, three at a time: each one's veth joins the bridge, then leaves it.
    passers = job("passers", namespace, python("print('passed')"), completions=6, parallelism=3)
    await apply(admin, passers)
    done = await eventually(lambda: job_condition(admin, namespace, "passers"), timeout=60)
    assert done["type"] == "Complete"
    done = await eventually(lambda: job_condition(admin, namespace, "watcher"), timeout=60)
    assert done["type"] == "Complete"
    _, out, _ = await kubectl(admin, "logs", "job/watcher", "-n", namespace)
    assert out.splitlines()[-1] == "failures 0 gateway MACs 1"


async def test_after_the_agent_restarts_each_pod_reports_its_one_new_address(
    cluster: tuple[ControlPlane, NodeAgentProcess], namespace: str
) -> None:
    """A crashed agent's pods are given addresses afresh when it starts again; each pod's status
    must then name its new address alone (the old and new merged are refused: one address per
    family), or the Service behind it keeps sending to the old one."""
    admin = cluster[0].admin_kubeconfig
    _, agent = cluster
    await apply(admin, deployment("first", namespace, echo_server()))
    await eventually(lambda: ready_pods(admin, namespace, "first", 1), timeout=60)
    await apply(admin, deployment("second", namespace, echo_server()))
    (before,) = await eventually(lambda: ready_pods(admin, namespace, "second", 1), timeout=60)
    # The first's address, below the second's, is handed out first after the restart.
    await kubectl(admin, "delete", "deployment", "first", "-n", namespace, "--wait=false")
    await eventually(lambda: gone(admin, namespace, "app=first"), timeout=60)

    agent.kill()
    agent.start()

    async def moved() -> dict[str, Any] | None:
        pods = await ready_pods(admin, namespace, "second", 1)
        if not pods or pods[0]["status"]["containerStatuses"][0]["restartCount"] != 1:
            return None
        return pods[0] if pods[0]["status"]["podIP"] != before["status"]["podIP"] else None

    after = await eventually(moved, timeout=90)
    assert after["status"]["podIPs"] == [{"ip": after["status"]["podIP"]}]
    address = after["status"]["podIP"]
    with urllib.request.urlopen(f"http://{address}:{PORT}/", timeout=5) as answer:
        assert answer.read().decode() == after["metadata"]["name"]


async def test_while_no_bridge_holds_the_network_a_pods_address_is_unreachable(
    cluster: tuple[ControlPlane, NodeAgentProcess], namespace: str
) -> None:
    """Between a crashed agent's bridge swept and the new one made, a connection to a pod's
    address must fail (no route to host), as one to a dead pod's address does in a cluster, and
    never reach this machine's default route (whose egress filter answers HTTP itself)."""
    admin = cluster[0].admin_kubeconfig
    _, agent = cluster
    await apply(admin, deployment("lone", namespace, echo_server()))
    (pod,) = await eventually(lambda: ready_pods(admin, namespace, "lone", 1), timeout=60)
    agent.kill()
    bridge = re.search(r" (pm\w{5}br)[:@]", links())
    assert bridge, links()
    subprocess.run(["ip", "link", "delete", bridge.group(1)], check=True)  # as a sweep does
    try:
        with pytest.raises(OSError) as refused:
            socket.create_connection((pod["status"]["podIP"], PORT), timeout=5).close()
        assert refused.value.errno == errno.EHOSTUNREACH, refused.value
    finally:
        agent.start()

    async def restarted() -> bool:
        pods = await ready_pods(admin, namespace, "lone", 1)
        return bool(pods) and pods[0]["status"]["containerStatuses"][0]["restartCount"] >= 1

    await eventually(restarted, timeout=90)  # the new agent runs the pod again


def echo_server() -> dict[str, Any]:
    """A container answering its pod's name on PORT, ready once it does."""
    server = f"""
        import http.server, os

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(os.environ["POD_NAME"].encode())

        http.server.HTTPServer(("0.0.0.0", {PORT}), Handler).serve_forever()
    """
    return python(
        server,
        name="web",
        ports=[{"name": "http", "containerPort": PORT}],
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
    )


async def ready_pods(
    admin: Path, namespace: str, name: str, replicas: int
) -> list[dict[str, Any]] | None:
    found = await get_json(admin, "deployment", name, "-n", namespace)
    if found["status"].get("readyReplicas") != replicas:
        return None
    pods = await pods_of(admin, namespace, f"app={name}")
    # The Deployment's count lags its pods: one whose container just restarted still counts.
    ready = [p for p in pods if _condition(p, "Ready") == "True"]
    return pods if len(ready) == len(pods) == replicas else None


def _condition(pod: dict[str, Any], kind: str) -> str | None:
    conditions = pod["status"].get("conditions", [])
    return next((c["status"] for c in conditions if c["type"] == kind), None)


async def gone(admin: Path, namespace: str, selector: str) -> bool:
    return not await pods_of(admin, namespace, selector)


def test_a_stopped_agent_leaves_no_namespace_and_no_bridge(
    cluster: tuple[ControlPlane, NodeAgentProcess],
) -> None:
    """Last in this module: it stops the module's agent."""
    _, agent = cluster
    assert " pm" in links()
    assert agent.stop() == 0, agent.log_path.read_text()[-3000:]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert [n for n in namespaces.split() if n.startswith("pm")] == []
    assert " pm" not in links()
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
    assert CIDR not in routes
