"""The portal's gates on a pool, on the real control plane: maintenance hours, the rate limit and
the portal's own Retry-After stop admissions, the pool says why (PortalAvailable, Events), and
the queue moves again when the gate opens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp

from permisos.attempt_result import AttemptResult
from permisos.kube import JSON
from tests.cluster import OperatorProcess, eventually
from tests.job_controller import JobController
from tests.namespaces import Namespace, permit_request, runner_pool

from .conftest import StartOperator
from .test_operator import until_job, until_phase


async def portal_available(ns: Namespace, reason: str) -> JSON | None:
    pool = await ns.get("runnerpools", "default")
    found = [
        c
        for c in ((pool or {}).get("status") or {}).get("conditions") or []
        if c["type"] == "PortalAvailable"
    ]
    return found[0] if found and found[0]["reason"] == reason else None


async def job_names(jobs: JobController) -> list[str]:
    return sorted(j["metadata"]["name"] for j in await jobs.jobs())


async def pool_events(ns: Namespace) -> list[tuple[str, str]]:
    return [(e["type"], e["reason"]) for e in await ns.events_for("default")]


async def test_no_attempt_starts_in_a_maintenance_window_and_the_queue_moves_after_it(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    now = datetime.now(UTC)
    window = {
        "start": f"{now - timedelta(minutes=1):%H:%M}",
        "end": f"{now + timedelta(minutes=5):%H:%M}",
    }
    portal = {"timeZone": "UTC", "maintenanceWindows": [window]}
    await ns.create("runnerpools", runner_pool(replicas=3, portal=portal))
    for name in ("req-a", "req-b"):
        await ns.create("permitrequests", permit_request(name))
    await start_operator()

    closed = await eventually(lambda: portal_available(ns, "MaintenanceWindow"))
    assert closed["status"] == "False" and "in maintenance" in closed["message"]
    await until_phase(ns, "req-a", "Queued")
    await until_phase(ns, "req-b", "Queued")
    await asyncio.sleep(2)
    assert await job_names(jobs) == [], "an attempt started inside the maintenance window"
    assert ("Warning", "MaintenanceWindow") in await pool_events(ns)

    # The window is dropped (maintenance over early): both start, and the pool says so.
    await ns.patch("runnerpools", "default", {"spec": {"portal": {"maintenanceWindows": []}}})
    await eventually(lambda: _names_are(jobs, ["req-a-a1", "req-b-a1"]))
    opened = await eventually(lambda: portal_available(ns, "PortalHealthy"))
    assert opened["status"] == "True"
    assert ("Normal", "PortalHealthy") in await pool_events(ns)


async def test_the_rate_limit_and_the_portals_retry_after_pace_the_pool(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    pool = runner_pool(
        replicas=5,
        portal={"rateLimit": {"attemptsPerMinute": 2}},
        retryPolicy={"maxAttempts": 3, "backoffSeconds": 1, "maxBackoffSeconds": 1},
    )
    await ns.create("runnerpools", pool)
    names = [f"req-{i}" for i in range(4)]
    for name in names:
        await ns.create("permitrequests", permit_request(name))
    await start_operator()

    await eventually(lambda: _count_is(jobs, 2))
    limited = await eventually(lambda: portal_available(ns, "RateLimited"))
    assert limited["status"] == "False"
    await asyncio.sleep(2)
    assert len(await job_names(jobs)) == 2, "more attempts than the rate limit allows"

    # No limit any more: the other two start. Then the portal answers 429, Retry-After: 6.
    await ns.patch("runnerpools", "default", {"spec": {"portal": {"rateLimit": None}}})
    await eventually(lambda: _count_is(jobs, 4))
    first = (await job_names(jobs))[0]
    await jobs.fail(first, "retryable", "RateLimited", "HTTP 429", retry_after_seconds=6)
    held = await eventually(lambda: portal_available(ns, "RateLimited"))
    pool_now = await ns.get("runnerpools", "default")
    assert pool_now is not None and pool_now["status"]["portalHold"]["reason"] == "RateLimited"
    assert "asked to wait" in held["message"]
    # Neither the retry (its backoff is 1 s) nor a new request starts while the portal waits.
    await ns.create("permitrequests", permit_request("req-new"))
    await asyncio.sleep(3)
    assert len(await job_names(jobs)) == 4
    request = first.rsplit("-a", 1)[0]
    await until_job(jobs, f"{request}-a2", timeout=15)
    await until_job(jobs, "req-new-a1", timeout=15)
    await eventually(lambda: portal_available(ns, "PortalHealthy"))


async def _names_are(jobs: JobController, names: list[str]) -> bool:
    return await job_names(jobs) == names


async def _count_is(jobs: JobController, n: int) -> bool:
    found = len(await job_names(jobs))
    assert found <= n, f"{found} Jobs, expected at most {n}"
    return found == n


PROBE = "permisosdigitales.mx/probe"


async def probe_jobs(jobs: JobController) -> list[JSON]:
    return [j for j in await jobs.jobs() if PROBE in j["metadata"].get("labels", {})]


async def unfinished_attempts(jobs: JobController) -> list[str]:
    return sorted(
        j["metadata"]["name"]
        for j in await jobs.jobs()
        if PROBE not in j["metadata"].get("labels", {})
        and not j.get("status", {}).get("succeeded")
        and not j.get("status", {}).get("failed")
    )


async def attempt_names(jobs: JobController) -> list[str]:
    return sorted(
        j["metadata"]["name"]
        for j in await jobs.jobs()
        if PROBE not in j["metadata"].get("labels", {})
    )


async def circuit_of(ns: Namespace) -> JSON:
    pool = await ns.get("runnerpools", "default")
    return ((pool or {}).get("status") or {}).get("circuit") or {}


async def test_a_portal_outage_opens_the_circuit_and_a_probe_releases_the_queue_in_waves(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    pool = runner_pool(
        replicas=4,
        portal={
            "circuitBreaker": {"failureThreshold": 3, "coolDownSeconds": 2, "maxCoolDownSeconds": 4}
        },
        # One attempt each: a failure charged to a request would fail it.
        retryPolicy={"maxAttempts": 1, "backoffSeconds": 1, "maxBackoffSeconds": 1},
    )
    await ns.create("runnerpools", pool)
    names = [f"req-{i:02d}" for i in range(20)]
    for name in names:
        await ns.create("permitrequests", permit_request(name))
    operator = await start_operator()

    # The portal is down: the first four attempts fail; the third opens the circuit.
    first = await eventually(lambda: _unfinished_count(jobs, 4))
    for job in first:
        await jobs.fail(job, "retryable", "PortalUnavailable", "HTTP 503")
    opened = await eventually(lambda: portal_available(ns, "PortalUnavailable"))
    assert opened["status"] == "False" and "3 attempts in a row" in opened["message"]
    circuit = await circuit_of(ns)
    assert circuit["state"] == "Open" and circuit["consecutiveFailures"] == 3
    # Attempts admitted between the first failures and the opening end too (the portal is
    # still down); from the opening on, none starts.
    before = await attempt_names(jobs)
    for job in await unfinished_attempts(jobs):
        await jobs.fail(job, "retryable", "PortalUnavailable", "HTTP 503")
    await asyncio.sleep(1)
    assert await attempt_names(jobs) == before, "an attempt started with the circuit open"
    assert len(before) <= 4 + 2  # the four running, and at most one per failure under 3

    # After the cool-down a probe runs (no applicant: no Secret mounted); it fails, and the
    # next one waits twice as long; the second finds the portal back.
    probe = (await eventually(lambda: _probes(jobs, 1)))[0]
    volumes = probe["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["dshm", "tmp"]
    await eventually(lambda: portal_available(ns, "Probing"))
    await jobs.fail(probe["metadata"]["name"], "retryable", "PortalUnavailable", "HTTP 503")
    again = await eventually(lambda: _circuit_with(ns, openings=2))
    assert again["state"] == "Open"
    text = await eventually(lambda: scrape(operator, 'state="Open"} 1.0'))
    assert 'permisos_portal_probes_total{outcome="unavailable"} 1.0' in text
    second = (await eventually(lambda: _probes(jobs, 2), timeout=15))[-1]
    healthy = AttemptResult(outcome="succeeded", reason="PortalHealthy", kind="probe")
    await jobs.finish(second["metadata"]["name"], healthy.to_message(), 0)

    # Released in waves: 1, then 2, then the pool's 4, each after the previous succeeded.
    await eventually(lambda: _circuit_with(ns, state="HalfOpen", wave=1))
    waves = []
    for _ in range(3):
        running = await eventually(lambda: _some_unfinished(jobs), timeout=15)
        waves.append(len(running))
        for job in running:
            await jobs.succeed(job)
    assert waves == [1, 2, 4]
    closed = await eventually(lambda: _circuit_with(ns, state="Closed"))
    assert closed["consecutiveFailures"] == 0
    text = await eventually(lambda: scrape(operator, 'state="Closed"} 1.0'))
    assert 'permisos_portal_probes_total{outcome="healthy"} 1.0' in text

    # Everyone gets a permit; the outage failed no one.
    async def all_done() -> bool:
        for job in await unfinished_attempts(jobs):
            await jobs.succeed(job)
        prs = await ns.objects("permitrequests")
        return all(p.get("status", {}).get("phase") == "Succeeded" for p in prs)

    await eventually(all_done, timeout=60)
    prs = await ns.objects("permitrequests")
    # The failed attempts were the portal's, uncharged; each request's one charged attempt
    # issued its permit.
    assert sum(p["status"].get("portalAttempts", 0) for p in prs) == len(before)
    assert all(p["status"]["attempts"] == p["status"].get("portalAttempts", 0) + 1 for p in prs)
    reasons = [reason for _, reason in await pool_events(ns)]
    story = ["PortalUnavailable", "Probing", "PortalRecovering", "PortalHealthy"]
    assert [r for r in reasons if r in story][:1] == ["PortalUnavailable"]
    assert all(r in reasons for r in story), reasons


async def scrape(operator: OperatorProcess, wanted: str) -> str | None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{operator.metrics_port}/metrics") as response,
    ):
        text = await response.text()
    return text if f'permisos_runnerpool_circuit_state{{pool="default",{wanted}' in text else None


async def _unfinished_count(jobs: JobController, n: int) -> list[str] | None:
    found = await unfinished_attempts(jobs)
    return found if len(found) == n else None


async def _some_unfinished(jobs: JobController) -> list[str] | None:
    await asyncio.sleep(0.5)  # the whole wave, not its first Job
    return await unfinished_attempts(jobs) or None


async def _probes(jobs: JobController, n: int) -> list[JSON] | None:
    found = sorted(await probe_jobs(jobs), key=lambda j: j["metadata"]["creationTimestamp"])
    return found if len(found) >= n else None


async def _circuit_with(ns: Namespace, **values: object) -> JSON | None:
    circuit = await circuit_of(ns)
    return circuit if all(circuit.get(k) == v for k, v in values.items()) else None


def admitted(pr: JSON) -> JSON:
    return next(c for c in pr["status"]["conditions"] if c["type"] == "Admitted")


async def test_queued_requests_show_their_place_their_estimate_and_why_they_wait(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    await ns.create("runnerpools", runner_pool(replicas=1))
    names = [f"req-{i}" for i in range(4)]
    for name in names:
        await ns.create("permitrequests", permit_request(name))
        await asyncio.sleep(1.05 if name == names[0] else 0)  # creation times: 1 s precision
    await start_operator()
    await until_job(jobs, "req-0-a1")

    async def line(reason: str) -> list[JSON] | None:
        prs = {p["metadata"]["name"]: p for p in await ns.objects("permitrequests")}
        queued = [prs[n] for n in names[1:]]
        if all(
            p["status"].get("queuePosition") and admitted(p)["reason"] == reason for p in queued
        ):
            return [prs[names[0]], *queued]
        return None

    running, *queued = await eventually(lambda: line("PoolFull"), timeout=30)
    assert admitted(running)["status"] == "True" and "queuePosition" not in running["status"]
    # A FIFO backlog: places 1, 2, 3 in creation order; the estimates never go backwards.
    assert [p["status"]["queuePosition"] for p in queued] == [1, 2, 3]
    starts = [p["status"]["estimatedStartAt"] for p in queued]
    assert starts == sorted(starts)
    assert all(admitted(p)["status"] == "False" for p in queued)

    # The portal goes into maintenance: the same requests now wait for it, and say so.
    now = datetime.now(UTC)
    window = {
        "start": f"{now - timedelta(minutes=1):%H:%M}",
        "end": f"{now + timedelta(minutes=5):%H:%M}",
    }
    portal = {"timeZone": "UTC", "maintenanceWindows": [window]}
    await ns.patch("runnerpools", "default", {"spec": {"portal": portal}})
    _, *queued = await eventually(lambda: line("MaintenanceWindow"), timeout=30)
    assert "in maintenance" in admitted(queued[0])["message"]
    # Their estimates now start after the window.
    assert all(
        p["status"]["estimatedStartAt"] >= f"{now + timedelta(minutes=4):%Y-%m-%dT%H:%M}"
        for p in queued
    )


async def test_a_request_backing_off_when_its_pool_goes_away_waits_for_a_pool(
    ns: Namespace, jobs: JobController, start_operator: StartOperator
) -> None:
    policy = {"maxAttempts": 3, "backoffSeconds": 3, "maxBackoffSeconds": 3}
    await ns.create("runnerpools", runner_pool(retryPolicy=policy))
    await ns.create("permitrequests", permit_request("req-orphan"))
    await start_operator()
    await until_job(jobs, "req-orphan-a1")
    await jobs.fail("req-orphan-a1", "retryable", "PortalTimeout", "slow")
    await until_phase(ns, "req-orphan", "Retrying")
    await ns.delete("runnerpools", "default")
    pending = await until_phase(ns, "req-orphan", "Pending", timeout=30)
    assert admitted(pending)["reason"] == "PoolNotFound"
    assert admitted(pending)["status"] == "False"
