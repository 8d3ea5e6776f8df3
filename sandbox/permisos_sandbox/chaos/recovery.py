"""What every fault of the chaos run leans on: undoing to the end despite cancellation, waiting
for a part to come back, and telling whether the platform is whole."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from permisos.kube import JSON
from permisos_sandbox.cluster import ControlPlane
from permisos_sandbox.platform import Platform, release
from permisos_sandbox.platform.children import PartFailed
from permisos_sandbox.platform.stack import OPERATOR_METRICS_PORT

T = TypeVar("T")
Log = Callable[[str], None]
# What each component's container process runs (the node agent's image map).
PROCESSES = {"api": b"permisos_api", "operator": b"permisos_operator"}
LEADER = re.compile(r"^permisos_operator_leader 1(\.0)?$", re.MULTILINE)


class Skipped(Exception):
    """The fault found nothing to hit (no runner pod running, the API unreachable): not
    injected this time."""


class NotWhole(RuntimeError):
    """The platform did not come back whole after the faults; `injections` are what the run
    did before (set by `run_faults`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.injections: list[Any] = []


async def undo(work: Awaitable[T]) -> T:
    """Runs an undo to its end even when the caller is cancelled meanwhile (then re-raises the
    cancellation): a fault must never be left in place."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return task.result()


async def wait_for(
    probe: Callable[[], Awaitable[T | None]], within: float, every: float = 0.5
) -> T | None:
    """Polls `probe` until it returns something; None after `within` seconds. A probe that
    raises (the apiserver down, a pod gone) counts as not yet."""
    deadline = time.monotonic() + within
    while True:
        try:
            found = await probe()
        except Exception:  # any failure of a part still coming back
            found = None
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(every)  # parts coming back have no event to wait on


async def pods(platform: Platform, selector: str) -> list[JSON]:
    found = await platform.kube.get(
        f"/api/v1/namespaces/{platform.config.namespace}/pods", labelSelector=selector
    )
    return list((found or {}).get("items") or [])


def component(name: str) -> str:
    return f"app.kubernetes.io/instance={release.RELEASE},app.kubernetes.io/component={name}"


def container_pid(pod: JSON, marker: bytes) -> int | None:
    """The process of the pod's running container whose command line holds `marker`: the node
    agent reports each container as `local://<pid>`; the command line guards against a status
    older than the process it names."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        container_id = str(status.get("containerID") or "")
        if "running" not in (status.get("state") or {}) or not container_id.startswith("local://"):
            continue
        pid = int(container_id.removeprefix("local://"))
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


async def operator_leader(platform: Platform) -> JSON | None:
    """The operator pod whose replica says it is active (its /metrics), if any."""
    running = [
        p
        for p in await pods(platform, component("operator"))
        if p["status"].get("phase") == "Running" and p["status"].get("podIP")
    ]
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:
        for pod in running:
            url = f"http://{pod['status']['podIP']}:{OPERATOR_METRICS_PORT}/metrics"
            try:
                text = (await http.get(url)).text
            except httpx.HTTPError:
                continue
            if LEADER.search(text):
                return pod
    return None


IN_FLIGHT = re.compile(r"^permisos_http_requests_in_flight (\d+)(\.0)?$", re.MULTILINE)


async def requests_in_flight(pod: JSON) -> int | None:
    """Requests an API pod is answering now (its /metrics, less the scrape itself); None when
    it does not answer."""
    ports = [p for c in pod["spec"]["containers"] for p in c.get("ports") or []]
    port = next((p["containerPort"] for p in ports if p.get("name") == "http"), None)
    address = pod["status"].get("podIP")
    if port is None or not address:
        return None
    async with httpx.AsyncClient(timeout=2.0, trust_env=False) as http:
        try:
            found = IN_FLIGHT.search((await http.get(f"http://{address}:{port}/metrics")).text)
        except httpx.HTTPError:
            return None
    return int(found.group(1)) - 1 if found else None


async def whole(platform: Platform, within: float = 240.0) -> str:
    """Until every part runs again, the apiserver serves and the release serves
    (`release_ready`); what it found, or NotWhole saying what is missing."""
    began = time.monotonic()
    platform.check_alive()  # the simulators and the node agent (PartFailed names the part)
    kubernetes = platform.kubernetes
    assert kubernetes is not None and kubernetes.control_plane is not None
    cp = kubernetes.control_plane
    if cp.pids().keys() != {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}:
        raise NotWhole(f"control plane parts running: {sorted(cp.pids())}")
    if platform.postgres is not None and not platform.postgres.running:
        raise NotWhole("PostgreSQL is not running")
    if not await wait_for(lambda: serving(cp), within):
        raise NotWhole(f"kube-apiserver not ready within {within:.0f} s")
    left = max(10.0, within - (time.monotonic() - began))
    try:
        deployments = await release_ready(platform, left)
    except PartFailed as error:
        raise NotWhole(str(error)) from error
    return f"whole after {time.monotonic() - began:.1f} s ({deployments})"


async def release_ready(platform: Platform, within: float) -> str:
    """Until the release serves again: every running API pod's container process alive (a
    status written before a crash still says ready) and its Deployment ready, and an operator
    replica active. Not both operator replicas: one killed again and again backs off for up
    to five minutes (CrashLoopBackOff), as under a kubelet, and comes back by itself. Says how
    the Deployments stand; PartFailed when not serving within `within` seconds."""
    kube, namespace = platform.kube, platform.config.namespace
    seen: dict[str, str] = {}

    async def serving_again() -> bool | None:
        nonlocal seen
        api = [p for p in await pods(platform, component("api")) if running(p)]
        if not api or any(container_pid(p, PROCESSES["api"]) is None for p in api):
            return None
        seen = await release.deployments_ready(kube, namespace)
        ready, wanted = seen.get(f"{release.RELEASE}-api", "0/1").split("/")
        if ready != wanted or await operator_leader(platform) is None:
            return None
        # What clients reach: the Service's ready endpoints (the Deployment's count lags a
        # container restarted in place).
        if platform.api is not None and not await platform.api.endpoints():
            return None
        return True

    if await wait_for(serving_again, within) is None:
        raise PartFailed(
            f"the release did not serve again within {within:.0f} s: {seen or 'no answer'}"
            " (an API pod not ready, the API Service without a ready endpoint, or no operator"
            " replica active)"
        )
    return ", ".join(f"{name} {state}" for name, state in sorted(seen.items()))


async def serving(cp: ControlPlane) -> bool | None:
    """True once kube-apiserver answers ready (off the event loop: it blocks)."""
    return True if await asyncio.to_thread(cp.serving) else None


def running(pod: JSON) -> bool:
    """Running, and not being deleted."""
    return pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
