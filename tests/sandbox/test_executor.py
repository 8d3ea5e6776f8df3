"""The local Job executor against the Kubernetes API emulator, over real HTTP.

Jobs run small `python -c` scripts; the assertions are what `kubectl get/describe` would show
(Job conditions and counts, pod phases and container states) plus what only this machine can
check (processes gone, private files gone, file modes). Scripts that must block wait for a gate
file the test creates, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import signal
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psutil
import pytest
from lightkube import AsyncClient
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Pod, Secret
from lightkube.types import CascadeType, PatchType

from permisos.attempt_result import AttemptResult
from permisos_sandbox.executor import NODE_NAME, JobExecutor
from permisos_sandbox.executor.informer import Informer
from permisos_sandbox.kubeapi import KubeApiServer
from tests.cluster import (
    CRDS,
    NS,
    OperatorProcess,
    PermitRequest,
    as_dict,
    client,
    eventually,
    get_or_none,
    permit_request,
    runner_pool,
)

PY = sys.executable


@dataclass
class Cluster:
    kubeconfig: Path
    kube: AsyncClient
    tmp: Path
    executors: list[JobExecutor] = field(default_factory=list)

    async def executor(self, **kwargs: Any) -> JobExecutor:
        kwargs.setdefault("max_pods", 2)
        # Failed pods are replaced after 10 s in kube; the tests need not wait that long.
        kwargs.setdefault("backoff_seconds", 0.05)
        executor = JobExecutor(self.kubeconfig, **kwargs)
        self.executors.append(executor)
        await executor.start()
        return executor

    async def job(self, name: str) -> dict[str, Any] | None:
        return await get_or_none(self.kube, Job, name)

    async def pods(self, job_name: str) -> list[dict[str, Any]]:
        pods = [
            as_dict(p)
            async for p in self.kube.list(Pod, namespace=NS, labels={"job-name": job_name})
        ]
        return sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"])

    async def until_finished(self, name: str, timeout: float = 20) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            job = await self.job(name)
            ended = condition(job, "Complete") or condition(job, "Failed")
            return job if ended else None

        return await eventually(probe, timeout)

    async def until_pod(
        self, job_name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            return next((p for p in await self.pods(job_name) if check(p)), None)

        return await eventually(probe, timeout)

    def report(self, name: str) -> Path:
        """Where a script writes what it saw (outside every pod's private directory)."""
        return self.tmp / f"{name}.json"

    def gate(self, name: str) -> Path:
        return self.tmp / f"{name}.gate"


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    server = KubeApiServer(crd_paths=[CRDS])
    await server.start(host="127.0.0.1", port=0)
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    kube = client(kubeconfig)
    c = Cluster(kubeconfig, kube, tmp_path)
    try:
        yield c
    finally:
        for executor in c.executors:
            await executor.stop()
        await kube.close()
        await server.stop()


def condition(job: dict[str, Any] | None, type_: str) -> dict[str, Any] | None:
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_ and cond["status"] == "True":
            return dict(cond)
    return None


def script(body: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(body)]


def job(
    name: str,
    command: list[str] | None,
    *,
    env: dict[str, str] | None = None,
    env_from_secret: dict[str, tuple[str, str]] | None = None,
    mounts: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
    image: str = "busybox:1.36",
    container: dict[str, Any] | None = None,
    **spec: Any,
) -> Job:
    variables: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in (env or {}).items()]
    for var, (secret, key) in (env_from_secret or {}).items():
        variables.append({"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
    body: dict[str, Any] = {"name": "main", "image": image, "env": variables}
    if command is not None:
        body["command"] = command
    if mounts:
        body["volumeMounts"] = mounts
    body.update(container or {})
    return cast(
        Job,
        Job.from_dict(
            {
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "backoffLimit": 0,
                    **spec,
                    "template": {
                        "metadata": {"labels": {"app": name}},
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [body],
                            "volumes": volumes or [],
                        },
                    },
                },
            }
        ),
    )


