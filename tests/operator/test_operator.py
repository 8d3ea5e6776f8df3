"""The operator process against the Kubernetes API emulator, over real HTTP.

The tests play the Job controller and kubelet (tests.cluster.Kubelet): they start and finish
runner pods with termination messages, and check what an engineer would see with kubectl.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from lightkube import ApiError, AsyncClient
from lightkube.types import PatchType

from permisos_operator.controller import FINALIZER
from permisos_sandbox.kubeapi import KubeApiServer
from tests.cluster import (
    CRDS,
    NS,
    ClusterKopfPeering,
    KopfPeering,
    Kubelet,
    OperatorProcess,
    PermitRequest,
    RunnerPool,
    as_dict,
    client,
    events_for,
    eventually,
    free_port,
    permit_request,
    runner_pool,
)


async def get_pr(kube: AsyncClient, name: str) -> dict[str, Any]:
    return as_dict(await kube.get(PermitRequest, name, namespace=NS))


async def phase_of(kube: AsyncClient, name: str) -> str | None:
    return (await get_pr(kube, name)).get("status", {}).get("phase")


async def until_phase(
    kube: AsyncClient, name: str, phase: str, timeout: float = 20
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        pr = await get_pr(kube, name)
        return pr if pr.get("status", {}).get("phase") == phase else None

    return await eventually(probe, timeout)


async def until_job(kubelet: Kubelet, name: str, timeout: float = 20) -> dict[str, Any]:
    return await eventually(lambda: kubelet.job(name), timeout)


FAST_RETRIES = {"maxAttempts": 3, "backoffSeconds": 1, "maxBackoffSeconds": 2}


async def test_an_admitted_request_gets_one_locked_down_job(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(
        runner_pool(
            replicas=2,
            activeDeadlineSeconds=900,
            serviceAccountName="permisos-runner",
            imagePullSecrets=["registry-pull"],
        )
    )
    pr = as_dict(
        await kube.create(
            permit_request(
                "req-1",
                vehicle={
                    "plates": "ABC1234",
                    "make": "Nissan",
                    "line": "Versa",
                    "modelYear": 2020,
                    "serviceType": "particular",
                },
            )
        )
    )
    start_operator()
    job = await until_job(kubelet, "req-1-a1")
    running = await until_phase(kube, "req-1", "Running")

    assert running["status"]["attempts"] == 1
    assert running["status"]["currentJob"] == "req-1-a1"
    assert FINALIZER in running["metadata"]["finalizers"]
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
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool())
    await kube.create(permit_request("req-ok", paidAt="2026-11-26T10:00:00Z"))
    start_operator()
    await until_job(kubelet, "req-ok-a1")
    await kubelet.start("req-ok-a1")
    await kubelet.succeed("req-ok-a1", folio="F-777")
    done = await until_phase(kube, "req-ok", "Succeeded")

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
    reasons = [e["reason"] for e in await eventually(lambda: _events(kube, "req-ok", 3))]
    assert reasons[:3] == ["Queued", "JobCreated", "PermitIssued"]


async def _events(kube: AsyncClient, name: str, at_least: int) -> list[dict[str, Any]] | None:
    events = await events_for(kube, name)
    events.sort(key=lambda e: (e["firstTimestamp"], e["metadata"]["resourceVersion"]))
    return events if len(events) >= at_least else None


async def test_retryable_failure_backs_off_then_succeeds(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    # A backoff long enough that the Retrying phase is there to be seen.
    await kube.create(
        runner_pool(retryPolicy={**FAST_RETRIES, "backoffSeconds": 3, "maxBackoffSeconds": 4})
    )
    await kube.create(permit_request("req-retry"))
    start_operator()
    await until_job(kubelet, "req-retry-a1")
    await kubelet.fail("req-retry-a1", "retryable", "PortalTimeout", "portal took too long")
    retrying = await until_phase(kube, "req-retry", "Retrying")
    assert retrying["status"]["nextAttemptAt"] > retrying["status"]["lastAttempt"]["finishedAt"]
    assert retrying["status"]["lastAttempt"]["reason"] == "PortalTimeout"
    await until_job(kubelet, "req-retry-a2")
    await kubelet.succeed("req-retry-a2")
    done = await until_phase(kube, "req-retry", "Succeeded")
    assert done["status"]["attempts"] == 2
    assert len(await kubelet.jobs()) == 2


async def test_permanent_failure_stops_at_once_with_the_portal_reason(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool(retryPolicy=FAST_RETRIES))
    await kube.create(permit_request("req-bad"))
    start_operator()
    await until_job(kubelet, "req-bad-a1")
    await kubelet.fail("req-bad-a1", "permanent", "PortalRejected", "Las placas ya tienen permiso")
    failed = await until_phase(kube, "req-bad", "Failed")
    ready = {c["type"]: c for c in failed["status"]["conditions"]}["Ready"]
    assert ready["reason"] == "PortalRejected"
    assert "Las placas ya tienen permiso" in ready["message"]
    await asyncio.sleep(2.5)  # longer than the backoff: no second attempt may appear
    assert await kubelet.job("req-bad-a2") is None


async def test_attempts_exhausted_fails(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool(retryPolicy=FAST_RETRIES))
    await kube.create(permit_request("req-tired", retryPolicy={"maxAttempts": 2}))
    start_operator()
    for attempt in (1, 2):
        await until_job(kubelet, f"req-tired-a{attempt}")
        await kubelet.finish(f"req-tired-a{attempt}", "{not json", 3)
    failed = await until_phase(kube, "req-tired", "Failed")
    assert failed["status"]["attempts"] == 2
    ready = {c["type"]: c for c in failed["status"]["conditions"]}["Ready"]
    assert ready["reason"] == "AttemptsExhausted"
    assert "InvalidResult" in ready["message"]


async def test_a_job_stuck_pending_is_timed_out_and_retried(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool(startTimeoutSeconds=10, retryPolicy=FAST_RETRIES))
    await kube.create(permit_request("req-stuck"))
    start_operator()
    await until_job(kubelet, "req-stuck-a1")  # no pod ever starts
    retrying = await until_phase(kube, "req-stuck", "Retrying", timeout=20)
    assert retrying["status"]["lastAttempt"]["reason"] == "StartTimeout"
    await eventually(lambda: _gone(kubelet, "req-stuck-a1"))
    await until_job(kubelet, "req-stuck-a2")


async def _gone(kubelet: Kubelet, job: str) -> bool:
    return await kubelet.job(job) is None


async def test_admission_respects_the_pool_limit_fifo_and_scale(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool(replicas=3))
    names = [f"req-{i:02d}" for i in range(20)]
    for name in names:
        await kube.create(permit_request(name))
        await asyncio.sleep(1.05 if name == names[0] else 0)  # creationTimestamp has 1 s precision
    start_operator()

    async def running() -> list[str]:
        jobs = await kubelet.jobs()
        return sorted(
            j["metadata"]["name"].rsplit("-a", 1)[0]
            for j in jobs
            if not j.get("status", {}).get("succeeded")
        )

    first = await eventually(lambda: _exactly(running, 3))
    assert first[0] == "req-00"
    await asyncio.sleep(1.0)
    assert len(await running()) == 3, "more Jobs than the pool allows"

    await kube.patch(
        RunnerPool.Scale,
        "default",
        {"spec": {"replicas": 6}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    six = await eventually(lambda: _exactly(running, 6), timeout=5)
    assert "req-00" in six
    pool = await eventually(lambda: _pool_status(kube, 6))
    assert pool["status"]["queued"] == 14

    # Finishing one admits exactly one more; lowering the limit kills nothing.
    await kubelet.succeed("req-00-a1")
    await until_phase(kube, "req-00", "Succeeded")
    await eventually(lambda: _exactly(running, 6))
    await kube.patch(
        RunnerPool.Scale,
        "default",
        {"spec": {"replicas": 1}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    await asyncio.sleep(1.0)
    assert len(await running()) == 6
    prs = [as_dict(p) async for p in kube.list(PermitRequest, namespace=NS)]
    assert sum(1 for p in prs if p["status"].get("phase") == "Running") == 6


async def _exactly(probe: Any, n: int) -> list[str] | None:
    value = await probe()
    assert len(value) <= n, f"{len(value)} Jobs running, limit {n}"
    return value if len(value) == n else None


async def _pool_status(kube: AsyncClient, running: int) -> dict[str, Any] | None:
    pool = as_dict(await kube.get(RunnerPool, "default", namespace=NS))
    return pool if pool.get("status", {}).get("replicas") == running else None


async def test_fifo_within_priority(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool(replicas=1))
    await kube.create(permit_request("req-old"))
    await asyncio.sleep(1.05)
    await kube.create(permit_request("req-new"))
    await kube.create(permit_request("req-urgent", priority=50))
    start_operator()
    await until_job(kubelet, "req-urgent-a1")
    await kubelet.succeed("req-urgent-a1")
    await until_job(kubelet, "req-old-a1")
    assert await kubelet.job("req-new-a1") is None


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"priority": 200}, "spec.priority", "less than or equal to 100"),
        ({"applicationId": None}, "spec.applicationId", "Required"),
        (
            {
                "vehicle": {
                    "plates": "abc",
                    "make": "N",
                    "line": "V",
                    "modelYear": 2020,
                    "serviceType": "particular",
                }
            },
            "spec.vehicle.plates",
            "should match",
        ),
        (
            {
                "vehicle": {
                    "plates": "ABC1234",
                    "make": "N",
                    "line": "V",
                    "modelYear": 2020,
                    "serviceType": "avion",
                }
            },
            "spec.vehicle.serviceType",
            "Unsupported value",
        ),
        (
            {"retryPolicy": {"backoffSeconds": 60, "maxBackoffSeconds": 10}},
            "spec.retryPolicy",
            "maxBackoffSeconds must not be less than backoffSeconds",
        ),
    ],
)
async def test_invalid_permitrequests_are_rejected_clearly(
    kube: AsyncClient, spec: dict[str, Any], field: str, words: str
) -> None:
    body = as_dict(permit_request("req-invalid"))
    body["spec"].update(spec)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    with pytest.raises(ApiError) as caught:
        await kube.create(PermitRequest.from_dict(body))
    assert caught.value.status.code == 422
    message = caught.value.status.message or ""
    assert field in message and words in message, message


async def test_long_names_and_undoing_a_cancel_are_rejected(kube: AsyncClient) -> None:
    with pytest.raises(ApiError) as caught:
        await kube.create(permit_request("r" * 57))
    assert caught.value.status.code == 422
    assert "at most 56 characters" in (caught.value.status.message or "")

    await kube.create(permit_request("req-cancel", cancel=True))
    with pytest.raises(ApiError) as caught:
        await kube.patch(
            PermitRequest,
            "req-cancel",
            {"spec": {"cancel": False}},
            namespace=NS,
            patch_type=PatchType.MERGE,
        )
    assert "cannot be resumed" in (caught.value.status.message or "")


async def test_cancel_deletes_the_running_job(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool())
    await kube.create(permit_request("req-stop"))
    start_operator()
    await until_job(kubelet, "req-stop-a1")
    await kube.patch(
        PermitRequest,
        "req-stop",
        {"spec": {"cancel": True}},
        namespace=NS,
        patch_type=PatchType.MERGE,
    )
    await until_phase(kube, "req-stop", "Cancelled")
    await eventually(lambda: _gone(kubelet, "req-stop-a1"))


async def test_deletion_is_recorded_and_takes_the_jobs_along(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool())
    await kube.create(permit_request("req-del"))
    start_operator()
    await until_job(kubelet, "req-del-a1")
    await kube.delete(PermitRequest, "req-del", namespace=NS)

    async def deleted() -> bool:
        try:
            await kube.get(PermitRequest, "req-del", namespace=NS)
        except ApiError as error:
            return error.status.code == 404
        return False

    await eventually(deleted)
    await eventually(lambda: _gone(kubelet, "req-del-a1"))
    reasons = [e["reason"] for e in await events_for(kube, "req-del")]
    assert "Deleted" in reasons


async def test_killed_mid_work_and_restarted_makes_no_duplicate_job(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool(replicas=10))
    names = [f"req-k{i}" for i in range(10)]
    for name in names:
        await kube.create(permit_request(name))
    first = start_operator("first")
    await eventually(lambda: kubelet.jobs(), timeout=20)  # at least one Job exists
    first.kill()
    start_operator("second")

    async def all_jobs() -> list[dict[str, Any]] | None:
        jobs = await kubelet.jobs()
        return jobs if len(jobs) >= 10 else None

    jobs = await eventually(all_jobs)
    await asyncio.sleep(1.0)
    jobs = await kubelet.jobs()
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(f"{n}-a1" for n in names)
    for name in names:
        await kubelet.succeed(f"{name}-a1")
    for name in names:
        done = await until_phase(kube, name, "Succeeded")
        assert done["status"]["attempts"] == 1


@pytest.mark.parametrize("scope", ["cluster", "namespace"])
async def test_two_replicas_one_active_and_the_standby_takes_over(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any, scope: str
) -> None:
    """Cluster-wide they peer through a ClusterKopfPeering; in a named namespace through its
    KopfPeering, with Kopf's scanning off (no namespaces or CRDs observed)."""
    peering: Any
    if scope == "cluster":
        peering, env = ClusterKopfPeering, {}
    else:
        peering, env = KopfPeering, {"PERMISOS_OPERATOR_NAMESPACES": json.dumps([NS])}
    metadata = {"name": "permisos-operator"} | ({"namespace": NS} if scope == "namespace" else {})
    await kube.create(
        peering.from_dict(
            {"apiVersion": "kopf.dev/v1", "kind": peering.__name__, "metadata": metadata}
        )
    )
    await kube.create(runner_pool(replicas=5))
    low: OperatorProcess = start_operator("low", standalone=False, priority=10, extra_env=env)
    high: OperatorProcess = start_operator("high", standalone=False, priority=20, extra_env=env)
    for i in range(3):
        await kube.create(permit_request(f"req-p{i}"))
    for i in range(3):
        await until_job(kubelet, f"req-p{i}-a1", timeout=30)
    await asyncio.sleep(1.0)
    assert "controller started" in high.logs()
    # The low-priority replica may have started first, but it must have stopped for the other.
    low_log = low.logs()
    assert low_log.count("controller started") == low_log.count("controller stopped")
    assert len(await kubelet.jobs()) == 3

    high.kill()
    await kube.create(permit_request("req-p3"))
    await until_job(kubelet, "req-p3-a1", timeout=40)
    assert low.logs().count("controller started") > low_log.count("controller started")


