"""Contract tests of the node agent on the real control plane: what the real Job, Deployment,
TTL and scheduler controllers and kubectl see of pods it runs, as on a cluster's node."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.ports import free_port
from tests.cluster import eventually, kubectl
from tests.nodes import NodeAgentProcess
from tests.sandbox.test_controlplane import apply, get_json

IMAGE = "permisos/python"  # the node's image map: this virtual environment's interpreter


@pytest.fixture
async def namespace(control_plane: ControlPlane, node: NodeAgentProcess) -> str:
    name = f"node-{uuid.uuid4().hex[:8]}"
    await kubectl(control_plane.admin_kubeconfig, "create", "namespace", name)
    return name


def python(code: str, name: str = "main", **extra: Any) -> dict[str, Any]:
    """A container that runs `code` with the interpreter the image stands for."""
    return {"name": name, "image": IMAGE, "args": ["-c", textwrap.dedent(code)], **extra}


def job(name: str, namespace: str, container: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {"spec": {"restartPolicy": "Never", "containers": [container]}},
        },
    }


def deployment(
    name: str, namespace: str, container: dict[str, Any], replicas: int = 1
) -> dict[str, Any]:
    """A Deployment of `replicas` pods labelled `app=<name>`, each with `container`."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container]},
            },
        },
    }


async def job_condition(admin: Path, namespace: str, name: str) -> dict[str, Any] | None:
    found = await get_json(admin, "job", name, "-n", namespace)
    for condition in found.get("status", {}).get("conditions", []):
        if condition["type"] in ("Complete", "Failed") and condition["status"] == "True":
            return dict(condition)
    return None


async def pods_of(admin: Path, namespace: str, selector: str) -> list[dict[str, Any]]:
    return list((await get_json(admin, "pods", "-n", namespace, "-l", selector))["items"])