def secret(body: dict[str, Any]) -> Secret:
    return cast(Secret, Secret.from_dict(body))


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return dict(pod["status"]["containerStatuses"][0]["state"].get("terminated") or {})


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


async def read_json(path: Path) -> Any:
    async def probe() -> Any:
        return json.loads(path.read_text()) if path.exists() and path.stat().st_size else None

    return await eventually(probe)


async def _async(value: Any) -> Any:
    """A plain value as a probe for `eventually`."""
    return value


async def _empty(pods: Awaitable[list[Any]]) -> bool:
    return not await pods


async def _none(value: Awaitable[Any]) -> bool:
    return await value is None


def sleeper(report: Path, gate: Path | None = None) -> list[str]:
    """Writes its pid, then waits for the gate file (or a minute)."""
    return script(
        f"""
        import os, pathlib, time
        pathlib.Path({str(report)!r}).write_text(str(os.getpid()))
        gate = {str(gate) if gate else None!r}
        for _ in range(600):
            if gate and os.path.exists(gate):
                break
            time.sleep(0.1)
        """
    )


# --- success and failure --------------------------------------------------------------------


async def test_a_succeeding_job_completes_with_its_pod_counted(cluster: Cluster) -> None:
    executor = await cluster.executor()
    await cluster.kube.create(job("hello", script("print('hello from the pod')")))

    done = await cluster.until_finished("hello")

    status = done["status"]
    types = [c["type"] for c in status["conditions"]]
    assert types == ["SuccessCriteriaMet", "Complete"]
    assert condition(done, "Complete")["reason"] == "CompletionsReached"  # type: ignore[index]
    assert status["succeeded"] == 1 and "failed" not in status and "active" not in status
    assert status["startTime"] and status["completionTime"]
    assert status["uncountedTerminatedPods"] == {}
    [pod] = await cluster.pods("hello")
    meta = pod["metadata"]
    assert meta["name"].startswith("hello-") and len(meta["name"]) == len("hello-") + 5
    assert meta["labels"]["batch.kubernetes.io/job-name"] == "hello"
    assert meta["labels"]["batch.kubernetes.io/controller-uid"] == done["metadata"]["uid"]
    assert meta["labels"]["app"] == "hello"
    owner = meta["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"], owner["blockOwnerDeletion"]) == (
        "Job",
        done["metadata"]["uid"],
        True,
        True,
    )
    assert not meta.get("finalizers")  # counted, so the tracking finalizer is gone
    assert pod["spec"]["nodeName"] == NODE_NAME
    assert pod["status"]["phase"] == "Succeeded"
    state = terminated(pod)
    assert (state["exitCode"], state["reason"]) == (0, "Completed")
    assert state["startedAt"] <= state["finishedAt"]
    logs = list(executor.logs_dir.glob(f"*_{meta['name']}_*/main.log"))
    assert logs and logs[0].read_text() == "hello from the pod\n"


async def test_a_mount_over_the_programs_directory_does_not_hide_the_program(
    cluster: Cluster,
) -> None:
    """The repository may live under a directory a pod mounts (e.g. /tmp): the program named by
    `command` is still this machine's, while its arguments under the mount are rewritten."""
    await cluster.executor()
    venv = str(Path(PY).parent.parent)
    report = cluster.report("program")
    look = f"import os, sys, pathlib; pathlib.Path({str(report)!r}).write_text(sys.argv[1])"
    await cluster.kube.create(
        job(
            "program",
            [PY, "-c", look, f"{venv}/scratch-file"],
            mounts=[{"name": "scratch", "mountPath": venv}],
            volumes=[{"name": "scratch", "emptyDir": {}}],
        )
    )
    done = await cluster.until_finished("program")
    assert condition(done, "Complete") is not None, done["status"]
    # The argument pointed into the mount, so the process got the pod's local directory.
    argument = report.read_text()
    assert argument.endswith("/scratch-file") and not argument.startswith(venv), argument


