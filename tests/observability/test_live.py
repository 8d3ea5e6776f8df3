"""A real Prometheus (Debian's binary, on loopback, its own config and data directory) scrapes a
running API and a running operator that have done real work, evaluates the chart's rules, and
every dashboard query then returns data.

The work, all through the processes' real interfaces: an applicant registers, logs in (and fails
once), pays four applications (a declined card then a good one, a card, an OXXO voucher paid at
the store), Stripe's simulator delivers signed webhooks, two forged ones are refused, the API's
dispatcher creates the PermitRequests on the real kube-apiserver, the operator runs them
(tests/job_controller.py plays the Job controller and the runner pods with the results a runner
reports: one request times out twice before it succeeds, one is rejected by the portal for good,
one succeeds at once, one stays running), the API mirrors the phases into PostgreSQL and tells
the applicants. Last, Stripe becomes unreachable and two payments answer 502.

Meanwhile, in a pool of its own, the portal changes (issue #14): one attempt meets a page the
runner cannot read, the pool's circuit opens, the request waits uncharged instead of failing, and
PermisosPortalChanged fires in this Prometheus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import subprocess
import sys
import time
import uuid
from collections import Counter as Tally
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import yaml

from permisos.attempt_result import AttemptResult
from permisos.kube import JSON, Kube
from permisos_operator.jobs import LABEL_ATTEMPT, LABEL_REQUEST
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.payments import PaymentsConfig, PaymentsSimulator
from permisos_sandbox.ports import free_port
from tests.accounts import api_kubeconfig, operator_kubeconfig
from tests.api.conftest import APPLICATION, PASSWORD, mail_text, read_mail
from tests.cluster import OperatorProcess, stop_process
from tests.databases import fresh_database
from tests.job_controller import JobController, permit_artifacts
from tests.namespaces import Namespace, new_namespace, permit_request, runner_pool
from tests.observability.support import (
    DASHBOARD,
    PROMETHEUS,
    RULES,
    Query,
    dashboard_queries,
    metric_names,
    recorded_names,
    rule_list,
)

# What the Prometheus Operator's `namespace` label would say; the dashboard filters on it.
NAMESPACE = "permisos-test"
API_KEY = "sk_test_permisos_observability"
WEBHOOK_SECRET = "whsec_permisos_observability"
FAST_RETRIES = {"maxAttempts": 3, "backoffSeconds": 1, "maxBackoffSeconds": 1}
# What the runner reports (browser-runner/permisos_runner/runner.py names these steps).
SUCCESS_TIMINGS = {
    "login": 0.8,
    "lookup": 0.3,
    "applicant": 1.2,
    "vehicle": 0.9,
    "confirm": 0.4,
    "processing": 12.5,
    "download": 2.1,
    "upload": 0.6,
    "total": 18.8,
}
TIMEOUT_TIMINGS = {"login": 30.0, "total": 30.2}
REJECTED_TIMINGS = {"login": 0.9, "lookup": 0.3, "applicant": 1.0, "processing": 4.0, "total": 6.3}
CHANGED_TIMINGS = {"login": 0.8, "lookup": 0.3, "applicant": 1.1, "vehicle": 0.2, "total": 2.5}
# The pool whose portal changes, and its one request (created directly: the API's dispatcher
# puts every request in `default`). An hour's cool-down: no probe runs during the test.
CHANGED_POOL = "portal-changed"
CHANGED_REQUEST = "changed-page-request"
CHANGED_BREAKER = {"coolDownSeconds": 3600, "maxCoolDownSeconds": 3600}


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        stop_process(self.proc)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    return Process(proc, log)


async def until(
    probe: Callable[[], Awaitable[Any]], what: str, timeout: float = 30, every: float = 0.2
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            last = await probe()
            if last:
                return last
        await asyncio.sleep(every)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


async def started(process: Process, ready: Callable[[], Awaitable[bool]]) -> None:
    """Waits for a process to answer; a failure shows the end of its log."""
    try:
        await until(ready, f"{process.proc.args!r} ready")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{process.logs()}") from None


# --- the platform --------------------------------------------------------------------------------


@pytest.fixture
def database_url() -> Iterator[str]:
    with fresh_database("permisos_obs") as url:
        yield url


@dataclass
class Platform:
    api: str
    api_port: int
    operator_port: int
    ns: Namespace
    jobs: JobController
    sim: PaymentsSimulator
    mail: Path
    processes: dict[str, Process]


@pytest.fixture
async def platform(
    operator_control_plane: ControlPlane, tmp_path: Path, database_url: str
) -> AsyncIterator[Platform]:
    control_plane = operator_control_plane
    kube = await Kube.from_kubeconfig(control_plane.admin_kubeconfig)
    ns = await new_namespace(kube, "obs")
    api_credentials = await api_kubeconfig(control_plane, kube, ns.name, tmp_path)
    operator_credentials = await operator_kubeconfig(
        control_plane, kube, ns.name, tmp_path, cluster_wide=False
    )
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    sim = PaymentsSimulator(
        PaymentsConfig(
            api_key=API_KEY,
            webhook_url=f"{api}/v1/webhooks/stripe",
            webhook_secret=WEBHOOK_SECRET,
            retry_base_seconds=0.2,
            max_attempts=3,
            oxxo_test_delay_seconds=0.2,
        )
    )
    await sim.start()
    mail = tmp_path / "mail"
    api_env = {
        **os.environ,
        "KUBECONFIG": str(api_credentials),
        "PERMISOS_API_HOST": "127.0.0.1",
        "PERMISOS_API_PORT": str(api_port),
        "PERMISOS_API_LOG_LEVEL": "WARNING",
        "PERMISOS_API_DATABASE_URL": database_url,
        "PERMISOS_API_DATABASE_POOL_SIZE": "4",
        "PERMISOS_API_PUBLIC_BASE_URL": api,
        "PERMISOS_API_SIGNING_SECRET": "observability-test-signing-secret",
        "PERMISOS_API_ARGON2_TIME_COST": "1",
        "PERMISOS_API_ARGON2_MEMORY_COST_KIB": "8192",
        "PERMISOS_API_ARGON2_PARALLELISM": "1",
        "PERMISOS_API_MAIL_OUTBOX_DIR": str(mail),
        "PERMISOS_API_STRIPE_SECRET_KEY": API_KEY,
        "PERMISOS_API_STRIPE_API_BASE": sim.url,
        "PERMISOS_API_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PERMISOS_API_KUBERNETES_NAMESPACE": ns.name,
        "PERMISOS_API_DISPATCHER_INTERVAL_SECONDS": "0.3",
        "PERMISOS_API_READYZ_S3": "false",
    }
    processes = {
        "api": spawn([sys.executable, "-m", "permisos_api"], tmp_path / "api.log", api_env)
    }
    operator = OperatorProcess(
        operator_credentials,
        tmp_path / "operator.log",
        extra_env={"PERMISOS_OPERATOR_NAMESPACES": json.dumps([ns.name])},
    )
    try:
        async with httpx.AsyncClient() as http:
            await started(processes["api"], lambda: _ok(http.get(f"{api}/healthz")))
        yield Platform(
            api, api_port, operator.metrics_port, ns, JobController(ns), sim, mail, processes
        )
    finally:
        # All asked to stop at once; each then gets its grace period.
        for process in processes.values():
            if process.proc.poll() is None:
                process.proc.terminate()
        for process in processes.values():
            process.stop()
        operator.kill()  # nothing to shut down cleanly here; Kopf's SIGTERM path takes seconds
        await sim.stop()
        await ns.discard()
        await kube.close()


async def _ok(response: Awaitable[httpx.Response]) -> bool:
    return (await response).status_code == 200


def start_prometheus(tmp_path: Path, platform: Platform) -> tuple[str, Process]:
    """Debian's Prometheus with its own config, data directory and port: never the packaged
    service. The targets carry the labels the chart's ServiceMonitors give them."""
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": job,
                "static_configs": [
                    {"targets": [f"127.0.0.1:{target}"], "labels": {"namespace": NAMESPACE}}
                ],
            }
            for job, target in (
                ("permisos-api", platform.api_port),
                ("permisos-operator", platform.operator_port),
            )
        ],
    }
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    process = spawn(
        [
            PROMETHEUS,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp_path / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        tmp_path / "prometheus.log",
    )
    platform.processes["prometheus"] = process
    return f"http://127.0.0.1:{port}", process


# --- the work --------------------------------------------------------------------------------


async def applicant(http: httpx.AsyncClient, platform: Platform) -> dict[str, str]:
    """Registers, verifies and logs in one applicant; returns the Bearer header."""
    email = f"obs.{uuid.uuid4().hex[:10]}@example.com"
    r = await http.post("/v1/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 202, r.text

    async def verification_link() -> str | None:
        for msg in read_mail(platform.mail, email):
            found = re.search(r"/verificar\?token=(\S+)", mail_text(msg))
            if found:
                return unquote(found.group(1))
        return None

    token = await until(verification_link, "verification mail")
    assert (await http.get("/v1/auth/verify", params={"token": token})).status_code == 200
    wrong = await http.post("/v1/auth/login", json={"email": email, "password": "Otra-cosa-99"})
    assert wrong.status_code == 401, wrong.text
    r = await http.post(
        "/v1/auth/login", json={"email": email, "password": PASSWORD, "issue_bearer": True}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def new_application(http: httpx.AsyncClient, auth: dict[str, str], plates: str) -> str:
    r = await http.post("/v1/applications", json={**APPLICATION, "plates": plates}, headers=auth)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def pay(
    http: httpx.AsyncClient, auth: dict[str, str], app_id: str, **body: str
) -> httpx.Response:
    return await http.post(f"/v1/applications/{app_id}/payments", json=body, headers=auth)


def result(request: str, outcome: str) -> AttemptResult:
    if outcome == "succeeded":
        folio = f"F-{request[:8]}"
        return AttemptResult.model_validate(
            {
                "outcome": outcome,
                "reason": "PermitIssued",
                "folio": folio,
                "artifacts": permit_artifacts(request, folio),
                "timings": SUCCESS_TIMINGS,
            }
        )
    if outcome == "retryable":
        return AttemptResult(
            outcome="retryable",
            reason="PortalTimeout",
            message="Timeout 30000ms exceeded",
            timings=TIMEOUT_TIMINGS,
        )
    if outcome == "changed":  # what browser-runner/permisos_runner/pages.py reports
        return AttemptResult(
            outcome="retryable",
            reason="PortalChanged",
            message="La página «Datos del vehículo» ya no tiene #placas",
            timings=CHANGED_TIMINGS,
        )
    return AttemptResult(
        outcome="permanent",
        reason="PortalRejected",
        message="Las placas ya cuentan con un permiso vigente",
        timings=REJECTED_TIMINGS,
    )


@dataclass
class Prometheus:
    url: str
    http: httpx.AsyncClient

    async def query(self, expr: str) -> list[dict[str, Any]]:
        r = await self.http.get(f"{self.url}/api/v1/query", params={"query": expr})
        body = r.json()
        assert body["status"] == "success", f"{expr}: {body}"
        assert body["data"]["resultType"] == "vector", expr
        found: list[dict[str, Any]] = body["data"]["result"]
        return found

    async def holds(self, selector: str, at_least: int) -> None:
        """Waits until a scrape has brought the counter to `at_least`. Events wait for it one
        by one: a labelled series first seen already grown would hide its increase from rate()."""

        async def probe() -> bool:
            return bool(await self.query(f"sum({selector}) >= {at_least}"))

        await until(probe, f"{selector} >= {at_least} in Prometheus")


async def play_runners(
    platform: Platform, prometheus: Prometheus, scripts: dict[str, list[str]]
) -> None:
    """Plays each request's runner pods as scripted per attempt (`hold` = start, never end),
    until every script is spent."""
    handled: set[str] = set()
    finished: Tally[tuple[str, str]] = Tally()
    remaining = sum(len(script) for script in scripts.values())
    deadline = time.monotonic() + 90
    while len(handled) < remaining:
        assert time.monotonic() < deadline, f"runner Jobs handled: {sorted(handled)}"
        for job in await platform.jobs.jobs():
            name = job["metadata"]["name"]
            labels = job["metadata"]["labels"]
            script = scripts.get(labels.get(LABEL_REQUEST, ""))  # a pool's probe has none
            if name in handled or script is None:
                continue
            attempt = int(labels[LABEL_ATTEMPT])
            assert attempt <= len(script), f"{name}: unexpected attempt"
            outcome = script[attempt - 1]
            await platform.jobs.start(name)
            if outcome != "hold":
                attempt_result = result(labels[LABEL_REQUEST], outcome)
                await platform.jobs.finish(
                    name, attempt_result.to_message(), attempt_result.exit_code
                )
                key = (attempt_result.outcome, attempt_result.reason)
                finished[key] += 1
                await prometheus.holds(
                    f'permisos_attempts_total{{outcome="{key[0]}",reason="{key[1]}"}}',
                    finished[key],
                )
            handled.add(name)
        await asyncio.sleep(0.2)


async def phase(platform: Platform, name: str) -> str | None:
    body = await platform.ns.get("permitrequests", name)
    if body is None:
        return None  # not dispatched yet
    found = (body.get("status") or {}).get("phase")
    return str(found) if found else None


async def reaches(platform: Platform, name: str, expected: str | None = None) -> None:
    """Waits for the PermitRequest to exist (and to reach `expected`)."""

    async def probe() -> bool:
        now = await phase(platform, name)
        return now is not None and (expected is None or now == expected)

    try:
        await until(probe, f"PermitRequest {name} {expected or 'created'}", timeout=60)
    except AssertionError as error:
        # What a flaky run needs to be read: Stripe's deliveries and the API's own words.
        deliveries = [
            (d["event_type"], d["attempt"], d["outcome"], d["status"] or d["error"])
            for d in platform.sim.deliveries()
        ]
        raise AssertionError(
            f"{error}\nwebhook deliveries: {deliveries}\n{platform.processes['api'].logs()}"
        ) from None


async def do_the_work(platform: Platform, prometheus: Prometheus) -> list[str]:
    """Does the work; returns the applications' ids."""
    async with httpx.AsyncClient(base_url=platform.api, timeout=30) as http:
        auth = await applicant(http, platform)
        await platform.ns.create("runnerpools", runner_pool(replicas=2, retryPolicy=FAST_RETRIES))
        await platform.ns.create(
            "runnerpools",
            runner_pool(
                CHANGED_POOL,
                replicas=2,
                retryPolicy=FAST_RETRIES,
                portal={"circuitBreaker": CHANGED_BREAKER},
            ),
        )
        await platform.ns.create(
            "permitrequests", permit_request(CHANGED_REQUEST, pool=CHANGED_POOL)
        )

        retried = await new_application(http, auth, "JKL-4821")
        r = await pay(http, auth, retried, method="card", payment_method="pm_card_visa")
        assert r.status_code == 201, r.text

        rejected = await new_application(http, auth, "JKL-4822")
        r = await pay(http, auth, rejected, method="card", payment_method="pm_card_chargeDeclined")
        assert r.status_code == 402, r.text
        r = await pay(http, auth, rejected, method="card", payment_method="pm_card_visa")
        assert r.status_code == 201, r.text

        oxxo = await new_application(http, auth, "JKL-4823")
        r = await pay(http, auth, oxxo, method="oxxo")
        assert r.status_code == 201, r.text
        platform.sim.pay_oxxo(r.json()["intent_id"])

        held = await new_application(http, auth, "JKL-4824")
        r = await pay(http, auth, held, method="card", payment_method="pm_card_visa")
        assert r.status_code == 201, r.text

        # A forged webhook, twice (someone probing the endpoint).
        for _ in range(2):
            r = await http.post(
                "/v1/webhooks/stripe",
                content=b'{"id": "evt_forged", "type": "payment_intent.succeeded"}',
                headers={"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"},
            )
            assert r.status_code == 400, r.text

        # The dispatcher turns each paid application into a PermitRequest; the runners play.
        for name in (retried, rejected, oxxo, held):
            await reaches(platform, name)
        await play_runners(
            platform,
            prometheus,
            {
                retried: ["retryable", "retryable", "succeeded"],
                rejected: ["permanent"],
                oxxo: ["succeeded"],
                held: ["hold"],
                CHANGED_REQUEST: ["changed"],
            },
        )
        for name, final in ((retried, "Succeeded"), (rejected, "Failed"), (oxxo, "Succeeded")):
            await reaches(platform, name, final)

        # The mirror tells the database, the API tells the applicants.
        async def notified() -> bool:
            text = (await http.get("/metrics")).text
            return (
                'permisos_permits_total{outcome="issued"} 2.0' in text
                and 'permisos_permits_total{outcome="failed"} 1.0' in text
            )

        await until(notified, "permit notices", timeout=30)

        # Stripe unreachable: the API answers 502, twice.
        await platform.sim.stop()
        unpaid = await new_application(http, auth, "JKL-4825")
        for n in (1, 2):
            r = await pay(http, auth, unpaid, method="card", payment_method="pm_card_visa")
            assert r.status_code == 502, r.text
            await prometheus.holds('permisos_http_requests_total{status="502"}', n)
    return [retried, rejected, oxxo, held, unpaid]


def condition(status: JSON, kind: str) -> JSON | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)


async def the_portal_changed(platform: Platform, prometheus: Prometheus) -> None:
    """One attempt met a page the runner cannot read: its pool's circuit is open, the request
    waits (not Failed, not charged another attempt), and the alert fires."""

    async def pool_open() -> JSON | None:
        pool = await platform.ns.get("runnerpools", CHANGED_POOL)
        status: JSON = (pool or {}).get("status") or {}
        available = condition(status, "PortalAvailable")
        opened = (status.get("circuit") or {}).get("state") == "Open"
        return status if opened and available and available["reason"] == "PortalChanged" else None

    pool = await until(pool_open, f"pool {CHANGED_POOL}'s circuit open for PortalChanged")
    assert pool["circuit"]["reason"] == "PortalChanged", pool["circuit"]
    assert pool["circuit"]["openedAt"] and pool["circuit"]["nextProbeAt"], pool["circuit"]
    available = condition(pool, "PortalAvailable")
    assert available is not None and available["status"] == "False", available

    async def waiting() -> JSON | None:
        body = await platform.ns.get("permitrequests", CHANGED_REQUEST)
        status: JSON = (body or {}).get("status") or {}
        admitted = condition(status, "Admitted")
        return status if admitted and admitted["reason"] == "PortalChanged" else None

    request = await until(waiting, f"{CHANGED_REQUEST} waiting for the portal (PortalChanged)")
    assert request["phase"] == "Queued", request
    assert request["attempts"] == 1 and request["lastAttempt"]["reason"] == "PortalChanged"
    admitted = condition(request, "Admitted")
    assert admitted is not None and admitted["status"] == "False", admitted

    # The rule's `for` is 0 and Prometheus evaluates every second: firing within seconds.
    async def firing() -> list[dict[str, Any]]:
        return await prometheus.query(
            'ALERTS{alertname="PermisosPortalChanged",alertstate="firing"}'
        )

    alerts = await until(firing, "PermisosPortalChanged firing", timeout=20)
    assert labels(alerts, "namespace", "severity") == {(NAMESPACE, "critical")}, alerts
    # The circuit's own alert waits its 15 minutes, for this pool only.
    unavailable = await prometheus.query('ALERTS{alertname="PermisosPortalUnavailable"}')
    assert labels(unavailable, "pool", "alertstate") == {(CHANGED_POOL, "pending")}, unavailable

    # An open circuit admits nothing: the request's retry (its backoff is a second) never ran.
    attempts = sorted(
        job["metadata"]["name"]
        for job in await platform.jobs.jobs()
        if job["metadata"]["labels"].get(LABEL_REQUEST) == CHANGED_REQUEST
    )
    assert attempts == [f"{CHANGED_REQUEST}-a1"], attempts


# --- what Prometheus answers ---------------------------------------------------------------


def has_data(series: list[dict[str, Any]]) -> bool:
    """At least one series with a number (a quantile of nothing observed is NaN)."""
    return any(math.isfinite(float(s["value"][1])) for s in series)


def values(series: list[dict[str, Any]]) -> list[float]:
    return [float(s["value"][1]) for s in series]


def labels(series: list[dict[str, Any]], *names: str) -> set[tuple[str, ...]]:
    return {tuple(s["metric"].get(n, "") for n in names) for s in series}


def missing(answers: dict[Query, list[dict[str, Any]]]) -> list[str]:
    """Panels without data, and what the work must visibly have left in them."""
    problems = [
        f"no data: {q.panel} [{q.ref}]: {q.expr}" for q, a in answers.items() if not has_data(a)
    ]
    by_title = {(q.panel, q.ref): a for q, a in answers.items()}

    def expect(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    attempts = labels(by_title["Attempts by outcome and reason", "A"], "outcome", "reason")
    expect(
        attempts
        >= {
            ("succeeded", "PermitIssued"),
            ("retryable", "PortalTimeout"),
            ("permanent", "PortalRejected"),
        },
        f"attempts: {attempts}",
    )
    steps = {
        s["metric"]["step"]
        for s in by_title["Portal step durations", "A"]
        if math.isfinite(float(s["value"][1]))
    }
    expect({"login", "processing", "download", "total"} <= steps, f"portal steps: {steps}")
    payments = labels(by_title["Payments by method and outcome", "A"], "method", "outcome")
    expect(
        payments >= {("card", "declined"), ("card", "succeeded"), ("oxxo", "succeeded")},
        f"payments: {payments}",
    )
    errors = labels(by_title["API errors by route", "A"], "route", "status")
    expect(("/v1/applications/{application_id}/payments", "502") in errors, f"errors: {errors}")
    finished = labels(by_title["PermitRequests finished", "A"], "phase")
    expect({("Succeeded",), ("Failed",)} <= finished, f"finished: {finished}")
    for key, what in (
        (("Stripe webhooks", "B"), "the forged webhooks"),
        (("API error ratio", "A"), "the 502s"),
        (("Runner failure ratio", "A"), "the second timeout"),
        (("Oldest unfinished permit", "A"), "the held request"),
        (("Payment to permit, p95 (1 h)", "A"), "the issued permits"),
    ):
        seen = values(by_title[key])
        expect(bool(seen) and seen[0] > 0, f"{key}: {seen}, expected above 0 ({what})")
    leaders = values(by_title["Active operator replicas", "A"])
    expect(leaders == [1], f"active operator replicas: {leaders}")
    gates = labels(by_title["Portal gate by pool", "A"], "pool", "reason")
    expect(
        {("default", "PortalHealthy"), (CHANGED_POOL, "PortalChanged")} <= gates,
        f"portal gates: {gates}",
    )
    circuits = {
        s["metric"]["pool"]: float(s["value"][1])
        for s in by_title["Portal circuit breaker by pool", "A"]
    }
    expect(circuits == {"default": 0, CHANGED_POOL: 2}, f"circuits (2 is Open): {circuits}")
    probes = labels(by_title["Portal probes by outcome", "A"], "outcome")
    expect(probes == {("healthy",), ("unavailable",), ("changed",)}, f"probes: {probes}")
    failing = labels(by_title["Attempts failing at the portal", "A"], "reason")
    expect({("PortalChanged",), ("PortalTimeout",)} <= failing, f"failing: {failing}")
    for ref in ("A", "B", "C"):  # p50, p95, mean: the issued permits and the rejected one
        costs = by_title["Cost per permit: runner seconds", ref]
        phases = {s["metric"]["phase"] for s in costs if math.isfinite(float(s["value"][1]))}
        expect({"Succeeded", "Failed"} <= phases, f"cost per permit [{ref}]: {phases}")
    return problems


async def test_every_panel_returns_data_and_the_changed_portal_alert_fires(
    tmp_path: Path, platform: Platform
) -> None:
    url, process = start_prometheus(tmp_path, platform)
    async with httpx.AsyncClient(timeout=10) as http:
        prometheus = Prometheus(url, http)
        await started(process, lambda: _ok(http.get(f"{url}/-/ready")))

        async def both_scraped() -> bool:
            return len(await prometheus.query(f'up{{namespace="{NAMESPACE}"}} == 1')) == 2

        await until(both_scraped, "both targets up", timeout=20)

        applications = await do_the_work(platform, prometheus)
        await the_portal_changed(platform, prometheus)

        queries = dashboard_queries(json.loads(DASHBOARD.read_text()))
        answers: dict[Query, list[dict[str, Any]]] = {}
        # Rules evaluate every second and rate() needs two scrapes: the last events reach the
        # panels within seconds, so ask until everything is there (or the time is up).
        deadline = time.monotonic() + 30
        while True:
            for q in queries:
                answers[q] = await prometheus.query(q.concrete(NAMESPACE))
            problems = missing(answers)
            if not problems or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
        assert not problems, "\n".join(problems)

        # Every rule evaluates cleanly against the live series, and every name the rules and
        # the dashboard select is a series this Prometheus holds.
        r = await http.get(f"{url}/api/v1/rules")
        evaluated = [rule for g in r.json()["data"]["groups"] for rule in g["rules"]]
        assert len(evaluated) == len(rule_list())
        broken = [(rule["name"], rule.get("lastError")) for rule in evaluated]
        assert [b for b in broken if b[1]] == []
        r = await http.get(f"{url}/api/v1/label/__name__/values")
        held = set(r.json()["data"])
        wanted = set().union(*(metric_names(q.expr) for q in queries))
        wanted |= set().union(*(metric_names(rule["expr"]) for rule in rule_list()))
        assert wanted <= held, sorted(wanted - held)
        assert recorded_names() <= held

        # No label carries a person or an id (shared/DESIGN.md: low-cardinality labels only).
        r = await http.get(
            f"{url}/api/v1/series", params={"match[]": f'{{namespace="{NAMESPACE}"}}'}
        )
        every_label = json.dumps(r.json()["data"], ensure_ascii=False).lower()
        personal = [APPLICATION[k] for k in ("first_name", "last_name", "curp", "email", "phone")]
        for value in [*personal, "@example.com", *applications, CHANGED_REQUEST]:
            assert str(value).lower() not in every_label, value