async def test_metrics_and_liveness(
    kube: AsyncClient, kubelet: Kubelet, start_operator: Any
) -> None:
    await kube.create(runner_pool(replicas=1))
    await kube.create(permit_request("req-m1"))
    await kube.create(permit_request("req-m2"))
    operator: OperatorProcess = start_operator()
    await until_job(kubelet, "req-m1-a1")
    await kubelet.fail(
        "req-m1-a1", "permanent", "PortalRejected", "CURP GODE561231HDFRRN09 inválida"
    )
    await until_phase(kube, "req-m1", "Failed")
    await until_job(kubelet, "req-m2-a1")

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
    # No names or personal data leak into metrics, logs or Events.
    events = json.dumps(await events_for(kube, "req-m1"))
    pr = json.dumps(await get_pr(kube, "req-m1"))
    for sink in (text, operator.logs(), events, pr):
        assert "GODE561231HDFRRN09" not in sink
    assert "req-m1" not in text


async def test_an_operator_started_before_the_api_server_catches_up(tmp_path: Any) -> None:
    """The API server is down when the operator starts; once it is up, work proceeds."""
    port = free_port()
    server = KubeApiServer(crd_paths=[CRDS])
    kubeconfig = tmp_path / "kubeconfig"
    await server.start(host="127.0.0.1", port=port)
    server.write_kubeconfig(kubeconfig)
    await server.stop()  # the kubeconfig stays, the server is gone

    operator = OperatorProcess(kubeconfig, tmp_path / "operator.log")
    try:
        await asyncio.sleep(3)
        server = KubeApiServer(crd_paths=[CRDS])
        await server.start(host="127.0.0.1", port=port)
        kube = client(kubeconfig)
        try:
            await kube.create(runner_pool())
            await kube.create(permit_request("req-late"))
            await until_job(Kubelet(kube), "req-late-a1", timeout=60)
        finally:
            await kube.close()
            await server.stop()
    finally:
        operator.kill()
    assert "controller failed" in operator.logs()