async def test_a_failing_job_retries_up_to_its_backoff_limit_then_fails(cluster: Cluster) -> None:
    await cluster.executor()
    # The script finds the termination-message path in its environment, as the runner does.
    failing = script(
        """
        import os
        with open(os.environ["RESULT_PATH"], "w") as out:
            out.write("portal down: " + "x" * 5000)
        raise SystemExit(3)
        """
    )
    await cluster.kube.create(
        job("flaky", failing, env={"RESULT_PATH": "/dev/termination-log"}, backoffLimit=1)
    )

    done = await cluster.until_finished("flaky")

    status = done["status"]
    assert [c["type"] for c in status["conditions"]] == ["FailureTarget", "Failed"]
    failed = condition(done, "Failed")
    assert failed is not None
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert status["failed"] == 2 and "succeeded" not in status and "completionTime" not in status
    pods = await cluster.pods("flaky")
    assert len(pods) == 2  # backoffLimit 1: the first try and one retry
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        state = terminated(pod)
        assert (state["exitCode"], state["reason"]) == (3, "Error")
        # kube keeps the first 4 KiB of the termination message.
        assert state["message"].startswith("portal down: xxx")
        assert len(state["message"].encode()) == 4096


async def test_fallback_to_logs_on_error_reports_the_log_tail(cluster: Cluster) -> None:
    await cluster.executor()
    crash = script("import sys; print('step 1 ok', flush=True); sys.exit('boom: portal said no')")
    await cluster.kube.create(
        job("crash", crash, container={"terminationMessagePolicy": "FallbackToLogsOnError"})
    )

    await cluster.until_finished("crash")

    [pod] = await cluster.pods("crash")
    state = terminated(pod)
    assert state["exitCode"] == 1
    assert state["message"] == "step 1 ok\nboom: portal said no\n"


# --- secrets, volumes and environment ----------------------------------------------------------


