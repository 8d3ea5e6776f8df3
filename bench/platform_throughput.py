"""Platform benchmark: permits per hour end to end, and payment-to-permit latency, beside a floor.

    .venv/bin/python bench/platform_throughput.py [--runners 1,2,4] [--permits 12]
        [--latency-ms 50] [--processing-seconds 2] [--floor-walks 5] [--database-url URL]
        [--poll-seconds 0.5] [--timeout 600]

Prints figures; asserts nothing about them (issue #5). Two parts:

1. floor     the portal simulator alone (its own process, the same latency and processing time),
             walked by a minimal aiohttp client through the same pages and forms the runner walks
             (login, consulta, the three steps, confirm, the status page's polling until `listo`,
             three PDF downloads): no browser, no platform. The median of --floor-walks walks is
             t_portal, the portal's own time per permit. Floor for R runners: R * 3600 / t_portal
             permits per hour, and t_portal as the latency.
2. platform  for each pool size R: a fresh `Platform` (every part on loopback, the real
             Kubernetes control plane and the node agent, a RunnerPool of R replicas), N
             applicants who register, verify, log in and apply BEFORE the clock starts; then all
             pay by card at once (the moment the card payment call returns `succeeded` is that
             permit's "payment confirmed") and each is followed through the public API until
             `permit_ready`.
             Permits per hour = N / (last ready - first payment confirmed) * 3600; per permit,
             payment confirmed -> ready (p50, p95, min, max). The API's per-address sign-up
             limits are raised (every applicant comes from 127.0.0.1); a platform that fails to
             start (before any clock) is started once more, said aloud.

Also, per pool size and cheap to read: where a permit's time goes (a watch on PermitRequests and
pods notes when each stage began), the runner's own step timings (the operator's
`permisos_portal_step_duration_seconds`), and the CPU seconds each part used per permit.
Writes bench/results/platform_throughput.json; stops every process however it ends; a failed
permit is printed and makes the exit code 1 (the platform's logs are kept and their folder named).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import json
import math
import os
import platform as host
import re
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (  # the bench folder is not a package
    ROOT,
    BenchError,
    Children,
    free_port,
    percentile,
    wait_for,
)

from permisos.kube import Kube
from permisos_sandbox.platform import Platform, PlatformConfig
from permisos_sandbox.platform.applicant import (
    FINAL_STATUSES,
    ONE_ADDRESS_LIMITS,
    Applicant,
    Progress,
)
from permisos_sandbox.platform.people import fictional_person

RESULTS = ROOT / "bench" / "results"
NS = PlatformConfig().namespace
PORTAL_USER = ("operador", "secreto")  # the simulator's default account, as the platform's
LABEL_REQUEST = "permisosdigitales.mx/permitrequest"
RUNNER_STEPS: tuple[str, ...] = ("login", "lookup", "applicant", "vehicle", "confirm")
RUNNER_STEPS += ("processing", "download", "upload", "total")
# Stages of one permit, each the bench-clock moment its watch (or the API) first showed it.
STAGES = (
    ("paid", "created", "payment confirmed -> PermitRequest created (webhook, outbox)"),
    ("created", "Running", "created -> Job created (admission, queue wait for a runner)"),
    ("Running", "pod_running", "Job created -> runner process started (node agent)"),
    ("pod_running", "pod_done", "runner process (Python, Chromium, portal, S3, exit)"),
    ("pod_done", "Succeeded", "process ended -> PermitRequest Succeeded (operator)"),
    ("Succeeded", "ready", "Succeeded -> API shows permit_ready (mirror, polling)"),
)


# --- the floor: the portal simulator walked by plain HTTP -------------------------------------

# What the runner types into the portal's forms (the same fictional person as the demo).
PORTAL_APPLICANT = {
    "nombre": "Juana",
    "primer_apellido": "Gómez",
    "segundo_apellido": "Díaz",
    "curp": "GODE561231HDFRRN00",
    "correo": "juana.gomez@example.com",
    "telefono": "5512345678",
}
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
POLL = re.compile(r"setTimeout\(poll, (\d+)\)")
DOCUMENT = re.compile(r'<a class="documento" data-tipo="(\w+)" href="([^"]+)"')


@dataclass
class Walk:
    """One permit's whole flow at the portal: seconds and HTTP requests (redirects included)."""

    seconds: float
    requests: int
    steps: dict[str, float]  # split as the runner splits its own timings


