"""Processes and HTTP plumbing for the operator benchmark.

Every process the benchmark starts is a `Child`, stopped (SIGTERM, then SIGKILL) when the
benchmark ends however it ends. The benchmark talks to the API emulator with plain aiohttp so the
client's own overhead stays small and predictable.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"
NS = "default"
GROUP_PATH = f"/apis/permisosdigitales.mx/v1alpha1/namespaces/{NS}"
JOBS_PATH = f"/apis/batch/v1/namespaces/{NS}/jobs"
LABEL_REQUEST = "permisosdigitales.mx/permitrequest"


class BenchError(RuntimeError):
    """A phase could not be measured; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """One process started by the benchmark, its output in a log file."""

    def __init__(
        self, label: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.label = label
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ps = psutil.Process(self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss(self) -> int:
        """Resident memory of the process and all its children, in bytes."""
        total = 0
        procs = [self.ps]
        with contextlib.suppress(psutil.Error):
            procs += self.ps.children(recursive=True)
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        with contextlib.suppress(psutil.Error):
            times = self.ps.cpu_times()
            return float(times.user + times.system)
        return math.nan

    def problems(self, limit: int = 5) -> tuple[int, list[str]]:
        """Lines of the log that look like errors: their count and the first few."""
        pattern = re.compile(r"Traceback|\bERROR\b|\"levelname\": \"ERROR\"|\berror\b", re.I)
        lines = [line for line in self.logs().splitlines() if pattern.search(line)]
        return len(lines), lines[:limit]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class Children:
    """The set of live processes; `stop_all` ends each one by its own pid."""

    def __init__(self) -> None:
        self._children: list[Child] = []

    def start(self, *args: Any, **kwargs: Any) -> Child:
        child = Child(*args, **kwargs)
        self._children.append(child)
        return child

    def stop(self, child: Child) -> None:
        child.stop()
        if child in self._children:
            self._children.remove(child)

    def stop_all(self) -> None:
        for child in reversed(self._children):
            with contextlib.suppress(Exception):
                child.stop()
        self._children.clear()


async def wait_for(what: str, probe: Any, within: float, every: float = 0.2) -> Any:
    """Polls the async `probe` until it returns something truthy."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = await probe()
        if value:
            return value
        await asyncio.sleep(every)
    raise BenchError(f"gave up after {within:.0f}s waiting for {what}")


async def wait_progress(
    what: str, probe: Any, target: float, within: float, stall: float, every: float = 1.0
) -> None:
    """Polls the async `probe` (a number, or None) until it reaches `target`; gives up after
    `within` seconds, or after `stall` seconds without the number changing."""
    began = time.monotonic()
    last: Any = None
    changed = began
    while True:
        value = await probe()
        now = time.monotonic()
        if value is not None and value >= target:
            return
        if value != last:
            last, changed = value, now
        if now - began > within:
            raise BenchError(f"gave up after {within:.0f}s waiting for {what} (at {last})")
        if now - changed > stall:
            raise BenchError(
                f"gave up waiting for {what}: stuck at {last} for {stall:.0f}s "
                f"({now - began:.0f}s into the wait)"
            )
        await asyncio.sleep(every)


async def start_emulator(children: Children, logs: Path, name: str) -> tuple[Child, str, Path]:
    """The API emulator in its own process, so its CPU is not the benchmark client's."""
    port = free_port()
    kubeconfig = logs / f"{name}.kubeconfig"
    argv = [
        sys.executable,
        "-m",
        "permisos_sandbox.kubeapi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--crds",
        str(CRDS),
        "--kubeconfig",
        str(kubeconfig),
        # kube-apiserver keeps about five minutes of watch history (etcd compaction); with
        # thousands of objects that is far more than the emulator's default of 1000 events.
        "--history-limit",
        "200000",
    ]
    child = children.start(f"kubeapi[{name}]", argv, logs / f"{name}-kubeapi.log")

    async def listening() -> str | None:
        if not child.alive():
            raise BenchError(f"the emulator exited early; see {child.log_path}")
        found = re.search(r"kubeapi listening on (\S+)", child.logs())
        return found.group(1) if found else None

    url = str(await wait_for("the emulator to listen", listening, 60))
    return child, url, kubeconfig


class Api:
    """A thin aiohttp client of the emulator."""

    def __init__(self, url: str, concurrency: int) -> None:
        self.url = url
        connector = aiohttp.TCPConnector(limit=concurrency + 8)
        self.session = aiohttp.ClientSession(connector=connector)

    async def close(self) -> None:
        await self.session.close()

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.url + path, json=body) as response:
            data = await response.json(content_type=None)
            if response.status not in (200, 201):
                raise BenchError(f"POST {path} -> {response.status}: {data}")
            return dict(data)

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        async with self.session.get(self.url + path, params=params) as response:
            data = await response.json(content_type=None)
            if response.status != 200:
                raise BenchError(f"GET {path} -> {response.status}: {data}")
            return dict(data)

    async def text(self, url: str) -> str | None:
        try:
            async with self.session.get(url) as response:
                return await response.text() if response.status == 200 else None
        except aiohttp.ClientError:
            return None


def permit_request(name: str, pool: str = "default") -> dict[str, Any]:
    spec: dict[str, Any] = {"applicationId": name, "secretName": f"{name}-applicant"}
    if pool != "default":
        spec["pool"] = pool
    return {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "PermitRequest",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def pool_maximum() -> int | None:
    """The largest RunnerPool spec.replicas the CRD accepts (None: no limit)."""
    crd = yaml.safe_load((CRDS / "runnerpools.yaml").read_text())
    for version in crd["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        replicas = schema["properties"]["spec"]["properties"].get("replicas") or {}
        if "maximum" in replicas:
            return int(replicas["maximum"])
    return None


def runner_pool(replicas: int, name: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "RunnerPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"replicas": replicas},
    }


class JobWatch:
    """Watches batch/v1 Jobs carrying the request label; notes when each request's first Job
    arrives (monotonic clock of this process)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.first_job: dict[str, float] = {}
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listed = await self.api.get(JOBS_PATH, labelSelector=LABEL_REQUEST)
        now = time.monotonic()
        for item in listed.get("items") or []:
            self._note(item, now)
        rv = str(listed["metadata"]["resourceVersion"])
        self._task = asyncio.create_task(self._run(rv))
        await asyncio.wait_for(self.ready.wait(), 30)

    def _note(self, job: dict[str, Any], at: float) -> None:
        request = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_REQUEST)
        if request and request not in self.first_job:
            self.first_job[request] = at
            self.changed.set()

    async def _run(self, rv: str) -> None:
        while True:
            params = {
                "watch": "1",
                "labelSelector": LABEL_REQUEST,
                "resourceVersion": rv,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": "600",
            }
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with self.api.session.get(
                self.api.url + JOBS_PATH, params=params, timeout=timeout
            ) as response:
                if response.status != 200:
                    raise BenchError(f"Job watch -> {response.status}: {await response.text()}")
                self.ready.set()
                async for raw in response.content:
                    at = time.monotonic()
                    if not raw.strip():
                        continue
                    event = json.loads(raw)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        raise BenchError(f"Job watch error: {obj}")
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                    if event.get("type") == "ADDED":
                        self._note(obj, at)

    def check(self) -> None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            error = self._task.exception()
            if error is not None:
                raise BenchError(f"the Job watch stopped: {error!r}")

    async def wait_count(self, names: Iterable[str], within: float, stall: float) -> None:
        """Until every one of `names` has a Job; gives up after `within` seconds, or after
        `stall` seconds in which no new Job arrived."""
        wanted = set(names)
        began = time.monotonic()
        deadline = began + within
        progress, seen = began, len(self.first_job)
        while not wanted <= self.first_job.keys():
            self.check()
            now = time.monotonic()
            if len(self.first_job) != seen:
                progress, seen = now, len(self.first_job)
            missing = len(wanted - self.first_job.keys())
            if now >= deadline:
                raise BenchError(
                    f"gave up after {within:.0f}s: {missing} of {len(wanted)} requests have no Job"
                )
            if now - progress > stall:
                raise BenchError(
                    f"gave up: no new Job for {stall:.0f}s; {missing} of {len(wanted)} requests "
                    f"have no Job ({now - began:.0f}s into the wait)"
                )
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(deadline - now, 1.0))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def metric_value(text: str, name: str, labels: str) -> float | None:
    """One sample from a Prometheus text exposition, e.g. `permisos_queue_depth{pool="default"}`."""
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", re.M)
    found = pattern.search(text)
    return float(found.group(1)) if found else None