async def test_secrets_reach_the_process_privately_and_are_removed_after(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Something only the executor's own environment has must not reach the pod.
    monkeypatch.setenv("EXECUTOR_ONLY", "leak")
    await cluster.executor()
    await cluster.kube.create(
        secret(
            {
                "metadata": {"name": "app-creds", "namespace": NS},
                "stringData": {"password": "s3cr3t", "api-token": "tok-123", "unused": "no"},
            }
        )
    )
    report = cluster.report("secrets")
    look = script(
        f"""
        import json, os, pathlib, stat
        d = pathlib.Path(os.environ["SECRET_DIR"])
        f = pathlib.Path(os.environ["TOKEN_FILE"])
        pathlib.Path({str(report)!r}).write_text(json.dumps({{
            "password": os.environ["PASSWORD"],
            "token": f.read_text(),
            "dir": str(d),
            "dir_mode": stat.S_IMODE(d.stat().st_mode),
            "file_mode": stat.S_IMODE(f.stat().st_mode),
            "listing": sorted(os.listdir(d)),
            "home": os.environ["HOME"],
            "tmpdir": os.environ["TMPDIR"],
            "tmp_is_dir": os.path.isdir(os.environ["TMPDIR"]),
            "leak": os.environ.get("EXECUTOR_ONLY"),
            "path": os.environ.get("PATH"),
        }}))
        """
    )
    await cluster.kube.create(
        job(
            "secrets",
            look,
            env={
                "SECRET_DIR": "/var/run/secrets/app",
                "TOKEN_FILE": "/var/run/secrets/app/token",
            },
            env_from_secret={"PASSWORD": ("app-creds", "password")},
            mounts=[
                {"name": "creds", "mountPath": "/var/run/secrets/app", "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},
            ],
            volumes=[
                {
                    "name": "creds",
                    "secret": {
                        "secretName": "app-creds",
                        "items": [{"key": "api-token", "path": "token"}],
                    },
                },
                {"name": "tmp", "emptyDir": {}},
            ],
        )
    )

    seen = await read_json(report)
    done = await cluster.until_finished("secrets")

    assert condition(done, "Complete")
    assert seen["password"] == "s3cr3t" and seen["token"] == "tok-123"
    assert seen["listing"] == ["token"]  # `items` projects only the keys it names
    assert seen["dir"] != "/var/run/secrets/app"  # a private local directory stands in
    assert seen["dir_mode"] == 0o700 and seen["file_mode"] == 0o600
    assert seen["home"] == seen["tmpdir"] and seen["tmp_is_dir"]  # the pod's /tmp emptyDir
    assert seen["tmpdir"] != "/tmp"
    assert seen["leak"] is None and seen["path"] == os.environ["PATH"]
    # The secret's files are gone as soon as the pod ended.
    await eventually(lambda: _async(not Path(seen["dir"]).exists()))
    assert not Path(seen["tmpdir"]).exists()


async def test_a_missing_secret_holds_the_container_until_it_exists(cluster: Cluster) -> None:
    await cluster.executor()
    await cluster.kube.create(
        job("late", script("pass"), env_from_secret={"PASSWORD": ("late-creds", "password")})
    )

    def config_error(pod: dict[str, Any]) -> bool:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return bool(statuses) and "waiting" in statuses[0]["state"]

    pod = await cluster.until_pod("late", config_error)

    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert waiting["message"] == 'secret "late-creds" not found'
    # The kubelet keeps trying: once the Secret exists, the pod runs.
    await cluster.kube.create(
        secret(
            {"metadata": {"name": "late-creds", "namespace": NS}, "stringData": {"password": "p"}}
        )
    )
    done = await cluster.until_finished("late")
    assert condition(done, "Complete")


async def test_images_map_to_local_commands_and_unknown_ones_wait(cluster: Cluster) -> None:
    report = cluster.report("image")
    show_args = f"import json, sys, pathlib; pathlib.Path({str(report)!r}).write_text("
    show_args += "json.dumps(sys.argv[1:]))"
    await cluster.executor(images={"team/hello": [PY, "-c", show_args]})
    await cluster.kube.create(
        job(
            "mapped",
            None,
            image="registry.example.com/team/hello:2.0",
            container={"args": ["--greeting", "hola"]},
        )
    )
    await cluster.kube.create(job("unmapped", None, image="registry.example.com/team/nope:1"))

    done = await cluster.until_finished("mapped")
    assert condition(done, "Complete")
    assert json.loads(report.read_text()) == ["--greeting", "hola"]  # args follow the image's

    def waiting_on_image(pod: dict[str, Any]) -> bool:
        statuses = pod.get("status", {}).get("containerStatuses") or []
        return bool(statuses) and "waiting" in statuses[0]["state"]

    pod = await cluster.until_pod("unmapped", waiting_on_image)
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "registry.example.com/team/nope:1" in waiting["message"]
    assert pod["status"]["phase"] == "Pending"


# --- deadlines, TTL, deletion -----------------------------------------------------------------


async def test_active_deadline_kills_the_process_and_fails_the_job(cluster: Cluster) -> None:
    await cluster.executor()
    report = cluster.report("slow")
    await cluster.kube.create(job("slow", sleeper(report), activeDeadlineSeconds=2))
    pid = int(await read_json(report))

    done = await cluster.until_finished("slow")

    failed = condition(done, "Failed")
    assert failed is not None
    assert failed["reason"] == "DeadlineExceeded"
    assert failed["message"] == "Job was active longer than specified deadline"
    assert condition(done, "FailureTarget")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    assert done["status"]["failed"] == 1 and "active" not in done["status"]
    assert not alive(pid)
    # As in kube, the Job controller deleted the pod it stopped.
    assert await eventually(lambda: _empty(cluster.pods("slow")))


async def test_ttl_deletes_a_finished_job_and_its_pods(cluster: Cluster) -> None:
    await cluster.executor()
    report, gate = cluster.report("ttl"), cluster.gate("ttl")
    await cluster.kube.create(job("short-lived", sleeper(report, gate), ttlSecondsAfterFinished=0))
    await read_json(report)

    # Running: a TTL counts from the end, so the Job is still there.
    assert await cluster.job("short-lived") is not None
    assert len(await cluster.pods("short-lived")) == 1
    gate.touch()

    assert await eventually(lambda: _none(cluster.job("short-lived")))
    assert await eventually(lambda: _empty(cluster.pods("short-lived")))


async def test_deleting_a_running_job_kills_its_process(cluster: Cluster) -> None:
    executor = await cluster.executor()
    report = cluster.report("doomed")
    await cluster.kube.create(job("doomed", sleeper(report)))
    pid = int(await read_json(report))
    assert alive(pid)

    # What kubectl and the operator do: background propagation, pods follow through GC.
    await cluster.kube.delete(Job, "doomed", namespace=NS, cascade=CascadeType.BACKGROUND)

    await eventually(lambda: _async(not alive(pid)))
    assert await eventually(lambda: _empty(cluster.pods("doomed")))
    assert await eventually(lambda: _async(not any((executor.workdir / "pods").iterdir())))


async def test_deleting_a_running_pod_kills_it_and_counts_a_failure(cluster: Cluster) -> None:
    await cluster.executor()
    report = cluster.report("victim")
    await cluster.kube.create(job("victim", sleeper(report)))
    pid = int(await read_json(report))
    [pod] = await cluster.pods("victim")

    await cluster.kube.delete(Pod, pod["metadata"]["name"], namespace=NS)

    done = await cluster.until_finished("victim")
    assert not alive(pid)
    assert condition(done, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert done["status"]["failed"] == 1


async def test_a_suspended_job_waits_without_pods_until_resumed(cluster: Cluster) -> None:
    await cluster.executor()
    await cluster.kube.create(job("later", script("pass"), suspend=True))

    async def suspended() -> dict[str, Any] | None:
        found = await cluster.job("later")
        return found if condition(found, "Suspended") else None

    held = await eventually(suspended)
    assert condition(held, "Suspended")["reason"] == "JobSuspended"  # type: ignore[index]
    assert "startTime" not in held["status"] and not await cluster.pods("later")
    await cluster.kube.patch(Job, "later", {"spec": {"suspend": False}}, namespace=NS)

    done = await cluster.until_finished("later")
    assert condition(done, "Complete")
    resumed = next(c for c in done["status"]["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"]) == ("False", "JobResumed")


# --- capacity, stop and restart -----------------------------------------------------------------


async def test_over_capacity_pods_wait_unschedulable_and_run_in_order(cluster: Cluster) -> None:
    await cluster.executor(max_pods=1)
    report, gate = cluster.report("first"), cluster.gate("first")
    await cluster.kube.create(job("first", sleeper(report, gate)))
    await read_json(report)
    await cluster.kube.create(job("second", script("pass")))

    def unschedulable(pod: dict[str, Any]) -> bool:
        conds = {c["type"]: c for c in pod.get("status", {}).get("conditions") or []}
        return bool(conds.get("PodScheduled", {}).get("reason") == "Unschedulable")

    waiting = await cluster.until_pod("second", unschedulable)
    assert waiting["status"]["phase"] == "Pending"
    scheduled = next(c for c in waiting["status"]["conditions"] if c["type"] == "PodScheduled")
    assert scheduled["status"] == "False"
    assert scheduled["message"] == "0/1 nodes are available: 1 Too many pods."
    assert (await cluster.job("second") or {})["status"]["active"] == 1
    gate.touch()

    first = await cluster.until_finished("first")
    second = await cluster.until_finished("second")
    assert condition(first, "Complete") and condition(second, "Complete")
    [first_pod], [second_pod] = await cluster.pods("first"), await cluster.pods("second")
    assert terminated(second_pod)["startedAt"] >= terminated(first_pod)["finishedAt"]


async def test_stop_kills_every_process_and_removes_its_files(cluster: Cluster) -> None:
    executor = await cluster.executor()
    workdir = executor.workdir
    reports = [cluster.report(f"stop-{n}") for n in range(2)]
    for n, report in enumerate(reports):
        await cluster.kube.create(job(f"stop-{n}", sleeper(report)))
    pids = [int(await read_json(r)) for r in reports]
    assert all(alive(pid) for pid in pids)

    await executor.stop()

    assert not any(alive(pid) for pid in pids)
    assert not workdir.exists()
    for n in range(2):
        [pod] = await cluster.pods(f"stop-{n}")
        # A graceful node shutdown, in the kubelet's words.
        assert pod["status"]["phase"] == "Failed"
        assert pod["status"]["reason"] == "Terminated"


async def test_a_job_survives_an_executor_restart_as_one_failed_try(cluster: Cluster) -> None:
    first = await cluster.executor()
    report, gate = cluster.report("survivor"), cluster.gate("survivor")
    await cluster.kube.create(job("survivor", sleeper(report, gate), backoffLimit=1))
    pid = int(await read_json(report))
    await first.stop()
    assert not alive(pid)
    gate.touch()  # the retry finishes at once

    await cluster.executor()

    done = await cluster.until_finished("survivor")
    assert condition(done, "Complete")
    assert (done["status"]["failed"], done["status"]["succeeded"]) == (1, 1)
    phases = {p["status"]["phase"]: p["status"] for p in await cluster.pods("survivor")}
    assert sorted(phases) == ["Failed", "Succeeded"]
    assert phases["Failed"]["reason"] == "Terminated"  # the first executor's shutdown


async def test_a_new_executor_fails_running_pods_it_has_no_process_for(cluster: Cluster) -> None:
    # A pod the previous executor had started: bound to this node, reported Running.
    await cluster.kube.create(
        cast(
            Pod,
            Pod.from_dict(
                {
                    "metadata": {"name": "orphan", "namespace": NS},
                    "spec": {
                        "nodeName": NODE_NAME,
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                    },
                }
            ),
        )
    )
    await cluster.kube.patch(
        Pod.Status,
        "orphan",
        {
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": "main",
                        "image": "busybox",
                        "imageID": "",
                        "ready": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                    }
                ],
            }
        },
        namespace=NS,
        patch_type=PatchType.MERGE,
    )

    await cluster.executor()

    async def failed() -> dict[str, Any] | None:
        pod = as_dict(await cluster.kube.get(Pod, "orphan", namespace=NS))
        return pod if pod["status"]["phase"] == "Failed" else None

    pod = await eventually(failed)
    state = terminated(pod)
    assert (state["exitCode"], state["reason"]) == (137, "ContainerStatusUnknown")
    assert state["startedAt"] == "2026-01-01T00:00:00Z"


