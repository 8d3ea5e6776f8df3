"""The operator process against the real kube-apiserver, as its own ServiceAccount.

The tests play the Job controller and kubelet (tests/job_controller.py): they start and finish
runner pods with termination messages, and check what an engineer would see with kubectl.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from permisos.kube import JSON, Kube
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.ports import free_port
from tests.accounts import operator_kubeconfig, through
from tests.cluster import OperatorProcess, eventually
from tests.databases import TcpProxy
from tests.job_controller import JobController
from tests.namespaces import (
    Namespace,
    forget_cluster_peering,
    new_namespace,
    permit_request,
    runner_pool,
)

from .conftest import StartOperator

CLUSTER_PEERINGS = "/apis/kopf.dev/v1/clusterkopfpeerings"


async def get_pr(ns: Namespace, name: str) -> JSON:
    pr = await ns.get("permitrequests", name)
    assert pr is not None, f"no PermitRequest {name}"
    return pr


async def until_phase(ns: Namespace, name: str, phase: str, timeout: float = 20) -> JSON:
    async def probe() -> JSON | None:
        pr = await get_pr(ns, name)
        return pr if pr.get("status", {}).get("phase") == phase else None

    return await eventually(probe, timeout)


async def until_job(jobs: JobController, name: str, timeout: float = 20) -> JSON:
    return await eventually(lambda: jobs.job(name), timeout)


async def _gone(jobs: JobController, job: str) -> bool:
    return await jobs.job(job) is None


FAST_RETRIES = {"maxAttempts": 3, "backoffSeconds": 1, "maxBackoffSeconds": 2}


async def test_an_admitted_request_gets_one_locked_down_job(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create(
        "runnerpools",
        runner_pool(
            replicas=2,
            activeDeadlineSeconds=900,
            serviceAccountName="permisos-runner",
            imagePullSecrets=["registry-pull"],
        ),
    )
    pr = await ns.create(
        "permitrequests",
        permit_request(
            "req-1",
            vehicle={
                "plates": "ABC1234",
                "make": "Nissan",
                "line": "Versa",
                "modelYear": 2020,
                "serviceType": "particular",
            },
        ),
    )
    await start_operator()
    job = await until_job(jobs, "req-1-a1")
    running = await until_phase(ns, "req-1", "Running")

    assert running["status"]["attempts"] == 1
    assert running["status"]["currentJob"] == "req-1-a1"
    # The operator holds no finalizer on requests (the API does, to record their outcome).
    assert not running["metadata"].get("finalizers")
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "PermitRequest",
        "req-1",
        pr["metadata"]["uid"],
    )
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert spec["activeDeadlineSeconds"] == 900
    assert spec["ttlSecondsAfterFinished"] == 3600
    pod = spec["template"]["spec"]
    assert pod["serviceAccountName"] == "permisos-runner"
    assert pod["imagePullSecrets"] == [{"name": "registry-pull"}]
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    container = pod["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["applicant"]["secret"]["secretName"] == "req-1-applicant"
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["applicant"]["readOnly"] is True
    assert mounts["dshm"]["mountPath"] == "/dev/shm"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PERMISOS_RUNNER_APPLICATION_ID"] == "req-1"
    assert env["PERMISOS_RUNNER_VEHICLE_PLATES"] == "ABC1234"
    assert container["terminationMessagePolicy"] == "File"


async def test_success_is_recorded_with_folio_artifacts_and_events(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool())
    await ns.create("permitrequests", permit_request("req-ok", paidAt="2026-11-26T10:00:00Z"))
    await start_operator()
    await until_job(jobs, "req-ok-a1")
    await jobs.start("req-ok-a1")
    await jobs.succeed("req-ok-a1", folio="F-777")
    done = await until_phase(ns, "req-ok", "Succeeded")

    status = done["status"]
    assert status["result"]["folio"] == "F-777"
    assert sorted(a["kind"] for a in status["result"]["artifacts"]) == [
        "certificate",
        "permit",
        "placard",
    ]
    assert "currentJob" not in status
    ready = {c["type"]: c for c in status["conditions"]}
    assert ready["Ready"]["status"] == "True" and ready["Ready"]["reason"] == "PermitIssued"
    assert ready["Ready"]["observedGeneration"] == done["metadata"]["generation"]
    assert ready["Progressing"]["status"] == "False"
    # The pool had room: the request started at once (Pending -> Running), never queued.
    reasons = [e["reason"] for e in await eventually(lambda: _events(ns, "req-ok", 2))]
    assert reasons == ["JobCreated", "PermitIssued"]
    reasons_now = {c["type"]: c["reason"] for c in done["status"]["conditions"]}
    assert reasons_now == {
        "Ready": "PermitIssued",
        "Progressing": "PermitIssued",
        "Admitted": "Admitted",
    }


async def _events(ns: Namespace, name: str, at_least: int) -> list[JSON] | None:
    events = await ns.events_for(name)
    return events if len(events) >= at_least else None


async def test_retryable_failure_backs_off_then_succeeds(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    # A backoff long enough that the Retrying phase is there to be seen.
    await ns.create(
        "runnerpools",
        runner_pool(retryPolicy={**FAST_RETRIES, "backoffSeconds": 3, "maxBackoffSeconds": 4}),
    )
    await ns.create("permitrequests", permit_request("req-retry"))
    await start_operator()
    await until_job(jobs, "req-retry-a1")
    await jobs.start("req-retry-a1")
    await asyncio.sleep(2.1)  # its pod runs two seconds (the API keeps whole seconds)
    await jobs.fail("req-retry-a1", "retryable", "PortalTimeout", "portal took too long")
    retrying = await until_phase(ns, "req-retry", "Retrying")
    assert retrying["status"]["nextAttemptAt"] > retrying["status"]["lastAttempt"]["finishedAt"]
    assert retrying["status"]["lastAttempt"]["reason"] == "PortalTimeout"
    first_cost = retrying["status"]["lastAttempt"]["runnerSeconds"]
    assert 2 <= first_cost <= 3
    await until_job(jobs, "req-retry-a2")
    await jobs.start("req-retry-a2")
    await asyncio.sleep(1.1)
    await jobs.succeed("req-retry-a2")
    done = await until_phase(ns, "req-retry", "Succeeded")
    assert done["status"]["attempts"] == 2
    assert len(await jobs.jobs()) == 2
    # What the permit cost in runner pods: both attempts, in the status and in the result.
    second_cost = done["status"]["lastAttempt"]["runnerSeconds"]
    assert 1 <= second_cost <= 2
    assert done["status"]["runnerSeconds"] == first_cost + second_cost
    assert done["status"]["result"]["runnerSeconds"] == first_cost + second_cost


async def test_permanent_failure_stops_at_once_with_the_portal_reason(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool(retryPolicy=FAST_RETRIES))
    await ns.create("permitrequests", permit_request("req-bad"))
    await start_operator()
    await until_job(jobs, "req-bad-a1")
    await jobs.fail("req-bad-a1", "permanent", "PortalRejected", "Las placas ya tienen permiso")
    failed = await until_phase(ns, "req-bad", "Failed")
    ready = {c["type"]: c for c in failed["status"]["conditions"]}["Ready"]
    assert ready["reason"] == "PortalRejected"
    assert "Las placas ya tienen permiso" in ready["message"]
    await asyncio.sleep(2.5)  # longer than the backoff: no second attempt may appear
    assert await jobs.job("req-bad-a2") is None


async def test_attempts_exhausted_fails(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool(retryPolicy=FAST_RETRIES))
    await ns.create("permitrequests", permit_request("req-tired", retryPolicy={"maxAttempts": 2}))
    await start_operator()
    for attempt in (1, 2):
        await until_job(jobs, f"req-tired-a{attempt}")
        await jobs.finish(f"req-tired-a{attempt}", "{not json", 3)
    failed = await until_phase(ns, "req-tired", "Failed")
    assert failed["status"]["attempts"] == 2
    ready = {c["type"]: c for c in failed["status"]["conditions"]}["Ready"]
    assert ready["reason"] == "AttemptsExhausted"
    assert "InvalidResult" in ready["message"]


async def test_a_job_stuck_pending_is_timed_out_and_retried(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool(startTimeoutSeconds=10, retryPolicy=FAST_RETRIES))
    await ns.create("permitrequests", permit_request("req-stuck"))
    await start_operator()
    await until_job(jobs, "req-stuck-a1")  # no pod ever starts
    retrying = await until_phase(ns, "req-stuck", "Retrying", timeout=20)
    assert retrying["status"]["lastAttempt"]["reason"] == "StartTimeout"
    await eventually(lambda: _gone(jobs, "req-stuck-a1"))
    await until_job(jobs, "req-stuck-a2")


async def test_admission_respects_the_pool_limit_fifo_and_scale(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool(replicas=3))
    names = [f"req-{i:02d}" for i in range(20)]
    for name in names:
        await ns.create("permitrequests", permit_request(name))
        await asyncio.sleep(1.05 if name == names[0] else 0)  # creationTimestamp has 1 s precision
    await start_operator()

    async def running() -> list[str]:
        return sorted(
            j["metadata"]["name"].rsplit("-a", 1)[0]
            for j in await jobs.jobs()
            if not j.get("status", {}).get("succeeded")
        )

    first = await eventually(lambda: _exactly(running, 3))
    assert first[0] == "req-00"
    await asyncio.sleep(1.0)
    assert len(await running()) == 3, "more Jobs than the pool allows"

    await ns.patch("runnerpools", "default", {"spec": {"replicas": 6}}, "scale")
    six = await eventually(lambda: _exactly(running, 6), timeout=5)
    assert "req-00" in six
    pool = await eventually(lambda: _pool_status(ns, 6))
    assert pool["status"]["queued"] == 14

    # Finishing one admits exactly one more; lowering the limit kills nothing.
    await jobs.succeed("req-00-a1")
    await until_phase(ns, "req-00", "Succeeded")
    await eventually(lambda: _exactly(running, 6))
    await ns.patch("runnerpools", "default", {"spec": {"replicas": 1}}, "scale")
    await asyncio.sleep(1.0)
    assert len(await running()) == 6
    prs = await ns.objects("permitrequests")
    assert sum(1 for p in prs if p["status"].get("phase") == "Running") == 6


async def _exactly(probe: Any, n: int) -> list[str] | None:
    value = await probe()
    assert len(value) <= n, f"{len(value)} Jobs running, limit {n}"
    return value if len(value) == n else None


async def _pool_status(ns: Namespace, running: int) -> JSON | None:
    pool = await ns.get("runnerpools", "default")
    return pool if pool and pool.get("status", {}).get("replicas") == running else None


async def test_fifo_within_priority(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool(replicas=1))
    await ns.create("permitrequests", permit_request("req-old"))
    await asyncio.sleep(1.05)
    await ns.create("permitrequests", permit_request("req-new"))
    await ns.create("permitrequests", permit_request("req-urgent", priority=50))
    await start_operator()
    await until_job(jobs, "req-urgent-a1")
    await jobs.succeed("req-urgent-a1")
    await until_job(jobs, "req-old-a1")
    assert await jobs.job("req-new-a1") is None


async def test_cancel_deletes_the_running_job(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool())
    await ns.create("permitrequests", permit_request("req-stop"))
    await start_operator()
    await until_job(jobs, "req-stop-a1")
    await ns.patch("permitrequests", "req-stop", {"spec": {"cancel": True}})
    await until_phase(ns, "req-stop", "Cancelled")
    await eventually(lambda: _gone(jobs, "req-stop-a1"))


async def test_deletion_is_recorded_and_takes_the_jobs_along(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool())
    await ns.create("permitrequests", permit_request("req-del"))
    await start_operator()
    await until_job(jobs, "req-del-a1")
    await ns.delete("permitrequests", "req-del")

    async def deleted() -> bool:
        return await ns.get("permitrequests", "req-del") is None

    await eventually(deleted)
    await eventually(lambda: _gone(jobs, "req-del-a1"))
    reasons = [e["reason"] for e in await ns.events_for("req-del")]
    assert "Deleted" in reasons


async def test_killed_mid_work_and_restarted_makes_no_duplicate_job(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool(replicas=10))
    names = [f"req-k{i}" for i in range(10)]
    for name in names:
        await ns.create("permitrequests", permit_request(name))
    first = await start_operator("first")
    await eventually(jobs.jobs, timeout=20)  # at least one Job exists
    first.kill()
    await start_operator("second")

    async def all_jobs() -> list[JSON] | None:
        found = await jobs.jobs()
        return found if len(found) >= 10 else None

    await eventually(all_jobs)
    await asyncio.sleep(1.0)
    found = await jobs.jobs()
    assert sorted(j["metadata"]["name"] for j in found) == sorted(f"{n}-a1" for n in names)
    for name in names:
        await jobs.succeed(f"{name}-a1")
    for name in names:
        done = await until_phase(ns, name, "Succeeded")
        assert done["status"]["attempts"] == 1


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
async def test_two_replicas_one_active_and_the_standby_takes_over(
    ns: Namespace,
    jobs: JobController,
    start_operator: StartOperator,
    operators: list[OperatorProcess],
    scope: str,
) -> None:
    """Cluster-wide they peer through a ClusterKopfPeering; in a named namespace through its
    KopfPeering, with Kopf's scanning off (no namespaces or CRDs observed)."""
    cluster_wide = scope == "cluster"
    name = f"permisos-operator-{ns.name}"  # a peering object of the test's own
    peering = {"apiVersion": "kopf.dev/v1", "metadata": {"name": name}}
    if cluster_wide:
        await ns.kube.request(
            "POST", CLUSTER_PEERINGS, body={**peering, "kind": "ClusterKopfPeering"}
        )
    else:
        await ns.create("kopfpeerings", {**peering, "kind": "KopfPeering"})
    await ns.create("runnerpools", runner_pool(replicas=5))
    mode: dict[str, Any] = {"standalone": False, "cluster_wide": cluster_wide, "peering": name}
    try:
        await _one_active_then_the_standby(ns, jobs, start_operator, mode)
    finally:
        if cluster_wide:
            for proc in operators:
                proc.kill()
            await forget_cluster_peering(ns.kube, name)