async def test_a_job_runs_to_complete_and_kubectl_logs_shows_its_output(
    control_plane: ControlPlane, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    await apply(admin, job("hello", namespace, python("print('one'); print('two')")))
    done = await eventually(lambda: job_condition(admin, namespace, "hello"), timeout=60)
    assert done["type"] == "Complete"

    (pod,) = await pods_of(admin, namespace, "job-name=hello")
    assert pod["spec"]["nodeName"] == "permisos-local"  # bound by the real scheduler
    assert pod["status"]["phase"] == "Succeeded"
    (status,) = pod["status"]["containerStatuses"]
    assert status["state"]["terminated"]["exitCode"] == 0
    assert status["state"]["terminated"]["reason"] == "Completed"

    # Through the apiserver, to the agent's kubelet endpoint and back.
    _, out, _ = await kubectl(admin, "logs", "job/hello", "-n", namespace)
    assert out == "one\ntwo\n"
    _, out, _ = await kubectl(admin, "logs", "job/hello", "-n", namespace, "--tail=1")
    assert out == "two\n"
    _, events, _ = await kubectl(
        admin, "get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}"
    )
    assert {"Scheduled", "Pulled", "Created", "Started", "Completed"} <= set(events.split())


async def test_a_command_naming_python_runs_this_venvs_interpreter_as_the_charts_do(
    control_plane: ControlPlane, namespace: str
) -> None:
    """The chart's containers bring `command: ["python", "-m", ...]` on their image; here the
    image is the node's map entry and `python` is this virtual environment's."""
    admin = control_plane.admin_kubeconfig
    container = {
        "name": "main",
        "image": "registry.example/permisos-operator:0.1.0",
        "command": ["python", "-c", "import sys, kopf; print(sys.prefix)"],
    }
    await apply(admin, job("chart-like", namespace, container))
    done = await eventually(lambda: job_condition(admin, namespace, "chart-like"), timeout=60)
    assert done["type"] == "Complete"
    _, out, _ = await kubectl(admin, "logs", "job/chart-like", "-n", namespace)
    assert out.strip() == sys.prefix


async def test_a_failed_container_fails_its_job_with_its_termination_message(
    control_plane: ControlPlane, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    # The process learns the path from its environment (the agent rewrites container paths in
    # values to the pod's own files; the runner's image does the same).
    code = """
        import os, sys
        with open(os.environ["TERMINATION_LOG"], "w") as f:
            f.write("the portal said no")
        sys.exit(3)
    """
    env = [{"name": "TERMINATION_LOG", "value": "/dev/termination-log"}]
    await apply(admin, job("fails", namespace, python(code, env=env)))
    done = await eventually(lambda: job_condition(admin, namespace, "fails"), timeout=60)
    assert (done["type"], done["reason"]) == ("Failed", "BackoffLimitExceeded")
    (pod,) = await pods_of(admin, namespace, "job-name=fails")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"] == "the portal said no"


async def test_the_real_controllers_enforce_a_jobs_deadline_and_its_ttl(
    control_plane: ControlPlane, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    sleeper = python("import time; time.sleep(120)")
    await apply(admin, job("slow", namespace, sleeper, activeDeadlineSeconds=2))
    done = await eventually(lambda: job_condition(admin, namespace, "slow"), timeout=60)
    assert (done["type"], done["reason"]) == ("Failed", "DeadlineExceeded")

    async def pods_gone() -> bool:
        # The Job controller deletes the running pod; the agent stops it, then deletes it.
        return not await pods_of(admin, namespace, "job-name=slow")

    await eventually(pods_gone, timeout=60)

    await apply(admin, job("brief", namespace, python("pass"), ttlSecondsAfterFinished=0))

    async def job_gone() -> bool:
        code, _, _ = await kubectl(admin, "get", "job", "brief", "-n", namespace, check=False)
        return code != 0

    await eventually(job_gone, timeout=60)


async def test_a_deployments_pod_becomes_ready_and_is_restarted_after_it_exits(
    control_plane: ControlPlane, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    port = free_port("127.0.0.1")
    server = f"""
        import http.server, os, sys

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")
                if self.path == "/exit":
                    os._exit(1)

        print("serving", flush=True)
        http.server.HTTPServer(("127.0.0.1", {port}), Handler).serve_forever()
    """
    container = python(
        server,
        name="web",
        ports=[{"name": "http", "containerPort": port}],
        readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        livenessProbe={"tcpSocket": {"port": port}, "periodSeconds": 2},
    )
    await apply(admin, deployment("web", namespace, container))

    async def ready_pod(restarts: int) -> dict[str, Any] | None:
        found = await get_json(admin, "deployment", "web", "-n", namespace)
        if found["status"].get("readyReplicas") != 1:
            return None
        (pod,) = await pods_of(admin, namespace, "app=web")
        (status,) = pod["status"]["containerStatuses"]
        return pod if status["ready"] and status["restartCount"] == restarts else None

    first = await eventually(lambda: ready_pod(0), timeout=60)
    ready = {c["type"]: c["status"] for c in first["status"]["conditions"]}
    assert ready["Ready"] == ready["ContainersReady"] == "True"

    # The server exits: the same pod's container starts again (restartPolicy Always), after
    # the kubelet's back-off, and the Deployment is available again.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/exit", timeout=5) as answer:
        assert answer.status == 200
    again = await eventually(lambda: ready_pod(1), timeout=90)
    assert again["metadata"]["uid"] == first["metadata"]["uid"]
    (status,) = again["status"]["containerStatuses"]
    assert status["lastState"]["terminated"]["exitCode"] == 1
    _, out, _ = await kubectl(admin, "logs", "deploy/web", "-n", namespace, "--previous")
    assert out == "serving\n"


async def test_a_deleted_pod_gets_sigterm_and_its_grace_period_then_goes(
    control_plane: ControlPlane, namespace: str, node: NodeAgentProcess
) -> None:
    admin = control_plane.admin_kubeconfig
    code = """
        import signal, sys, time
        def stop(*_):
            print("SIGTERM, cleaning up", flush=True)
            time.sleep(1)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        print("running", flush=True)
        time.sleep(600)
    """
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "graceful", "namespace": namespace},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 20,
            "containers": [python(code)],
        },
    }
    await apply(admin, pod)

    async def running() -> bool:
        _, out, _ = await kubectl(admin, "logs", "graceful", "-n", namespace, check=False)
        return out == "running\n"

    await eventually(running, timeout=60)
    uid = (await get_json(admin, "pod", "graceful", "-n", namespace))["metadata"]["uid"]
    # kubectl waits until the object is gone: the agent's final delete after the container
    # stopped on its own, well inside the grace period.
    await kubectl(admin, "delete", "pod", "graceful", "-n", namespace, "--timeout=30s")
    (log,) = (node.state_dir / "logs").glob(f"{namespace}_graceful_{uid}/main/0.log")
    assert log.read_text() == "running\nSIGTERM, cleaning up\n"
    _, events, _ = await kubectl(
        admin, "get", "events", "-n", namespace, "--field-selector", "reason=Killing", "-o", "json"
    )
    assert [e["message"] for e in json.loads(events)["items"]] == ["Stopping container main"]


async def test_an_image_the_node_does_not_have_waits_in_image_pull_back_off(
    control_plane: ControlPlane, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "nowhere", "namespace": namespace},
        "spec": {"containers": [{"name": "main", "image": "registry.example/absent:1.0"}]},
    }
    await apply(admin, pod)
    seen: set[str] = set()

    async def backing_off() -> bool:
        found = await get_json(admin, "pod", "nowhere", "-n", namespace)
        for status in found["status"].get("containerStatuses", []):
            seen.add(status["state"].get("waiting", {}).get("reason", ""))
        return "ImagePullBackOff" in seen

    await eventually(backing_off, timeout=30)
    assert (await get_json(admin, "pod", "nowhere", "-n", namespace))["status"][
        "phase"
    ] == "Pending"
    _, out, _ = await kubectl(admin, "describe", "pod", "nowhere", "-n", namespace)
    assert 'Failed to pull image "registry.example/absent:1.0"' in out