class PortalWalker:
    """The pages the runner's page objects visit, in the same order, with nothing else: a GET
    for every navigation and redirect the browser follows, the lines XHR, the status page's own
    polling of estado.json at the interval its script uses, then the three documents."""

    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        self.base = base
        self.http = http
        self.requests = 0

    def _count(self, response: aiohttp.ClientResponse) -> None:
        self.requests += 1 + len(response.history)

    async def get(self, path: str, **params: str) -> tuple[str, str]:
        async with self.http.get(self.base + path, params=params or None) as response:
            self._count(response)
            return await self._page(response)

    async def post(self, path: str, form: dict[str, str]) -> tuple[str, str]:
        async with self.http.post(self.base + path, data=form) as response:
            self._count(response)
            return await self._page(response)

    async def _page(self, response: aiohttp.ClientResponse) -> tuple[str, str]:
        text = await response.text()
        if response.status != 200:
            raise BenchError(f"portal {response.method} {response.url.path}: {response.status}")
        return text, response.url.path

    async def json(self, path: str, **params: str) -> Any:
        async with self.http.get(self.base + path, params=params or None) as response:
            self._count(response)
            if response.status != 200:
                raise BenchError(f"portal GET {path}: {response.status}")
            return await response.json()

    async def walk(self, reference: str, plates: str) -> Walk:
        started = time.monotonic()
        self.requests = 0
        steps: dict[str, float] = {}
        mark = started

        def step(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            steps[name] = now - mark
            mark = now

        page, _ = await self.get("/login")
        user, password = PORTAL_USER
        form = {"usuario": user, "contrasena": password, "csrf_token": _csrf(page)}
        page, where = await self.post("/login", form)
        _expect_at(where, "/tramites")
        step("login")
        # Lookup first, as the runner does: consulta, then the search form submitted.
        page, _ = await self.get("/consulta")
        page, _ = await self.get("/consulta", csrf_token=_csrf(page), referencia=reference)
        if 'id="sin-resultados"' not in page:
            raise BenchError("portal: the lookup found an earlier submission")
        step("lookup")
        await self.get("/tramites")
        page, _ = await self.get("/tramites/nuevo/solicitante")
        form = {"referencia": reference, **PORTAL_APPLICANT, "csrf_token": _csrf(page)}
        page, where = await self.post("/tramites/nuevo/solicitante", form)
        _expect_at(where, "/tramites/nuevo/vehiculo")
        step("applicant")
        make = re.search(r'<option value="([^"]+)"[^>]*>Nissan</option>', page)
        if make is None:
            raise BenchError("portal: no Nissan in the makes")
        lines = await self.json("/catalogos/lineas", marca=make.group(1))
        line = next((x["clave"] for x in lines if x["nombre"].casefold() == "versa"), None)
        if line is None:
            raise BenchError("portal: no Versa in the lines")
        form = {
            "marca": make.group(1),
            "linea": line,
            "tipo_servicio": "particular",
            "ano_modelo": "2022",
            "placas": plates,
            "niv": "",
            "csrf_token": _csrf(page),
        }
        page, where = await self.post("/tramites/nuevo/vehiculo", form)
        _expect_at(where, "/tramites/nuevo/revision")
        step("vehicle")
        page, status_path = await self.post(
            "/tramites/nuevo/confirmar", {"csrf_token": _csrf(page)}
        )
        step("confirm")
        # The status page's script polls estado.json, then reloads the page once it changes.
        poll = POLL.search(page)
        while poll is not None:
            await asyncio.sleep(int(poll.group(1)) / 1000)
            state = await self.json(status_path + ".json")
            if state["estado"] != "procesando":
                page, _ = await self.get(status_path)
                break
        if 'data-estado="listo"' not in page:
            raise BenchError("portal: the submission did not end `listo`")
        documents = DOCUMENT.findall(page)
        if len(documents) != 3:
            raise BenchError(f"portal: {len(documents)} documents listed, expected 3")
        step("processing")
        for kind, href in documents:
            async with self.http.get(self.base + html.unescape(href)) as response:
                self._count(response)
                body = await response.read()
                if response.status != 200 or not body.startswith(b"%PDF-"):
                    raise BenchError(f"portal: document {kind} is not a PDF")
        step("download")
        steps["total"] = time.monotonic() - started
        return Walk(steps["total"], self.requests, steps)


def _csrf(page: str) -> str:
    found = CSRF.search(page)
    if found is None:
        raise BenchError("portal: a form without csrf_token")
    return html.unescape(found.group(1))


def _expect_at(path: str, wanted: str) -> None:
    if path != wanted:
        raise BenchError(f"portal: landed on {path}, expected {wanted} (a form error?)")


async def measure_floor(args: argparse.Namespace, logs: Path) -> list[Walk]:
    """The portal simulator in its own process, walked once to warm up, then --floor-walks
    times one after another."""
    children = Children()
    port = free_port()
    try:
        portal = children.start(
            "portal",
            [
                *(sys.executable, "-m", "permisos_sandbox.portal", "--host", "127.0.0.1"),
                *("--port", str(port), "--latency-ms", str(args.latency_ms)),
                *("--processing-seconds", str(args.processing_seconds)),
            ],
            logs / "floor-portal.log",
            env={"PERMISOS_PORTAL_USERS": ":".join(PORTAL_USER)},
        )
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as probe:

            async def healthy() -> bool:
                if not portal.alive():
                    raise BenchError(f"the portal exited; see {portal.log_path}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with probe.get(base + "/__control/health") as response:
                        return response.status == 200
                return False

            await wait_for("the portal simulator", healthy, 30)
        walks = []
        run = secrets.token_hex(2).upper()
        for i in range(args.floor_walks + 1):
            # A fresh session (cookie jar) per permit, as the runner's fresh browser context.
            jar = aiohttp.CookieJar(unsafe=True)  # unsafe: keep cookies of 127.0.0.1
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                walk = await PortalWalker(base, http).walk(f"floor-{run}-{i}", f"F{run}{i:02d}")
            if i > 0:  # the first one warms the simulator up
                walks.append(walk)
        return walks
    finally:
        children.stop_all()


# --- the platform run --------------------------------------------------------------------------


@dataclass
class Permit:
    """One applicant's permit as the bench saw it (bench-clock monotonic times)."""

    index: int
    applicant: Applicant
    paid: float | None = None
    ready: float | None = None
    attempts: int = 0
    failure: str | None = None


class ClusterClock:
    """Watches PermitRequests and pods on the platform's kube-apiserver and notes, per
    application, the moment its request and its first pod reached each stage. Only notes: it
    never writes."""

    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.marks: dict[str, dict[str, float]] = {}
        self.failed: str | None = None
        self._apps: dict[str, str] = {}  # PermitRequest name -> application id
        self._tasks: list[asyncio.Task[None]] = []
        self._kube: Kube | None = None

    async def start(self) -> None:
        self._kube = await Kube.from_kubeconfig(self.kubeconfig)
        watches: tuple[tuple[str, Callable[[dict[str, Any], float], None]], ...] = (
            (f"/apis/permisosdigitales.mx/v1alpha1/namespaces/{NS}/permitrequests", self._request),
            (f"/api/v1/namespaces/{NS}/pods", self._pod),
        )
        for path, note in watches:
            rv = await self._list(path, note)
            self._tasks.append(asyncio.create_task(self._watch(path, rv, note)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self._kube is not None:
            await self._kube.close()

    def _request(self, obj: dict[str, Any], at: float) -> None:
        name = str(obj["metadata"]["name"])
        app = str((obj.get("spec") or {}).get("applicationId") or name)
        self._apps[name] = app
        marks = self.marks.setdefault(app, {})
        marks.setdefault("created", at)
        phase = (obj.get("status") or {}).get("phase")
        if phase:
            marks.setdefault(str(phase), at)

    def _pod(self, obj: dict[str, Any], at: float) -> None:
        request = (obj["metadata"].get("labels") or {}).get(LABEL_REQUEST)
        if not request:
            return
        marks = self.marks.setdefault(self._apps.get(request, request), {})
        marks.setdefault("pod_created", at)
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Running":
            marks.setdefault("pod_running", at)
        elif phase in ("Succeeded", "Failed"):
            marks.setdefault("pod_running", at)
            marks.setdefault("pod_done", at)

    async def _list(self, path: str, note: Callable[[dict[str, Any], float], None]) -> str:
        assert self._kube is not None
        body = await self._kube.request("GET", path)
        now = time.monotonic()
        for item in body.get("items") or []:
            note(item, now)
        return str(body["metadata"]["resourceVersion"])

    async def _watch(
        self, path: str, rv: str, note: Callable[[dict[str, Any], float], None]
    ) -> None:
        assert self._kube is not None
        try:
            while True:
                async for kind, obj in self._kube.watch(path, resource_version=rv):
                    at = time.monotonic()
                    if kind == "ERROR":
                        rv = await self._list(path, note)  # 410 Gone: list again
                        break
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if kind in ("ADDED", "MODIFIED"):
                        note(obj, at)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.failed = f"{path}: {error!r}"


class CpuMeter:
    """CPU seconds used by each part between `start` and `stop`: the platform's processes (and
    what they started: the node agent's share includes the runner pods, Chromium included), the
    control plane's processes, and this process itself (the bench client)."""

    PARTS = (
        ("bin/kube-apiserver", "kube-apiserver"),
        ("bin/kube-controller-manager", "kube-controller-manager"),
        ("bin/kube-scheduler", "kube-scheduler"),
        ("bin/etcd", "etcd"),
        ("permisos_sandbox.node", "node agent (with the runner pods and Chromium)"),
        ("permisos_api", "API"),
        ("permisos_operator", "operator"),
        ("permisos_sandbox.portal", "portal simulator"),
        ("permisos_sandbox.payments", "payments simulator"),
        ("moto", "S3 (moto)"),
    )

    def __init__(self) -> None:
        self.before: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0
        self.machine_busy_pct = math.nan  # every process on the machine, ours or not
        self._began = 0.0
        self._machine: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def _machine_times() -> tuple[float, float]:
        t = psutil.cpu_times()
        idle = t.idle + getattr(t, "iowait", 0.0)
        return sum(t) - idle, sum(t)

    def _sample(self) -> dict[str, float]:
        me = psutil.Process()
        own = os.times()
        seconds = {
            "this process (the bench client)": own.user + own.system,
        }
        for child in me.children():
            with contextlib.suppress(psutil.Error):
                command = " ".join(child.cmdline())
                part = next((label for key, label in self.PARTS if key in command), None)
                if part is None:
                    continue
                total = 0.0
                for proc in [child, *child.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        t = proc.cpu_times()
                        total += t.user + t.system + t.children_user + t.children_system
                seconds[part] = seconds.get(part, 0.0) + total
        return seconds

    def start(self) -> None:
        self.before = self._sample()
        self._machine = self._machine_times()
        self._began = time.monotonic()

    def stop(self) -> None:
        self.wall = time.monotonic() - self._began
        busy, total = self._machine_times()
        if total > self._machine[1]:
            self.machine_busy_pct = 100 * (busy - self._machine[0]) / (total - self._machine[1])
        after = self._sample()
        self.used = {k: after[k] - self.before.get(k, 0.0) for k in after}


def step_means(metrics: str) -> dict[str, float]:
    """Mean seconds per runner step over succeeded attempts, from the operator's histogram."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    pattern = re.compile(r"^permisos_portal_step_duration_seconds_(sum|count)\{([^}]*)\} (\S+)$")
    for line in metrics.splitlines():
        found = pattern.match(line)
        if found is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found.group(2)))
        if labels.get("outcome") != "succeeded":
            continue
        target = sums if found.group(1) == "sum" else counts
        # Summed: the text may hold several replicas' metrics.
        target[labels["step"]] = target.get(labels["step"], 0.0) + float(found.group(3))
    return {step: sums[step] / counts[step] for step in sums if counts.get(step)}


@contextlib.contextmanager
def database(server_url: str, label: str) -> Iterator[str]:
    """Empty: the platform's own PostgreSQL server. A PostgreSQL URL: a fresh database on that
    server for this run, dropped afterwards (an old run's outbox never leaks into a new one)."""
    if not server_url:
        yield ""
        return
    url = make_url(server_url)
    if not url.drivername.startswith("postgresql"):
        raise BenchError(
            "--database-url: a PostgreSQL URL (leave it out for the platform's own server)"
        )
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"permisos_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def setup(p: Platform, i: int, run: str) -> Applicant:
    data = {**fictional_person(i, f"bench-{run}"), "plates": f"BEN{i:04d}"}
    applicant = Applicant(p.api_url, p.outbox, data["email"], data)
    await applicant.register_and_verify()
    await applicant.login()
    await applicant.apply()
    return applicant


async def pay_and_follow(permit: Permit, within: float, poll: float) -> None:
    try:
        created = await permit.applicant.pay_card()
        if created.get("status") != "succeeded":
            permit.failure = f"card payment answered {created.get('status')!r}, not succeeded"
            return
        permit.paid = time.monotonic()

        def seen(change: Progress) -> None:
            if change.status in FINAL_STATUSES and permit.ready is None:
                permit.ready = change.at

        final = await permit.applicant.follow(within, seen, every=poll)
        permit.attempts = int(final.get("permit_attempts") or 0)
        if final["status"] != "permit_ready":
            permit.failure = (
                f"ended {final['status']} ({final.get('permit_reason')}: "
                f"{final.get('permit_message')})"
            )
    except Exception as error:
        permit.failure = f"{type(error).__name__}: {error}"


async def run_pool(args: argparse.Namespace, runners: int, state_dir: Path) -> dict[str, Any]:
    """One pool size on a fresh platform; returns its figures (and the failures, if any)."""
    n = args.permits
    run = secrets.token_hex(3)
    began = time.monotonic()
    with database(args.database_url, f"r{runners}") as database_url:
        config = PlatformConfig(
            state_dir=state_dir,
            database_url=database_url,
            runners=runners,
            portal_latency_ms=args.latency_ms,
            portal_processing_seconds=args.processing_seconds,
            # Before the clock the applicants sign up from one address: no part of the figure.
            extra_api_env=dict(ONE_ADDRESS_LIMITS),
        ).on_free_ports()
        async with Platform(config) as p:
            started_in = time.monotonic() - began
            applicants = await asyncio.gather(*(setup(p, i, run) for i in range(n)))
            permits = [Permit(i, a) for i, a in enumerate(applicants)]
            clock = ClusterClock(p.kubeconfig)
            cpu = CpuMeter()
            try:
                await clock.start()
                load_before = os.getloadavg()
                cpu.start()
                # The clock starts: every applicant pays by card at once.
                await asyncio.gather(
                    *(pay_and_follow(x, args.timeout, args.poll_seconds) for x in permits)
                )
                cpu.stop()
                load_after = os.getloadavg()
                # Every operator replica's metrics: the active one counted the work.
                metrics = ""
                async with aiohttp.ClientSession() as http:
                    for url in await p.operator_metrics_urls():
                        async with http.get(url) as response:
                            metrics += await response.text()
                p.check_alive()
            finally:
                await clock.stop()
                for a in applicants:
                    await a.close()
    return figures(
        runners,
        permits,
        clock,
        cpu,
        step_means(metrics),
        started_in=started_in,
        load=(load_before[0], load_after[0]),
        total=time.monotonic() - began,
    )


def figures(
    runners: int,
    permits: list[Permit],
    clock: ClusterClock,
    cpu: CpuMeter,
    steps: dict[str, float],
    *,
    started_in: float,
    load: tuple[float, float],
    total: float,
) -> dict[str, Any]:
    done = [x for x in permits if x.failure is None and x.paid is not None and x.ready]
    latencies = [x.ready - x.paid for x in done if x.ready is not None and x.paid is not None]
    paid = [x.paid for x in permits if x.paid is not None]
    ready = [x.ready for x in done if x.ready is not None]
    window = (max(ready) - min(paid)) if ready and paid else math.nan
    stages: dict[str, list[float]] = {}
    unqueued: list[float] = []  # payment -> ready without the wait for a free runner
    for x in done:
        marks = {
            **clock.marks.get(x.applicant.application_id, {}),
            "paid": x.paid,
            "ready": x.ready,
        }
        for start, end, label in STAGES:
            a, b = marks.get(start), marks.get(end)
            if a is not None and b is not None:
                stages.setdefault(label, []).append(b - a)
        created, admitted = marks.get("created"), marks.get("Running")
        if x.ready is not None and x.paid is not None and created and admitted:
            unqueued.append(x.ready - x.paid - (admitted - created))
    pods = stages.get(STAGES[3][2], [])
    cpu_per_permit = sum(cpu.used.values()) / max(len(done), 1)
    return {
        "runners": runners,
        "permits": len(permits),
        "succeeded": len(done),
        "failures": [
            {"applicant": x.index, "application": x.applicant.application_id, "why": x.failure}
            for x in permits
            if x.failure is not None
        ],
        "retried": sum(1 for x in done if x.attempts > 1),
        "platform_start_s": started_in,
        "window_s": window,
        "permits_per_hour": len(done) / window * 3600 if window > 0 else math.nan,
        "latency_s": {
            "p50": percentile(latencies, 0.50),
            "p95": percentile(latencies, 0.95),
            "min": min(latencies, default=math.nan),
            "max": max(latencies, default=math.nan),
        },
        "unqueued_latency_s": {
            "p50": percentile(unqueued, 0.50),
            "p95": percentile(unqueued, 0.95),
        },
        # The share of the window the pool's runner slots spent running a runner process.
        "pool_busy_pct": 100 * sum(pods) / (runners * window) if pods and window > 0 else math.nan,
        # Permits per hour if CPU were the only limit: all CPUs at this CPU cost per permit.
        "cpu_ceiling_per_hour": (os.cpu_count() or 1) * 3600 / cpu_per_permit
        if cpu_per_permit
        else math.nan,
        "stages_mean_s": {k: statistics.mean(v) for k, v in stages.items()},
        "stages_max_s": {k: max(v) for k, v in stages.items()},
        "watch_failed": clock.failed,
        "runner_steps_mean_s": steps,
        "cpu_s_per_permit": {k: v / max(len(done), 1) for k, v in cpu.used.items()},
        "cpu_busy_pct": 100 * sum(cpu.used.values()) / (cpu.wall * (os.cpu_count() or 1))
        if cpu.wall
        else math.nan,
        "machine_busy_pct": cpu.machine_busy_pct,
        "load1": load,
        "total_s": total,
    }


# --- printing ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": host.python_version(),
        "platform": host.platform(terse=True),
    }


def print_table(rows: list[dict[str, Any]], t_portal: float) -> None:
    """The issue's figures, each beside its floor."""
    print(
        f"\n{'pool':>4}{'permits':>9}{'window s':>10}{'permits/h':>11}{'floor/h':>9}"
        f"{'floor÷':>8}{'p50 s':>8}{'p95 s':>8}{'min s':>8}{'max s':>8}{'floor s':>9}"
        f"{'p50÷fl':>8}{'p95÷fl':>8}{'failed':>8}"
    )
    for row in rows:
        r = row["runners"]
        floor_rate = r * 3600 / t_portal
        lat = row["latency_s"]
        print(
            f"{r:>4}{row['permits']:>9}{row['window_s']:>10.1f}{row['permits_per_hour']:>11.0f}"
            f"{floor_rate:>9.0f}{floor_rate / row['permits_per_hour']:>8.2f}"
            f"{lat['p50']:>8.1f}{lat['p95']:>8.1f}{lat['min']:>8.1f}{lat['max']:>8.1f}"
            f"{t_portal:>9.1f}{lat['p50'] / t_portal:>8.2f}{lat['p95'] / t_portal:>8.2f}"
            f"{len(row['failures']):>8}"
        )
    print(
        "  (p50/p95: nearest rank. Every applicant pays at once, so with more permits than runners"
        " the latency is mostly the wait for a free runner; without that wait:"
    )
    for row in rows:
        lat = row["unqueued_latency_s"]
        print(
            f"   R={row['runners']}: p50 {lat['p50']:.1f} s ({lat['p50'] / t_portal:.2f} x floor), "
            f"p95 {lat['p95']:.1f} s ({lat['p95'] / t_portal:.2f} x floor)"
        )
    print("  )")


def print_breakdown(rows: list[dict[str, Any]], floor_steps: dict[str, float]) -> None:
    sizes = "".join(f"{'R=' + str(row['runners']):>10}" for row in rows)
    print(f"\nWhere a permit's time goes (mean s per permit):\n{'':62}{sizes}")
    for _, _, label in STAGES:
        cells = "".join(f"{row['stages_mean_s'].get(label, math.nan):>10.2f}" for row in rows)
        print(f"  {label:60}{cells}")
    cells = "".join(f"{row['pool_busy_pct']:>9.0f}%" for row in rows)
    print(f"  {'pool busy: runner processes / (R x window)':60}{cells}")
    print(f"  {'max of each stage:':60}")
    for _, _, label in STAGES:
        cells = "".join(f"{row['stages_max_s'].get(label, math.nan):>10.2f}" for row in rows)
        print(f"  {label:60}{cells}")
    for row in rows:
        if row["watch_failed"]:
            print(f"  (R={row['runners']}: the cluster watch failed: {row['watch_failed']})")

    print(
        "\nThe runner's own steps (mean s, succeeded attempts) beside the floor's walk "
        f"(median s):\n{'':52}{'floor':>10}{sizes}"
    )
    for step in RUNNER_STEPS:
        cells = "".join(f"{row['runner_steps_mean_s'].get(step, math.nan):>10.2f}" for row in rows)
        print(f"  {step:50}{floor_steps.get(step, math.nan):>10.2f}{cells}")
    process = STAGES[3][2]
    overhead = [
        row["stages_mean_s"].get(process, math.nan)
        - row["runner_steps_mean_s"].get("total", math.nan)
        for row in rows
    ]
    cells = "".join(f"{x:>10.2f}" for x in overhead)
    print(f"  {'process minus its attempt (start-up, Chromium, exit)':50}{'':>10}{cells}")

    print(f"\nCPU seconds per permit, by part (the measured window):\n{'':62}{sizes}")
    parts: list[str] = []
    for row in rows:
        parts += [k for k in row["cpu_s_per_permit"] if k not in parts]
    for part in parts:
        cells = "".join(f"{row['cpu_s_per_permit'].get(part, math.nan):>10.2f}" for row in rows)
        print(f"  {part:60}{cells}")
    cells = "".join(f"{sum(row['cpu_s_per_permit'].values()):>10.2f}" for row in rows)
    print(f"  {'all':60}{cells}")
    cells = "".join(f"{row['cpu_ceiling_per_hour']:>10.0f}" for row in rows)
    print(f"  {'permits/h if the CPUs were the only limit':60}{cells}")
    cells = "".join(f"{row['cpu_busy_pct']:>9.0f}%" for row in rows)
    print(f"  {'CPUs busy with the platform during the window':60}{cells}")
    cells = "".join(f"{row['machine_busy_pct']:>9.0f}%" for row in rows)
    print(f"  {'CPUs busy with anything (other users too)':60}{cells}")
    cells = "".join(f"{row['load1'][0]:>5.1f}→{row['load1'][1]:<4.1f}" for row in rows)
    print(f"  {'load average (1 min) at the start → end':60}{cells}")


# --- main --------------------------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--runners",
        default="1,2,4",
        type=lambda text: [int(x) for x in text.split(",") if x.strip()],
        help="pool sizes, comma-separated (default 1,2,4)",
    )
    parser.add_argument("--permits", type=int, default=12, help="applicants per pool size")
    parser.add_argument("--latency-ms", type=int, default=50, help="portal latency per response")
    parser.add_argument("--processing-seconds", type=float, default=2.0)
    parser.add_argument("--floor-walks", type=int, default=5)
    parser.add_argument(
        "--database-url",
        default="",
        help="a PostgreSQL server (SQLAlchemy URL; a fresh database per pool size is created "
        "and dropped there); default: the platform's own PostgreSQL server",
    )
    parser.add_argument(
        "--poll-seconds", type=float, default=0.5, help="how often each applicant polls the API"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="per pool size, for the permits to be ready"
    )
    args = parser.parse_args(argv)
    if args.permits < 1 or args.floor_walks < 1 or not args.runners:
        parser.error("--permits, --floor-walks and --runners need at least one")
    return args


async def main(argv: list[str]) -> int:
    args = parse(argv)
    work = Path(tempfile.mkdtemp(prefix="permisos-bench-platform-"))
    kept: list[Path] = []  # the state of the pool sizes that failed, logs included
    try:
        return await bench(args, work, kept)
    finally:
        if not kept:
            shutil.rmtree(work, ignore_errors=True)


async def bench(args: argparse.Namespace, work: Path, kept: list[Path]) -> int:
    began = time.monotonic()
    info = machine()
    database_shown = (
        "PostgreSQL, a fresh database per pool size on "
        + make_url(args.database_url).render_as_string(hide_password=True)
        if args.database_url
        else "PostgreSQL (the platform's own server, started empty per pool size)"
    )
    print(
        f"Machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"load {' '.join(str(x) for x in info['load_1_5_15'])}, Python {info['python']}, "
        f"{info['platform']}"
    )
    print(
        f"Settings: pool sizes {args.runners} (the node takes the machine's capacity), "
        f"{args.permits} permits each, portal latency {args.latency_ms} ms per response, "
        "processing "
        f"{args.processing_seconds:g} s, card payments, applicants poll every "
        f"{args.poll_seconds:g} s, database {database_shown}, outbox dispatcher every "
        f"{PlatformConfig.dispatcher_interval_seconds:g} s"
    )

    walks = await measure_floor(args, work)
    t_portal = statistics.median(w.seconds for w in walks)
    print(
        f"\nFloor: the portal alone, plain HTTP, {len(walks)} walks: median {t_portal:.2f} s per "
        f"permit (min {min(w.seconds for w in walks):.2f}, max {max(w.seconds for w in walks):.2f};"
        f" {walks[0].requests} HTTP requests at {args.latency_ms} ms each, the status polls "
        f"among them, and {args.processing_seconds:g} s of processing)"
    )

    rows: list[dict[str, Any]] = []
    for runners in args.runners:
        state = work / f"r{runners}"
        print(f"\nR={runners}: starting a fresh platform ...", flush=True)
        try:
            row = await run_pool(args, runners, state)
        except Exception as error:
            print(f"R={runners}: FAILED: {type(error).__name__}: {error}")
            print(f"  the platform's logs are kept in {state / 'logs'}")
            kept.append(state)
            rows.append({"runners": runners, "error": f"{type(error).__name__}: {error}"})
            continue
        rows.append(row)
        within = f" in {row['window_s']:.1f} s" if row["succeeded"] else ""
        print(
            f"R={runners}: platform up in {row['platform_start_s']:.1f} s; {row['succeeded']} of "
            f"{row['permits']} permits ready{within} ({row['retried']} needed a retry); "
            f"{row['total_s']:.0f} s for this pool size"
        )
        if row["failures"]:
            kept.append(state)
            print(f"R={runners}: {len(row['failures'])} FAILED PERMITS:")
            for failure in row["failures"]:
                print(
                    f"  applicant {failure['applicant']} ({failure['application']}): "
                    f"{failure['why']}"
                )
            print(f"  the platform's logs are kept in {state / 'logs'}")
        else:
            shutil.rmtree(state, ignore_errors=True)

    measured = [row for row in rows if "error" not in row and row["succeeded"]]
    if measured:
        print(
            f"\nPermits per hour end to end, and payment confirmed -> permit ready, beside the "
            f"floor (R x 3600 / {t_portal:.2f} s; latency floor {t_portal:.2f} s). "
            f"floor÷ = floor / measured throughput; p50÷fl, p95÷fl = measured latency / floor."
        )
        print_table(measured, t_portal)
        floor_steps = {
            step: statistics.median(w.steps[step] for w in walks) for step in walks[0].steps
        }
        print_breakdown(measured, floor_steps)

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "platform_throughput.json").write_text(
        json.dumps(
            {
                "machine": info,
                "config": {**vars(args), "database_url": database_shown},
                "floor": {
                    "t_portal_s": t_portal,
                    "walks_s": [w.seconds for w in walks],
                    "requests_per_walk": walks[0].requests,
                    "steps_s": [w.steps for w in walks],
                },
                "rows": rows,
            },
            indent=2,
            default=str,
        )
    )
    failed = [row for row in rows if "error" in row or row["failures"]]
    print(f"\nTotal time: {time.monotonic() - began:.0f} s")
    if failed:
        print(f"FAILED: {len(failed)} pool size(s) had failures (see above)")
        return 1
    return 0


async def run(argv: list[str]) -> int:
    """`main`, with SIGTERM cancelling it as Ctrl-C does: the platform is stopped either way."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await main(argv)


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(run(sys.argv[1:])))
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        sys.exit(130)
    except asyncio.CancelledError:
        print("terminated; every process stopped", file=sys.stderr)
        sys.exit(143)