async def test_the_command_line_runs_jobs_until_sigterm(cluster: Cluster) -> None:
    workdir = cluster.tmp / "cli"
    echo = shlex.join([PY, "-c", "print('from the image')"])
    proc = await asyncio.create_subprocess_exec(
        *[PY, "-m", "permisos_sandbox.executor", "--kubeconfig", str(cluster.kubeconfig)],
        *["--max-pods", "1", "--workdir", str(workdir), "--image", f"team/echo={echo}"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await cluster.kube.create(job("cli", None, image="team/echo:1"))
        done = await cluster.until_finished("cli")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)

    assert proc.returncode == 0
    assert condition(done, "Complete")
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    started = next(line for line in lines if " log at " in line["message"])
    assert started["job"] == "cli" and started["level"] == "INFO"
    # Container logs outlive the pod; its private files do not outlive the executor.
    assert Path(started["message"].rsplit(" log at ", 1)[1]).read_text() == "from the image\n"
    assert not (workdir / "pods").exists()


# --- watches -------------------------------------------------------------------------------------


async def test_a_watch_whose_history_expired_lists_again_and_misses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="permisos.executor")
    # A server that keeps only 5 events per type, so a quiet watch falls behind quickly.
    server = KubeApiServer(history_limit=5)
    await server.start(host="127.0.0.1", port=0)
    kube = client(server.write_kubeconfig(tmp_path / "kubeconfig"))

    def configmap(value: str) -> ConfigMap:
        return cast(
            ConfigMap, ConfigMap.from_dict({"metadata": {"name": "watched"}, "data": {"v": value}})
        )

    informer = Informer(kube, ConfigMap, NS, fields={"metadata.name": "watched"}, server_timeout=1)
    seen: list[tuple[str, str]] = []
    informer.handlers.append(lambda kind, obj: seen.append((kind, obj["data"]["v"])))
    try:
        await kube.create(configmap("1"))
        informer.start()
        await informer.synced.wait()
        # Events this watch does not select push its resourceVersion out of the history; when
        # the server ends the watch (after 1 s), resuming from it is 410 Gone.
        for n in range(10):
            await kube.create(
                cast(ConfigMap, ConfigMap.from_dict({"metadata": {"name": f"other-{n}"}}))
            )
        await eventually(lambda: _async("410 Gone" in caplog.text))
        await kube.replace(configmap("2"))

        await eventually(lambda: _async(("MODIFIED", "2") in seen))
        assert seen[0] == ("ADDED", "1")
        assert (informer.get((NS, "watched")) or {})["data"] == {"v": "2"}
    finally:
        await informer.stop()
        await kube.close()
        await server.stop()