async def leader_gauge(operator: OperatorProcess) -> float | None:
    """`permisos_operator_leader` as Prometheus would scrape it from that replica."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as answer:
            text = await answer.text()
    except aiohttp.ClientConnectionError:
        return None  # not listening yet
    for line in text.splitlines():
        if line.startswith("permisos_operator_leader "):
            return float(line.split()[1])
    return None


async def _one_active_then_the_standby(
    ns: Namespace, jobs: JobController, start_operator: StartOperator, mode: dict[str, Any]
) -> None:
    low = await start_operator("low", priority=10, **mode)
    high = await start_operator("high", priority=20, **mode)
    for i in range(3):
        await ns.create("permitrequests", permit_request(f"req-p{i}"))
    for i in range(3):
        await until_job(jobs, f"req-p{i}-a1", timeout=30)

    async def roles() -> tuple[float | None, float | None] | None:
        seen = (await leader_gauge(high), await leader_gauge(low))
        return seen if seen == (1.0, 0.0) else None

    await eventually(roles, timeout=20)
    await asyncio.sleep(1.0)
    assert len(await jobs.jobs()) == 3

    high.kill()
    await ns.create("permitrequests", permit_request("req-p3"))
    await until_job(jobs, "req-p3-a1", timeout=40)

    async def took_over() -> bool:
        return await leader_gauge(low) == 1.0

    await eventually(took_over, timeout=20)
    assert len(await jobs.jobs()) == 4


async def test_metrics_and_liveness(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool(replicas=1))
    await ns.create("permitrequests", permit_request("req-m1"))
    await ns.create("permitrequests", permit_request("req-m2"))
    operator: OperatorProcess = await start_operator()
    await until_job(jobs, "req-m1-a1")
    await jobs.fail("req-m1-a1", "permanent", "PortalRejected", "CURP GODE561231HDFRRN09 inválida")
    await until_phase(ns, "req-m1", "Failed")
    await until_job(jobs, "req-m2-a1")

    async with aiohttp.ClientSession() as http:

        async def scrape() -> str | None:
            async with http.get(f"http://127.0.0.1:{operator.metrics_port}/metrics") as r:
                text = await r.text()
            return text if 'permisos_queue_depth{pool="default"} 0.0' in text else None

        text = await eventually(scrape)
        async with http.get(f"http://127.0.0.1:{operator.health_port}/healthz") as r:
            assert r.status == 200
            health = json.loads(await r.text())
    assert health["controller"] is True
    assert 'permisos_permitrequests{phase="Failed"} 1.0' in text
    assert 'permisos_permitrequests{phase="Running"} 1.0' in text
    assert 'permisos_runner_concurrency{pool="default"} 1.0' in text
    assert 'permisos_runner_concurrency_limit{pool="default"} 1.0' in text
    assert 'permisos_attempts_total{outcome="permanent",reason="PortalRejected"} 1.0' in text
    assert "permisos_reconcile_duration_seconds_count" in text
    assert "permisos_job_start_delay_seconds_count" in text
    assert 'permisos_permit_runner_seconds_count{phase="Failed"} 1.0' in text
    # No names or personal data leak into metrics, logs or Events.
    events = json.dumps(await ns.events_for("req-m1"))
    pr = json.dumps(await get_pr(ns, "req-m1"))
    for sink in (text, operator.logs(), events, pr):
        assert "GODE561231HDFRRN09" not in sink
    assert "req-m1" not in text


async def test_an_operator_started_before_the_api_server_catches_up(
    operator_control_plane: ControlPlane, kube: Kube, tmp_path: Path
) -> None:
    """The API server is unreachable when the operator starts; once it answers, work proceeds."""
    ns = await new_namespace(kube, "op-late")
    proxy = TcpProxy(("127.0.0.1", operator_control_plane.api_port))
    proxy.port = free_port()  # the address the operator is given, answering nothing yet
    credentials = await operator_kubeconfig(
        operator_control_plane, kube, ns.name, tmp_path, cluster_wide=False
    )
    scope = {"PERMISOS_OPERATOR_NAMESPACES": json.dumps([ns.name])}
    operator = OperatorProcess(
        through(credentials, proxy.port), tmp_path / "operator.log", extra_env=scope
    )
    try:
        await asyncio.sleep(3)
        await proxy.start()
        await ns.create("runnerpools", runner_pool())
        await ns.create("permitrequests", permit_request("req-late"))
        await until_job(JobController(ns), "req-late-a1", timeout=60)
    finally:
        operator.kill()
        await proxy.stop()
        await ns.discard()
    # It did start first: Kopf's first calls were refused, and it retried them.
    assert "failed; will retry" in operator.logs()
