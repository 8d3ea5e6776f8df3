"""The node agent: runs the pods bound to this node as local processes and reports their status.

It also plays the scheduler's part for its single node: at most `max_pods` pods are admitted at
once; the others stay Pending with `PodScheduled=False, reason Unschedulable` and are admitted
first come, first served as slots free up. A pod that is deleted, passes its own
`activeDeadlineSeconds`, or is still running when the executor stops is killed like a container:
SIGTERM to its process group, SIGKILL after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from permisos_sandbox.node.config import MAX_GRACE_SECONDS, STOP_GRACE_SECONDS
from permisos_sandbox.node.files import ContainerPlan, PodFiles, SetupError, config_error
from permisos_sandbox.node.images import image_candidates, lookup_image
from permisos_sandbox.node.pods import (
    DEADLINE_MESSAGE,
    LOST_MESSAGE,
    LOST_REASON,
    SHUTDOWN_MESSAGE,
    describe,
    grace_seconds,
    log_extra,
)
from permisos_sandbox.node.process import ContainerProcess, StartError
from permisos_sandbox.node.status import (
    UNSCHEDULABLE,
    condition,
    pod_status,
    running,
    terminated,
    unschedulable,
    waiting,
)

from .informer import Informer
from .kube import JSON, Kube, fmt_time, now, parse_time, uid_of
from .settings import ExecutorConfig

log = logging.getLogger("permisos.executor.kubelet")

_SETUP_RETRY_FIRST = 1.0
_SETUP_RETRY_MAX = 10.0
_REPORT_RETRY_MAX = 5.0
_FINISHED_MEMORY = 10_000


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class PodWorker:
    """One admitted pod, from volumes to its last status report."""

    def __init__(self, kubelet: Kubelet, pod: JSON) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.uid = uid_of(pod)
        self.files = PodFiles(kubelet.config.pods_dir, kubelet.config.logs_dir, pod)
        self.processes: dict[str, ContainerProcess] = {}
        self.stop_reason: str | None = None  # deleted | shutdown
        self._stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.start_time = fmt_time(now())
        self._last_setup_message: str | None = None
        self._image_tries: dict[str, int] = {}

    @property
    def extra(self) -> dict[str, str]:
        return log_extra(self.pod)

    def request_stop(self, reason: str, pod: JSON | None = None) -> None:
        if pod is not None:
            self.pod = pod
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    # --- status ---------------------------------------------------------------------------

    async def report(self, status: JSON) -> None:
        await self.kubelet.report(self.pod, status, final=False, shutdown=self.shutting_down)

    @property
    def shutting_down(self) -> bool:
        return self.stop_reason == "shutdown"

    def _status(
        self,
        phase: str,
        states: dict[str, JSON],
        *,
        reason: str | None = None,
        message: str | None = None,
    ) -> JSON:
        ids = {name: f"local://{p.pid}" for name, p in self.processes.items() if p.pid}
        status = pod_status(
            self.pod,
            phase,
            states,
            start_time=self.start_time,
            container_ids=ids,
            reason=reason,
            message=message,
        )
        if self.shutting_down and phase == "Failed":
            status["conditions"].append(
                condition("DisruptionTarget", True, "TerminationByKubelet", SHUTDOWN_MESSAGE)
            )
        return status

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s: the kubelet failed", describe(self.pod), extra=self.extra)
        finally:
            for process in self.processes.values():
                process.kill()
            self.files.remove()
            self.kubelet.release(self)

    async def _run(self) -> None:
        containers = list((self.pod.get("spec") or {}).get("containers") or [])
        names = [str(c.get("name")) for c in containers]
        await self.report(self._status("Pending", {n: waiting() for n in names}))
        plans = await self._prepare(containers)
        if plans is None:
            # Deleted (or the node stopping) before anything ran.
            reason, message = (
                ("Terminated", SHUTDOWN_MESSAGE) if self.shutting_down else (None, None)
            )
            status = self._status(
                "Failed", self._waiting_states(names), reason=reason, message=message
            )
            await self._final(status)
            return
        states = await self._start(containers, plans)
        if states is None:
            return
        await self.report(self._status("Running", states))
        await self._supervise(states)

    def _waiting_states(self, names: list[str]) -> dict[str, JSON]:
        current = {
            s.get("name"): s.get("state")
            for s in (self.pod.get("status") or {}).get("containerStatuses") or []
        }
        return {n: current.get(n) or waiting() for n in names}

    async def _prepare(self, containers: list[JSON]) -> list[ContainerPlan] | None:
        """Volumes, environment and commands, retried with backoff while a Secret, a key or an
        image is missing; None if the pod is stopped first."""
        delay = _SETUP_RETRY_FIRST
        config = self.kubelet.config
        kube = self.kubelet.kube
        while not self._stop.is_set():
            try:
                if (self.pod.get("spec") or {}).get("initContainers"):
                    raise config_error("init containers are not supported by the local executor")
                await self.files.prepare_volumes(kube.get_secret, kube.get_configmap)
                plans = []
                for container in containers:
                    argv = self._argv(container)
                    plans.append(
                        await self.files.plan(
                            container,
                            argv,
                            config.base_env,
                            config.extra_env,
                            kube.get_secret,
                            kube.get_configmap,
                        )
                    )
                return plans
            except SetupError as error:
                await self._setup_failed(containers, error)
            except Exception as error:  # the API server is unreachable, say: try again
                log.warning(
                    "pod %s: setup failed (%s)", describe(self.pod), error, extra=self.extra
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            delay = min(delay * 2, _SETUP_RETRY_MAX)
        return None

    def _argv(self, container: JSON) -> list[str]:
        if container.get("command"):
            return []
        image = str(container.get("image") or "")
        argv = lookup_image(self.kubelet.config.images, image)
        if argv is not None:
            return list(argv)
        tries = self._image_tries.get(image, 0)
        self._image_tries[image] = tries + 1
        if tries:
            raise SetupError("ImagePullBackOff", f'Back-off pulling image "{image}"', "BackOff")
        repo = image_candidates(image)[-1] if image else ""
        raise SetupError(
            "ErrImagePull" if image else "InvalidImageName",
            f'Failed to pull image "{image}": the local executor has no command for this image '
            f"and the container gives none (map it: --image {repo}=ARGV)",
        )

    async def _setup_failed(self, containers: list[JSON], error: SetupError) -> None:
        states = {str(c.get("name")): waiting(error.reason, error.message) for c in containers}
        await self.report(self._status("Pending", states))
        if error.message != self._last_setup_message:
            self._last_setup_message = error.message
            log.warning(
                "pod %s: %s: %s", describe(self.pod), error.reason, error.message, extra=self.extra
            )
            message = error.message
            if error.reason == "CreateContainerConfigError":
                message = f"Error: {message}"
            await self.kubelet.kube.event(self.pod, "Warning", error.event_reason, message)

    async def _start(
        self, containers: list[JSON], plans: list[ContainerPlan]
    ) -> dict[str, JSON] | None:
        states: dict[str, JSON] = {}
        kube = self.kubelet.kube
        for container, plan in zip(containers, plans, strict=True):
            if not container.get("command"):
                await kube.event(
                    self.pod,
                    "Normal",
                    "Pulled",
                    f'Container image "{container.get("image")}" already present on machine',
                )
            process = ContainerProcess(plan)
            try:
                await process.start()
            except StartError as error:
                log.warning("pod %s: %s", describe(self.pod), error, extra=self.extra)
                for other in self.processes.values():
                    await other.terminate(0)
                states = {
                    n: terminated(137, "Error", started_at=self.start_time) for n in self.processes
                }
                states[plan.name] = terminated(128, "StartError", message=str(error))
                await kube.event(self.pod, "Warning", "Failed", f"Error: {error}")
                await self._final(self._status("Failed", states))
                return None
            self.processes[plan.name] = process
            started = fmt_time(process.started_at or now())
            states[plan.name] = running(started)
            log.info(
                "pod %s: container %s started (pid %s), log at %s",
                describe(self.pod),
                plan.name,
                process.pid,
                plan.log_file,
                extra=self.extra,
            )
            await kube.event(self.pod, "Normal", "Created", f"Created container: {plan.name}")
            await kube.event(self.pod, "Normal", "Started", f"Started container {plan.name}")
        return states

    def _deadline(self) -> float | None:
        seconds = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        started = parse_time(self.start_time)
        if not isinstance(seconds, int) or started is None:
            return None
        remaining = (started + timedelta(seconds=seconds) - now()).total_seconds()
        return max(0.0, remaining)

    async def _supervise(self, states: dict[str, JSON]) -> None:
        waits = {asyncio.ensure_future(p.wait()): name for name, p in self.processes.items()}
        stopper = asyncio.ensure_future(self._stop.wait())
        reason = message = None
        try:
            while waits:
                done, _ = await asyncio.wait(
                    [*waits, stopper], timeout=self._deadline(), return_when="FIRST_COMPLETED"
                )
                if not done or stopper in done:
                    if not done:
                        reason, message = "DeadlineExceeded", DEADLINE_MESSAGE
                        self.stop_reason = self.stop_reason or "deadline"
                    await self._kill_all(waits.values())
                    for task in waits:
                        with contextlib.suppress(Exception):
                            await task
                    for name in waits.values():
                        states[name] = self._terminated_state(name)
                    waits.clear()
                    break
                for task in done:
                    name = waits.pop(task)
                    states[name] = self._terminated_state(name)
                if waits:
                    await self.report(self._status("Running", states))
        finally:
            stopper.cancel()
        codes = [s["terminated"]["exitCode"] for s in states.values() if "terminated" in s]
        phase = "Succeeded" if reason is None and codes and not any(codes) else "Failed"
        if self.shutting_down and phase == "Failed":
            reason, message = "Terminated", SHUTDOWN_MESSAGE
        await self._final(self._status(phase, states, reason=reason, message=message))

    def _terminated_state(self, name: str) -> JSON:
        process = self.processes[name]
        code = process.returncode if process.returncode is not None else 137
        failed = code != 0
        return terminated(
            code,
            "Error" if failed else "Completed",
            message=process.termination_message(failed),
            started_at=fmt_time(process.started_at) if process.started_at else None,
            finished_at=fmt_time(process.finished_at or now()),
            container_id=f"local://{process.pid}",
        )

    async def _kill_all(self, names: Any) -> None:
        cap = STOP_GRACE_SECONDS if self.shutting_down else MAX_GRACE_SECONDS
        grace = grace_seconds(self.pod, cap)
        for name in names:
            log.info(
                "pod %s: stopping container %s (%s, grace %ss)",
                describe(self.pod),
                name,
                self.stop_reason,
                grace,
                extra=self.extra,
            )
            if not self.shutting_down:
                await self.kubelet.kube.event(
                    self.pod, "Normal", "Killing", f"Stopping container {name}"
                )
        await asyncio.gather(
            *(self.processes[n].terminate(grace) for n in names), return_exceptions=True
        )

    async def _final(self, status: JSON) -> None:
        # Private files go as soon as the containers are done, before the status is written.
        for process in self.processes.values():
            process.kill()
        self.files.remove()
        await self.kubelet.report(self.pod, status, final=True, shutdown=self.shutting_down)
        log.info(
            "pod %s: %s%s",
            describe(self.pod),
            status["phase"],
            f" ({status['reason']})" if status.get("reason") else "",
            extra=self.extra,
        )


class Kubelet:
    def __init__(self, config: ExecutorConfig, kube: Kube, scheduler: Kube, pods: Informer):
        self.config = config
        self.kube = kube
        self.scheduler = scheduler
        self.pods = pods
        self.workers: dict[str, PodWorker] = {}
        self.waiting: OrderedDict[str, JSON] = OrderedDict()
        self._unschedulable: set[str] = set()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        # One status write at a time per pod, so they land in the order they were decided.
        self._report_locks: dict[str, asyncio.Lock] = {}
        self._stopping = False

    # --- wiring ---------------------------------------------------------------------------

    def start(self) -> None:
        """Adopts the pods bound to this node as they are, then follows their changes."""
        mine = sorted(
            (p for p in self.pods.values() if self._ours(p)),
            key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]),
        )
        for pod in mine:
            self._adopt(pod)
        self.pods.handlers.append(self._on_pod)
        self._schedule()

    def _ours(self, pod: JSON) -> bool:
        return (pod.get("spec") or {}).get("nodeName") == self.config.node_name

    def _adopt(self, pod: JSON) -> None:
        if is_terminal(pod):
            return
        status = pod.get("status") or {}
        was_running = status.get("phase") == "Running" or any(
            "running" in (cs.get("state") or {}) for cs in status.get("containerStatuses") or []
        )
        if was_running or pod["metadata"].get("deletionTimestamp"):
            # Its process belonged to an executor that is gone (it died with it).
            self._forget_lost(pod)
            return
        self._enqueue(pod)

    def _forget_lost(self, pod: JSON) -> None:
        uid = uid_of(pod)
        self._remember_finished(uid)
        containers = (pod.get("spec") or {}).get("containers") or []
        previous = {
            cs.get("name"): cs.get("state") or {}
            for cs in (pod.get("status") or {}).get("containerStatuses") or []
        }
        states: dict[str, JSON] = {}
        for c in containers:
            name = str(c.get("name"))
            before = previous.get(name) or {}
            if "terminated" in before:
                states[name] = before
            elif "running" in before:
                states[name] = terminated(
                    137,
                    LOST_REASON,
                    message=LOST_MESSAGE,
                    started_at=before["running"].get("startedAt"),
                )
            else:
                states[name] = before or waiting()
        start = (pod.get("status") or {}).get("startTime") or fmt_time(now())
        status = pod_status(pod, "Failed", states, start_time=start)
        log.warning("pod %s: no process for it any more; Failed", describe(pod))
        self._spawn(self.report(pod, status, final=True))

    async def stop(self) -> None:
        """Kills every container (SIGTERM, then SIGKILL after at most a few seconds), reports
        the pods Failed as a kubelet does on a graceful node shutdown, removes their files."""
        self._stopping = True
        with contextlib.suppress(ValueError):
            self.pods.handlers.remove(self._on_pod)
        workers = list(self.workers.values())
        for worker in workers:
            worker.request_stop("shutdown")
        tasks = [w.task for w in workers if w.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_SECONDS + 10)
        for task in [*tasks, *self._tasks]:
            task.cancel()
        await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
        for worker in workers:
            for process in worker.processes.values():
                process.kill()
            worker.files.remove()

    # --- events ---------------------------------------------------------------------------

    def _on_pod(self, event_type: str, pod: JSON) -> None:
        if not self._ours(pod) or self._stopping:
            return
        uid = uid_of(pod)
        worker = self.workers.get(uid)
        if event_type == "DELETED":
            if worker is not None:
                worker.request_stop("deleted", pod)
            self.waiting.pop(uid, None)
            self._unschedulable.discard(uid)
            return
        if worker is not None:
            worker.pod = pod
            if pod["metadata"].get("deletionTimestamp"):
                worker.request_stop("deleted", pod)
            return
        if uid in self._finished or is_terminal(pod):
            return
        if pod["metadata"].get("deletionTimestamp"):
            self.waiting.pop(uid, None)
            self._forget_lost(pod)
            return
        if uid in self.waiting:
            self.waiting[uid] = pod
            return
        self._enqueue(pod)
        self._schedule()

    def _enqueue(self, pod: JSON) -> None:
        self.waiting[uid_of(pod)] = pod

    def _schedule(self) -> None:
        if self._stopping:
            return
        while self.waiting and len(self.workers) < self.config.max_pods:
            uid, pod = self.waiting.popitem(last=False)
            self._unschedulable.discard(uid)
            self._admit(pod)
        for uid, pod in list(self.waiting.items()):
            if uid not in self._unschedulable:
                self._unschedulable.add(uid)
                self._spawn(self._report_unschedulable(pod))

    def _admit(self, pod: JSON) -> None:
        worker = PodWorker(self, pod)
        self.workers[worker.uid] = worker
        meta = pod["metadata"]
        self._spawn(
            self.scheduler.event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta.get('namespace')}/{meta['name']} "
                f"to {self.config.node_name}",
            )
        )
        worker.task = asyncio.get_running_loop().create_task(
            worker.run(), name=f"pod-{meta['name']}"
        )

    def release(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]
        self._remember_finished(worker.uid)
        self._schedule()

    def _remember_finished(self, uid: str) -> None:
        self._finished[uid] = None
        while len(self._finished) > _FINISHED_MEMORY:
            self._finished.popitem(last=False)

    async def _report_unschedulable(self, pod: JSON) -> None:
        log.info("pod %s: Pending, the node is full", describe(pod), extra=log_extra(pod))
        await self.scheduler.event(pod, "Warning", "FailedScheduling", UNSCHEDULABLE)
        uid = uid_of(pod)
        async with self._lock(uid):
            if uid in self.waiting:
                await self._patch(pod, unschedulable(pod), attempts=5)

    def _lock(self, uid: str) -> asyncio.Lock:
        return self._report_locks.setdefault(uid, asyncio.Lock())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- the status manager ---------------------------------------------------------------

    async def report(self, pod: JSON, status: JSON, *, final: bool, shutdown: bool = False) -> None:
        """PATCH pods/status, retried until it lands (a final one) or given up after a few
        tries (an intermediate one; the next report carries the news anyway)."""
        uid = uid_of(pod)
        async with self._lock(uid):
            await self._patch(pod, status, attempts=1 if shutdown else (None if final else 5))
        if final:
            self._report_locks.pop(uid, None)

    async def _patch(self, pod: JSON, status: JSON, attempts: int | None) -> None:
        meta = pod["metadata"]
        namespace, name = str(meta.get("namespace") or ""), str(meta["name"])
        delay = 0.2
        tried = 0
        while True:
            tried += 1
            try:
                updated = await self.kube.patch_pod_status(namespace, name, status)
                if updated is not None and uid_of(updated) == uid_of(pod):
                    self.pods.put(updated)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if attempts is not None and tried >= attempts:
                    log.warning("pod %s: status not reported (%s)", describe(pod), error)
                    return
                log.info("pod %s: status report failed (%s); retrying", describe(pod), error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _REPORT_RETRY_MAX)