async def test_code_in_a_pod_reaches_the_api_with_its_service_accounts_token(
    control_plane: ControlPlane, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    manifests: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    ]
    for manifest in manifests:
        manifest["metadata"]["namespace"] = namespace
        await apply(admin, manifest)
    code = f"""
        from kubernetes import client, config
        from kubernetes.client.exceptions import ApiException
        config.load_incluster_config()  # the token and CA at /var/run/secrets/..., the env
        api = client.CoreV1Api()
        names = [c.metadata.name for c in api.list_namespaced_config_map("{namespace}").items]
        print("configmaps:", ",".join(names))
        try:
            api.list_namespaced_secret("{namespace}")
        except ApiException as error:
            print("secrets:", error.status)
    """
    template = job("client", namespace, python(code))
    template["spec"]["template"]["spec"]["serviceAccountName"] = "reader"
    await apply(admin, template)
    done = await eventually(lambda: job_condition(admin, namespace, "client"), timeout=60)
    assert done["type"] == "Complete"
    _, out, _ = await kubectl(admin, "logs", "job/client", "-n", namespace)
    assert out == "configmaps: kube-root-ca.crt\nsecrets: 403\n"

    user = f"system:serviceaccount:{namespace}:reader"
    verbs = {
        (e["verb"], e["objectRef"]["resource"], e["responseStatus"]["code"])
        for e in control_plane.audit_events()
        if e["user"].get("username") == user and e.get("objectRef")
    }
    assert verbs == {("list", "configmaps", 200), ("list", "secrets", 403)}


async def test_a_pod_that_does_not_fit_the_node_stays_pending_unschedulable(
    control_plane: ControlPlane, namespace: str
) -> None:
    admin = control_plane.admin_kubeconfig
    cpus = os.cpu_count() or 1
    container = python("pass", resources={"requests": {"cpu": str(cpus + 1)}})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "too-big", "namespace": namespace},
        "spec": {"containers": [container]},
    }
    await apply(admin, pod)

    async def unschedulable() -> dict[str, Any] | None:
        found = await get_json(admin, "pod", "too-big", "-n", namespace)
        for condition in found["status"].get("conditions", []):
            if condition["type"] == "PodScheduled" and condition.get("reason") == "Unschedulable":
                return dict(condition)
        return None

    condition = await eventually(unschedulable, timeout=30)
    assert "Insufficient cpu" in condition["message"]
    found = await get_json(admin, "pod", "too-big", "-n", namespace)
    assert found["status"]["phase"] == "Pending" and not found["spec"].get("nodeName")