# --- the platform end to end ----------------------------------------------------------------------


async def test_the_operator_gets_a_permit_through_the_executor_alone(cluster: Cluster) -> None:
    # A stand-in runner: it reads the applicant Secret where the Job mounts it and the portal
    # password from its env, then reports a permit as the real runner would.
    runner = textwrap.dedent(
        """
        import os, pathlib, sys
        from permisos.applicant import Applicant
        from permisos.attempt_result import AttemptResult
        applicant = Applicant.from_directory(pathlib.Path(os.environ["PERMISOS_RUNNER_SECRET_DIR"]))
        assert os.environ["PERMISOS_RUNNER_PORTAL_PASSWORD"] == "portal-pass"
        app = os.environ["PERMISOS_RUNNER_APPLICATION_ID"]
        result = AttemptResult(
            outcome="succeeded",
            reason="PermitIssued",
            folio="F-4242",
            artifacts=[
                {"kind": k, "key": f"permits/{app}/{k}-F-4242.pdf", "sha256": "0" * 64,
                 "bytes": 1024}
                for k in ("permit", "certificate", "placard")
            ],
        )
        pathlib.Path(os.environ["PERMISOS_RUNNER_TERMINATION_LOG"]).write_text(result.to_message())
        """
    )
    kube = cluster.kube
    for name, data in (
        ("portal-account", {"username": "operador", "password": "portal-pass"}),
        (
            "req-e2e-applicant",
            {
                "first_name": "Ana",
                "last_name": "Pérez",
                "curp": "PEGA800101MDFRNN09",
                "email": "ana@example.com",
            },
        ),
    ):
        await kube.create(secret({"metadata": {"name": name, "namespace": NS}, "stringData": data}))
    await kube.create(runner_pool(command=[PY, "-c", runner]))
    await kube.create(permit_request("req-e2e"))
    await cluster.executor()
    operator = OperatorProcess(cluster.kubeconfig, cluster.tmp / "operator.log")
    try:

        async def succeeded() -> dict[str, Any] | None:
            pr = as_dict(await kube.get(PermitRequest, "req-e2e", namespace=NS))
            return pr if pr.get("status", {}).get("phase") == "Succeeded" else None

        done = await eventually(succeeded, timeout=45)
    finally:
        operator.kill()

    assert done["status"]["result"]["folio"] == "F-4242"
    job_done = await cluster.job("req-e2e-a1")
    assert condition(job_done, "Complete")
    [pod] = await cluster.pods("req-e2e-a1")
    assert AttemptResult.model_validate_json(terminated(pod)["message"]).folio == "F-4242"
