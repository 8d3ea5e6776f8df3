"""The whole platform on this machine, driven through the public HTTP API only: the API, the
operator and the runners are the Helm release of `charts/permisos`, started only by Helm, the
real controllers and the node agent.

Ten applicants at once: card and OXXO payments, two whose portal confirmations fail with injected
503s and are retried, one the portal rejects for good. Every accepted payment must end as a permit
(three PDFs in S3 matching the status' checksums) or as a failure whose reason the applicant, the
admin and `kubectl describe` all see; the database and the PermitRequests agree; no personal data
leaks into resources, Events, logs or metrics. A second test runs the `make run` demo itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from sqlalchemy import create_engine, make_url, text

from permisos.kube import Kube
from permisos_sandbox.node.config import DEFAULT_RUNTIME_ROOT, runtime_dir
from permisos_sandbox.platform import Platform, PlatformConfig, release, stack
from permisos_sandbox.platform.applicant import PASSWORD as APPLICANT_PASSWORD
from permisos_sandbox.platform.applicant import Applicant
from permisos_sandbox.platform.demo import DEMO_APPLICATION, run_demo
from permisos_sandbox.platform.kubernetes import NODE_NAME
from permisos_sandbox.platform.people import fictional_person
from permisos_sandbox.platform.release import helm
from tests.cluster import eventually
from tests.cluster import kubectl as cluster_kubectl
from tests.databases import fresh_database
from tests.namespaces import Namespace

REJECTED_PLATES = "AAA0001"  # the portal simulator's plates that already hold a permit
PORTAL_REJECTION = "Las placas ya cuentan con un permiso vigente"
RUN = secrets.token_hex(3)  # emails differ from any earlier run's
ADMIN_PASSWORD = "Administradora-segura-42"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_database("permisos_e2e", migrate=False) as url:
        yield url


@pytest.fixture
async def platform(tmp_path: Path, postgres_url: str) -> AsyncIterator[Platform]:
    config = PlatformConfig(
        state_dir=tmp_path,
        database_url=with_password(postgres_url),
        runners=3,
        portal_processing_seconds=0.5,
        retry_backoff_seconds=1,
    ).on_free_ports()
    async with Platform(config) as running:
        yield running


# The tests' PostgreSQL trusts loopback and never asks for it: a password in the URL travels to
# the Secret and the pods as a real one would (a server of PERMISOS_TEST_DATABASE_URL keeps its).
DATABASE_PASSWORD = f"db-{secrets.token_hex(8)}"
# A JSON Web Token, as every ServiceAccount token is: header.payload.signature.
JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}")


def with_password(url: str) -> str:
    parsed = make_url(url)
    return (parsed if parsed.password else parsed.set(password=DATABASE_PASSWORD)).render_as_string(
        hide_password=False
    )


async def one_applicant(p: Platform, i: int, plates: str, method: str) -> Applicant:
    data = {**fictional_person(i, f"e2e-{RUN}"), "plates": plates}
    applicant = Applicant(p.api_url, p.outbox, data["email"], data)
    await applicant.register_and_verify()
    await applicant.login()
    await applicant.apply()
    if method == "card":
        created = await applicant.pay_card()
        assert created["status"] == "succeeded", created
    else:
        created = await applicant.pay_oxxo()
        assert created["voucher"]["number"], created
        await applicant.pay_voucher_at_store(p.payments_url)
    return applicant


async def test_ten_applicants_end_to_end(platform: Platform) -> None:
    p = platform
    # The release as an engineer checks it: deployed, the API 1/1 and the operator 2/2 READY.
    status = json.loads(await helm_out(p, "status", "permisos", "-o", "json"))
    assert status["info"]["status"] == "deployed"
    ready = {
        d["metadata"]["name"]: (d["status"].get("readyReplicas"), d["spec"]["replicas"])
        for d in json.loads(await kubectl(p, "get", "deploy", "-o", "json"))["items"]
    }
    assert ready == {"permisos-api": (1, 1), "permisos-operator": (2, 2)}
    plates = [f"E2E{i:04d}" for i in range(10)]
    methods = ["card", "oxxo"] * 5
    plates[9] = REJECTED_PLATES
    async with httpx.AsyncClient() as http:
        # Applicants 7 and 8: their first confirmations at the portal fail (503) and are retried.
        r = await http.put(
            f"{p.portal_url}/__control/config",
            json={"fail_plates": {plates[7]: 1, plates[8]: 2}, "error_status": 503},
        )
        assert r.status_code == 200, r.text

    applicants = await asyncio.gather(
        *(one_applicant(p, i, plates[i], methods[i]) for i in range(10))
    )
    try:
        finals = await asyncio.gather(*(a.follow(within=240) for a in applicants))
        await check_outcomes(p, applicants, finals)
        await check_storage_and_resources(p, applicants, finals)
        await check_database_agrees(p, applicants)
        said = await what_the_platform_said(p)
        check_no_personal_data(applicants, said)
        await check_no_secrets(p, applicants, said)
        await check_runner_steps_reach_the_metrics(p)
    finally:
        for a in applicants:
            await a.close()


async def check_outcomes(
    p: Platform, applicants: list[Applicant], finals: list[dict[str, Any]]
) -> None:
    for i, final in enumerate(finals[:9]):
        assert final["status"] == "permit_ready", (i, final)
        assert final["permit_phase"] == "Succeeded"
    # Why each attempt that did not succeed failed, as the applicant's own history tells it: the
    # retried ones show their injected 503s, and an unexpected retry says what caused it.
    retries = {
        i: [
            (h["attempt"], h["reason"], h["message"])
            for h in await applicants[i].history()
            if h["phase"] == "Retrying"
        ]
        for i in range(9)
    }
    assert [f["permit_attempts"] for f in finals[:9]] == [1] * 7 + [2, 3], retries
    assert [len(retries[i]) for i in range(9)] == [0] * 7 + [1, 2], retries

    rejected = finals[9]
    assert rejected["status"] == "permit_failed"
    assert rejected["permit_reason"] == "PortalRejected"
    assert PORTAL_REJECTION in rejected["permit_message"]

    await p.create_admin("admin-e2e@example.com", ADMIN_PASSWORD)
    async with httpx.AsyncClient(base_url=p.api_url) as http:
        r = await http.post(
            "/v1/auth/login",
            json={
                "email": "admin-e2e@example.com",
                "password": ADMIN_PASSWORD,
                "issue_bearer": True,
            },
        )
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        r = await http.get(f"/v1/admin/applications/{applicants[9].application_id}", headers=auth)
        assert r.status_code == 200, r.text
        detail = r.json()
        assert detail["application"]["permit_reason"] == "PortalRejected"
        assert PORTAL_REJECTION in detail["application"]["permit_message"]
        assert detail["permit_history"][-1]["phase"] == "Failed"

    kube = await platform_namespace(p)
    try:
        name = detail["application"]["permit_request"]
        pr = await kube.get("permitrequests", name)
        assert pr is not None
        # What `kubectl describe permitrequest` shows: the status, its conditions, the Events.
        assert pr["status"]["phase"] == "Failed"
        conditions = {c["type"]: c for c in pr["status"]["conditions"]}
        assert any(PORTAL_REJECTION in (c.get("message") or "") for c in conditions.values())
        events = await kube.events_for(name)
        assert any(PORTAL_REJECTION in (e.get("message") or "") for e in events), events
    finally:
        await kube.kube.close()
    # And as an engineer sees it, with kubectl against the platform's kubeconfig.
    described = await kubectl(p, "describe", "permitrequest", name)
    assert "Failed" in described and PORTAL_REJECTION in described, described
    listed = await kubectl(p, "get", "permitrequests")
    assert listed.count("Succeeded") == 9 and listed.count("Failed") == 1, listed
    await kubectl(p, "scale", "runnerpool/default", "--replicas=4")
    assert "4" in await kubectl(
        p, "get", "runnerpool", "default", "-o", "jsonpath={.spec.replicas}"
    )


async def check_storage_and_resources(
    p: Platform, applicants: list[Applicant], finals: list[dict[str, Any]]
) -> None:
    assert p.s3 is not None
    s3 = p.s3.client()
    kube = await platform_namespace(p)
    try:
        for applicant in applicants[:9]:
            listing = await applicant.permits()
            prs = [
                pr
                for pr in await kube.objects("permitrequests")
                if pr["spec"]["applicationId"] == applicant.application_id
            ]
            assert len(prs) == 1
            status = prs[0]["status"]
            assert status["phase"] == "Succeeded"
            assert status["result"]["folio"] == listing["folio"]
            # What it cost: the pod seconds the node agent's runner pods report, every attempt.
            assert status["result"]["runnerSeconds"] == status["runnerSeconds"] >= 1
            by_kind = {a["kind"]: a for a in status["result"]["artifacts"]}
            assert sorted(by_kind) == ["certificate", "permit", "placard"]
            for kind, artifact in by_kind.items():
                body = s3.get_object(Bucket=p.config.bucket, Key=artifact["key"])["Body"].read()
                assert hashlib.sha256(body).hexdigest() == artifact["sha256"]
                assert len(body) == artifact["bytes"]
                assert len(PdfReader(io.BytesIO(body)).pages) >= 1, kind
            listed = {item["kind"]: item["sha256"] for item in listing["items"]}
            assert listed == {k: a["sha256"] for k, a in by_kind.items()}
        # The applicant's own download goes through the API's presigned URL.
        paths = await applicants[0].download(p.config.state_dir / "downloads")
        assert len(paths) == 3 and all(path.read_bytes().startswith(b"%PDF-") for path in paths)
    finally:
        await kube.kube.close()


async def check_database_agrees(p: Platform, applicants: list[Applicant]) -> None:
    kube = await platform_namespace(p)
    try:
        prs = {pr["metadata"]["name"]: pr for pr in await kube.objects("permitrequests")}
    finally:
        await kube.kube.close()
    engine = create_engine(p.database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT a.id, a.status, p.request_name AS permit_request, "
                    "p.phase AS permit_phase, p.folio FROM applications a JOIN permits p "
                    "ON p.application_id = a.id AND p.retry = a.permit_retries"
                )
            ).all()
    finally:
        engine.dispose()
    ids = {a.application_id for a in applicants}
    rows = [r for r in rows if str(r.id) in ids]
    assert len(rows) == 10
    for row in rows:
        pr = prs[row.permit_request]
        assert pr["spec"]["applicationId"] == str(row.id)
        assert pr["status"]["phase"] == row.permit_phase
        assert (pr["status"].get("result") or {}).get("folio") == row.folio
        assert row.status == (
            "permit_ready" if row.permit_phase == "Succeeded" else "permit_failed"
        )


async def what_the_platform_said(p: Platform) -> dict[str, str]:
    """Everything anyone but the database and the Secrets' readers sees, by where: the
    namespace's objects whole (PermitRequests and their status, RunnerPools, Events, Jobs, pods,
    Deployments, CronJobs, ConfigMaps), this machine's servers' logs and every container's output
    the node agent kept (one file per start: the API, the operators, the migration, the CronJobs,
    the runners), the API's and the operators' /metrics, and error answers of the API."""
    said: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=p.api_url) as http:
        # Errors first (their log lines are read below), credentials in what was refused.
        for what, r in (
            ("wrong password", await http.post("/v1/auth/login", json=KEY_AS_PASSWORD)),
            ("forged session", await http.get("/v1/auth/session", headers=BEARER_OF_SECRET)),
            ("unsigned webhook", await http.post("/v1/webhooks/stripe", content=b"{}")),
            (
                "forged webhook",
                await http.post("/v1/webhooks/stripe", headers=FORGED, content="{}"),
            ),
        ):
            assert r.status_code >= 400, (what, r.text)
            said[f"API answer, {what}"] = f"{r.headers} {r.text}"
    kube = await platform_namespace(p)
    try:
        for resource in (
            *("permitrequests", "runnerpools", "events", "jobs", "pods"),
            *("deployments", "cronjobs", "configmaps"),
        ):
            for body in await kube.objects(resource):
                said[f"{resource}/{body['metadata']['name']}"] = json.dumps(body)
    finally:
        await kube.kube.close()
    for log in [*p.logs.rglob("*.log"), *p.container_logs.rglob("*.log")]:
        said[str(log)] = log.read_text(errors="replace")
    runner_logs = list(p.container_logs.glob("*/runner/*.log"))
    # Every attempt's pod output was read (13 attempts: ten requests, three retries).
    assert len([log for log in runner_logs if log.stat().st_size]) >= 13, runner_logs
    for pods, container in (("permisos-api-", "api"), ("permisos-operator-", "operator")):
        logs = list(p.container_logs.glob(f"*_{pods}*/{container}/*.log"))
        assert logs and all(log.stat().st_size for log in logs), (container, logs)
    for part in ("portal", "payments"):
        assert (p.logs / f"{part}.log").stat().st_size, part
    async with httpx.AsyncClient(base_url=p.api_url) as http:
        for url in await p.operator_metrics_urls():
            said[url] = (await http.get(url)).text
        said["API metrics"] = (await http.get("/metrics")).text
    return said


# A credential sent where it does not belong: the answers must not say it back.
KEY_AS_PASSWORD = {"email": "nadie@example.com", "password": stack.STRIPE_KEY}
BEARER_OF_SECRET = {"Authorization": f"Bearer {stack.WEBHOOK_SECRET}"}
FORGED = {"Stripe-Signature": f"t=1,v1={stack.STRIPE_KEY}"}


def check_no_personal_data(applicants: list[Applicant], said: dict[str, str]) -> None:
    needles: set[str] = set()
    for a in applicants:
        data = a.application
        needles |= {data["first_name"], data["last_name"], data["maternal_surname"]}
        needles |= {data["curp"], data["email"], data["phone"]}
    leaks = [(where, n) for where, text in said.items() for n in needles if n in text]
    assert not leaks, leaks


async def check_no_secrets(p: Platform, applicants: list[Applicant], said: dict[str, str]) -> None:
    """The credentials of the run: the constants the platform's Secrets were made of, the ones
    it made up (the signing secret), the database password, the ServiceAccount tokens the node
    agent projected into the API's and operators' pods, the applicants' session tokens and
    passwords. Any JSON Web Token at all is a leak too (a ServiceAccount's, whoever it was)."""
    kube = await platform_namespace(p)
    try:
        signing = await kube.get("secrets", "permisos-signing")
    finally:
        await kube.kube.close()
    assert signing is not None
    pods = runtime_dir(DEFAULT_RUNTIME_ROOT, NODE_NAME, p.config.state_dir / "node") / "pods"
    tokens = [path.read_text().strip() for path in pods.glob("*/volumes/*/token")]
    assert len(tokens) >= 3 and all(JWT.fullmatch(t) for t in tokens), pods  # API, 2 operators
    database = make_url(p.database_url).password
    assert database
    credentials = {
        "Stripe secret key": stack.STRIPE_KEY,
        "webhook secret": stack.WEBHOOK_SECRET,
        "portal password": stack.PORTAL_ACCOUNT[1],
        "signing secret": base64.b64decode(signing["data"]["secret"]).decode(),
        "database password": str(database),
        "applicants' password": APPLICANT_PASSWORD,
        "admin's password": ADMIN_PASSWORD,
        **{f"ServiceAccount token {n}": token for n, token in enumerate(tokens)},
        **{f"session of applicant {n}": a.token for n, a in enumerate(applicants)},
    }
    leaks = [
        (name, where)
        for name, secret in credentials.items()
        for where, text in said.items()
        if secret in text
    ]
    leaks += [("a JSON Web Token", where) for where, text in said.items() if JWT.search(text)]
    # The refusals above were logged, and those logs were among what was searched.
    assert any("webhook refused: mismatch" in text for text in said.values())
    print(f"\n{len(credentials)} credentials looked for in {len(said)} places")
    assert not leaks, leaks


async def helm_out(p: Platform, *args: str) -> str:
    return (await helm(p.kubeconfig, *args, "-n", p.config.namespace))[1]


async def kubectl(p: Platform, *args: str) -> str:
    return (await cluster_kubectl(p.kubeconfig, "-n", p.config.namespace, *args))[1]


async def check_runner_steps_reach_the_metrics(p: Platform) -> None:
    """The real runner's step timings, through the termination message, become the operator's
    portal-step histogram (the dashboard's "portal step durations"), counted by the replica
    that was active (the standby counts nothing)."""
    counts: dict[str, float] = {}
    async with httpx.AsyncClient() as http:
        for url in await p.operator_metrics_urls():
            for line in (await http.get(url)).text.splitlines():
                if line.startswith("permisos_portal_step_duration_seconds_count{"):
                    labels, value = line.rsplit(" ", 1)
                    counts[labels] = counts.get(labels, 0) + float(value)
    for step in ("login", "lookup", "applicant", "vehicle", "confirm", "processing", "download"):
        key = f'permisos_portal_step_duration_seconds_count{{outcome="succeeded",step="{step}"}}'
        assert counts.get(key) == 9, (step, counts)


async def platform_namespace(p: Platform) -> Namespace:
    return Namespace(await Kube.from_kubeconfig(p.kubeconfig), p.config.namespace)


async def test_the_make_run_demo_delivers_a_permit_on_its_own_postgresql(tmp_path: Path) -> None:
    """`make run`'s own path: a PostgreSQL server of the platform's, the demo applicant, three
    PDFs written to disk."""
    config = PlatformConfig(state_dir=tmp_path, runners=1).on_free_ports()
    lines: list[str] = []
    async with Platform(config) as p:
        assert p.database_url.startswith("postgresql+psycopg://")
        paths = await run_demo(p, tmp_path / "permits", say=lines.append, within=180)
    assert sorted(path.name.split("-")[0] for path in paths) == ["certificate", "permit", "placard"]
    assert all(path.read_bytes().startswith(b"%PDF-") for path in paths)
    shown = "\n".join(lines)
    # A free runner: the request starts at once (it is Queued only while the pool is full).
    for phase in ("Running", "Succeeded"):
        assert phase in shown, shown
    # What `make run` prints names no person: the demo applicant's data stays in the API.
    personal = ("first_name", "last_name", "maternal_surname", "curp", "phone")
    for value in (*(DEMO_APPLICATION[k] for k in personal), "@example.com"):
        assert value not in shown, value


async def test_a_helm_upgrade_in_the_middle_of_a_permit(tmp_path: Path, postgres_url: str) -> None:
    """`helm upgrade --reuse-values` with changed log levels rolls the API and the operator
    Deployments (new pods, as on a cluster) while a runner attempt is under way, and with a
    changed pool size updates the RunnerPool; the permit still ends ready, from one Job."""
    config = PlatformConfig(
        state_dir=tmp_path,
        database_url=postgres_url,
        runners=1,
        portal_processing_seconds=8,
    ).on_free_ports()
    async with Platform(config) as p:
        data = {**fictional_person(0, f"upgrade-{RUN}"), "plates": "UPG0001"}
        applicant = Applicant(p.api_url, p.outbox, data["email"], data)
        try:
            await applicant.register_and_verify()
            await applicant.login()
            await applicant.apply()
            assert (await applicant.pay_card())["status"] == "succeeded"

            async def running() -> dict[str, Any] | None:
                app = await applicant.get()
                return app if app["permit_phase"] == "Running" else None

            await eventually(running, timeout=60)
            before = await pod_names(p)
            await helm(
                p.kubeconfig,
                *("upgrade", "permisos", str(release.CHART), "-n", p.config.namespace),
                "--reuse-values",
                *("--set", "api.logLevel=DEBUG", "--set", "operator.logLevel=DEBUG"),
                *("--set", "runnerPool.replicas=3"),
            )
            ready = await release.wait_ready(p.kube, p.config.namespace, within=120)
            assert ready == {"permisos-api": "1/1", "permisos-operator": "2/2"}
            after = await pod_names(p)
            assert not (before & after), (before, after)  # every pod was replaced
            assert "3" in await kubectl(
                p, "get", "runnerpool", "default", "-o", "jsonpath={.spec.replicas}"
            )
            final = await applicant.follow(within=120)
            assert final["status"] == "permit_ready", final
            history = json.loads(await helm_out(p, "history", "permisos", "-o", "json"))
            assert [(h["revision"], h["status"]) for h in history] == [
                (1, "superseded"),
                (2, "deployed"),
            ]
            prs = json.loads(await kubectl(p, "get", "permitrequests", "-o", "json"))["items"]
            (pr,) = [r for r in prs if r["spec"]["applicationId"] == applicant.application_id]
            jobs = json.loads(await kubectl(p, "get", "jobs", "-o", "json"))["items"]
            attempts = [
                j["metadata"]["name"]
                for j in jobs
                if any(o["uid"] == pr["metadata"]["uid"] for o in j["metadata"]["ownerReferences"])
            ]
            assert len(attempts) == 1, attempts
        finally:
            await applicant.close()


async def pod_names(p: Platform) -> set[str]:
    """The release's API and operator pods that are running and not terminating."""
    found = json.loads(await kubectl(p, "get", "pods", "-o", "json"))["items"]
    return {
        pod["metadata"]["name"]
        for pod in found
        if pod["status"].get("phase") == "Running"
        and "deletionTimestamp" not in pod["metadata"]
        and pod["metadata"]["labels"].get("app.kubernetes.io/component") in ("api", "operator")
    }