async def test_no_applicant_data_is_left_after_everything_is_killed_mid_attempt(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    """The agent crashes while a pod holds a Secret (in its volume, an emptyDir and its /tmp);
    the container dies with it, and the agent's next start removes what the pod had."""
    admin = control_plane.admin_kubeconfig
    marker = f"CURP-{uuid.uuid4().hex.upper()}"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "applicant", "namespace": namespace},
        "stringData": {"curp": marker},
    }
    await apply(admin, secret)
    agent = NodeAgentProcess(control_plane, f"crash-{uuid.uuid4().hex[:6]}", tmp_path).start()
    try:
        code = """
            import os, pathlib, tempfile, time
            data = pathlib.Path("/var/run/secrets/permisos/applicant/curp").read_text()
            pathlib.Path(os.environ["SCRATCH"], "trace.txt").write_text(data)
            with open(os.path.join(tempfile.gettempdir(), "network.har"), "w") as f:
                f.write(data)
            print("holding the applicant's data", flush=True)
            time.sleep(600)
        """
        container = python(
            code,
            env=[{"name": "SCRATCH", "value": "/scratch"}],
            volumeMounts=[
                {"name": "applicant", "mountPath": "/var/run/secrets/permisos/applicant"},
                {"name": "scratch", "mountPath": "/scratch"},
            ],
        )
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "attempt", "namespace": namespace},
            "spec": {
                "nodeName": agent.name,  # this node, not the session's
                "restartPolicy": "Never",
                "containers": [container],
                "volumes": [
                    {"name": "applicant", "secret": {"secretName": "applicant"}},
                    {"name": "scratch", "emptyDir": {}},
                ],
            },
        }
        await apply(admin, pod)

        async def holding() -> str | None:
            found = await get_json(admin, "pod", "attempt", "-n", namespace)
            statuses = found["status"].get("containerStatuses") or [{}]
            logs = list(agent.state_dir.rglob("0.log"))
            if (
                "running" in statuses[0].get("state", {})
                and logs
                and "holding" in logs[0].read_text()
            ):
                return str(statuses[0]["containerID"])
            return None

        container_id = await eventually(holding, timeout=60)
        pid = int(container_id.removeprefix("local://"))
        assert list(agent.runtime_dir.rglob("*")), "the pod's files are in memory while it runs"

        agent.kill()

        def dead() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"

        await eventually(_sync(dead), timeout=10)
        # Nothing of it ever reached the agent's disk.
        assert not _files_holding(agent.state_dir, marker)

        agent.start()

        # The pod's process died with the old agent: the new one says so, and cleans up.
        async def failed() -> dict[str, Any] | None:
            found = await get_json(admin, "pod", "attempt", "-n", namespace)
            return found if found["status"].get("phase") == "Failed" else None

        found = await eventually(failed, timeout=30)
        terminated = found["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["reason"], terminated["exitCode"]) == ("ContainerStatusUnknown", 137)
        assert not _files_holding(Path("/dev/shm"), marker)
        assert not _files_holding(agent.state_dir, marker)

        # A stop (Ctrl-C) takes the memory-backed directory away as well.
        assert agent.stop() == 0
        assert not agent.runtime_dir.exists()
    finally:
        agent.kill()
        shutil.rmtree(agent.runtime_dir, ignore_errors=True)  # if the test failed half-way
        await kubectl(admin, "delete", "node", agent.name, "--ignore-not-found")


def _sync(check: Any) -> Any:
    async def probe() -> bool:
        return bool(check())

    return probe


def _files_holding(root: Path, text: str) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and text.encode() in path.read_bytes():
                found.append(path)
        except OSError:
            continue
    return found
