"""Processes and HTTP plumbing for the operator benchmark.

Every process the benchmark starts is a `Child`, stopped (SIGTERM, then SIGKILL) when the
benchmark ends however it ends. The control plane is the real one (etcd, kube-apiserver and
controllers, `permisos_sandbox.cluster`) with its Job controller off: the figures are the
operators' way to a Job, not the pods after it. The benchmark talks to it
through the project's Kubernetes client (`permisos.kube`, the official client's transport).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml

from permisos.kube import Kube, KubeError
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform.kubernetes import apply_crds, load_crds

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "crds"
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


async def start_control_plane(logs: Path, name: str) -> ControlPlane:
    """A fresh control plane with the project's CRDs, its files under `logs/name`."""
    control_plane = ControlPlane(logs / name, controllers="*,-job-controller", log=print)
    await asyncio.to_thread(control_plane.start)
    kube = await Kube.from_kubeconfig(control_plane.admin_kubeconfig)
    try:
        await apply_crds(kube, load_crds(CRDS))
    finally:
        await kube.close()
    return control_plane


def control_plane_cpu_seconds(control_plane: ControlPlane) -> float:
    """CPU seconds used so far by the control plane's processes (etcd, kube-apiserver, the
    controllers, the scheduler)."""
    total = 0.0
    for pid in control_plane.pids().values():
        with contextlib.suppress(psutil.Error):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


class Api:
    """The bench client's view of one control plane, as cluster-admin."""

    def __init__(self, kube: Kube, concurrency: int) -> None:
        self.kube = kube
        connector = aiohttp.TCPConnector(limit=concurrency + 8)
        self.session = aiohttp.ClientSession(connector=connector)  # the operators' endpoints

    @classmethod
    async def of(cls, control_plane: ControlPlane, concurrency: int) -> Api:
        return cls(await Kube.from_kubeconfig(control_plane.admin_kubeconfig), concurrency)

    async def close(self) -> None:
        await self.session.close()
        await self.kube.close()

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await self.kube.request("POST", path, body=body)
        except KubeError as error:
            raise BenchError(f"POST {path} -> {error}") from None

    async def get(self, path: str, **params: str) -> dict[str, Any]:
        try:
            return await self.kube.request("GET", path, query=params)
        except KubeError as error:
            raise BenchError(f"GET {path} -> {error}") from None

    async def text(self, url: str) -> str | None:
        try:
            async with self.session.get(url) as response:
                return await response.text() if response.status == 200 else None
        except aiohttp.ClientError:
            return None


def group_path(ns: str) -> str:
    """Where a namespace's PermitRequests and RunnerPools are served."""
    return f"/apis/permisosdigitales.mx/v1alpha1/namespaces/{ns}"


def jobs_path(ns: str) -> str:
    return f"/apis/batch/v1/namespaces/{ns}/jobs"


def permit_request(name: str, ns: str, pool: str = "default") -> dict[str, Any]:
    spec: dict[str, Any] = {"applicationId": name, "secretName": f"{name}-applicant"}
    if pool != "default":
        spec["pool"] = pool
    return {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "PermitRequest",
        "metadata": {"name": name, "namespace": ns},
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


def runner_pool(replicas: int, ns: str, name: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "permisosdigitales.mx/v1alpha1",
        "kind": "RunnerPool",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas},
    }


class JobWatch:
    """Watches batch/v1 Jobs carrying the request label; notes when each request's first Job
    arrives (monotonic clock of this process)."""

    def __init__(self, api: Api, ns: str) -> None:
        self.api, self.path = api, jobs_path(ns)
        self.first_job: dict[str, float] = {}
        self.ready = asyncio.Event()
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listed = await self.api.get(self.path, labelSelector=LABEL_REQUEST)
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
            events = self.api.kube.watch(
                self.path, resource_version=rv, labelSelector=LABEL_REQUEST, timeout_seconds=600
            )
            self.ready.set()
            async for kind, obj in events:
                at = time.monotonic()
                if kind == "ERROR":
                    raise BenchError(f"Job watch error: {obj}")
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if kind == "ADDED":
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
