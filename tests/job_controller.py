"""The Job controller and the kubelet, played by a test for the operator's runner Jobs.

The operator's tests run on a control plane whose kube-controller-manager leaves Jobs alone
(`--controllers=*,-job-controller`), as envtest-based operator suites run with no controllers:
the test decides when a runner pod starts and how it ends. What it writes is what those two
write (a pod from the Job's template owned by the Job, the pod's container states and termination
message, the Job's counters and its SuccessCriteriaMet/Complete or FailureTarget/Failed
conditions), and the real apiserver validates all of it: a status they could not write fails
here. The real Job controller and a real kubelet (the node agent) run the runner in the
end-to-end and node tests.
"""

from __future__ import annotations

from typing import Any

from permisos.attempt_result import AttemptResult
from permisos.kube import JSON, fmt_time, now
from tests.namespaces import Namespace

RUNNER = "runner"


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


class JobController:
    def __init__(self, namespace: Namespace) -> None:
        self.ns = namespace

    async def job(self, name: str) -> JSON | None:
        return await self.ns.get("jobs", name)

    async def jobs(self) -> list[JSON]:
        return await self.ns.objects("jobs")

    async def pod(self, job_name: str) -> JSON | None:
        pods = await self.ns.objects(
            "pods", labelSelector=f"batch.kubernetes.io/job-name={job_name}"
        )
        return pods[0] if pods else None

    async def _job(self, name: str) -> JSON:
        job = await self.job(name)
        assert job is not None, f"no Job {name}"
        return job

    async def _pod_of(self, job: JSON) -> JSON:
        """The Job's one pod, made from its template as the Job controller makes it."""
        name = job["metadata"]["name"]
        if existing := await self.pod(name):
            return existing
        template = job["spec"]["template"]
        return await self.ns.create(
            "pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": f"{name}-",
                    "labels": template["metadata"]["labels"],
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": name,
                            "uid": job["metadata"]["uid"],
                            "controller": True,
                            "blockOwnerDeletion": True,
                        }
                    ],
                },
                "spec": template["spec"],
            },
        )

    async def _pod_status(self, pod: JSON, phase: str, state: JSON, ready: bool) -> None:
        container = pod["spec"]["containers"][0]
        status = {
            "phase": phase,
            # As a kubelet does: the pod's start is when it took the pod, and it stays.
            "startTime": (pod.get("status") or {}).get("startTime") or fmt_time(now()),
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {
                    "name": container["name"],
                    "image": container["image"],
                    "imageID": "",
                    "restartCount": 0,
                    "ready": ready,
                    "started": ready,
                    "state": state,
                }
            ],
        }
        await self.ns.patch("pods", pod["metadata"]["name"], {"status": status}, "status")

    async def start(self, job_name: str) -> None:
        """The pod runs and is ready; the Job counts it active."""
        job = await self._job(job_name)
        pod = await self._pod_of(job)
        await self._pod_status(pod, "Running", {"running": {"startedAt": fmt_time(now())}}, True)
        status = {"active": 1, "ready": 1, "startTime": job.get("status", {}).get("startTime")}
        status["startTime"] = status["startTime"] or fmt_time(now())
        await self.ns.patch("jobs", job_name, {"status": status}, "status")

    async def finish(self, job_name: str, message: str | None, exit_code: int) -> None:
        """The pod ends with `exit_code`, having written `message` as its termination message;
        the Job is Complete (exit 0) or Failed (its backoffLimit is 0)."""
        job = await self._job(job_name)
        if not job.get("status", {}).get("startTime"):
            await self.start(job_name)
            job = await self._job(job_name)
        pod = await self._pod_of(job)
        moment = fmt_time(now())
        terminated: JSON = {"exitCode": exit_code, "startedAt": moment, "finishedAt": moment}
        terminated["reason"] = "Completed" if exit_code == 0 else "Error"
        if message is not None:
            terminated["message"] = message
        phase = "Succeeded" if exit_code == 0 else "Failed"
        await self._pod_status(pod, phase, {"terminated": terminated}, False)
        if exit_code == 0:
            pair = ("SuccessCriteriaMet", "Complete", "CompletionsReached")
            counts: JSON = {"succeeded": 1, "completionTime": moment}
        else:
            pair = ("FailureTarget", "Failed", "BackoffLimitExceeded")
            counts = {"failed": 1}
        conditions = [
            {"type": kind, "status": "True", "reason": pair[2], "lastTransitionTime": moment}
            for kind in pair[:2]
        ]
        status = {"active": 0, "ready": 0, "conditions": conditions, **counts}
        await self.ns.patch("jobs", job_name, {"status": status}, "status")

    async def succeed(self, job_name: str, folio: str = "F-0001") -> None:
        request = job_name.rsplit("-a", 1)[0]
        result = AttemptResult(
            outcome="succeeded",
            reason="PermitIssued",
            folio=folio,
            artifacts=permit_artifacts(request, folio),
        )
        await self.finish(job_name, result.to_message(), 0)

    async def fail(
        self,
        job_name: str,
        outcome: str,
        reason: str,
        message: str = "",
        retry_after_seconds: int | None = None,
    ) -> None:
        result = AttemptResult.model_validate(
            {
                "outcome": outcome,
                "reason": reason,
                "message": message,
                "retry_after_seconds": retry_after_seconds,
            }
        )
        await self.finish(job_name, result.to_message(), result.exit_code)
