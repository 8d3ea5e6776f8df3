"""The portal's gates on a pool, on the real control plane: maintenance hours, the rate limit and
the portal's own Retry-After stop admissions, the pool says why (PortalAvailable, Events), and
the queue moves again when the gate opens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from permisos.kube import JSON
from tests.cluster import eventually
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
