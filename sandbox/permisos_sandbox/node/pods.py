"""One pod on this node, from its volumes to its final status: the kubelet's pod worker.

Containers run as local processes (`process.py`) and are restarted as the pod's restartPolicy
says, with the kubelet's back-off (CrashLoopBackOff); probes (`probes.py`) decide readiness and
kill a container whose liveness probe fails. A pod being deleted gets SIGTERM, its grace period,
then SIGKILL; once its final status is written, the pod object is deleted (grace 0), as the
kubelet's status manager does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from permisos.kube import JSON, fmt_time, now, parse_time

from .config import (
    BACKOFF_FIRST_SECONDS,
    BACKOFF_MAX_SECONDS,
    BACKOFF_RESET_SECONDS,
    DEFAULT_GRACE_SECONDS,
    MAX_GRACE_SECONDS,
    NODE_IP,
    STOP_GRACE_SECONDS,
)
from .files import ContainerPlan, PodFiles, SetupError, config_error
from .images import lookup_image
from .network import PodNetwork, entering
from .probes import Probe, probes_of
from .process import ContainerProcess, StartError
from .status import condition, pod_status, running, terminated, waiting

if TYPE_CHECKING:
    from .agent import NodeAgent

log = logging.getLogger("permisos.node.pods")

_SETUP_RETRY_FIRST = 1.0
_SETUP_RETRY_MAX = 10.0
_REPORT_RETRY_MAX = 5.0
LOST_REASON = "ContainerStatusUnknown"
LOST_MESSAGE = "The container could not be located when the pod was terminated"
SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def log_extra(pod: Mapping[str, Any]) -> dict[str, str]:
    """The identifiers a log line may carry: the Job and, for runner pods, the PermitRequest
    and attempt (from labels; never anything personal)."""
    labels = pod["metadata"].get("labels") or {}
    extra = {"job": labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")}
    extra["permitrequest"] = labels.get("permisosdigitales.mx/permitrequest")
    extra["attempt"] = labels.get("permisosdigitales.mx/attempt")
    return {k: v for k, v in extra.items() if v}


def describe(pod: Mapping[str, Any]) -> str:
    meta = pod["metadata"]
    return f"{meta.get('namespace')}/{meta['name']}"


def grace_seconds(pod: Mapping[str, Any], cap: float = MAX_GRACE_SECONDS) -> float:
    """The pod's grace period: the deletion's when it gave one, else the spec's; capped."""
    meta, spec = pod["metadata"], pod.get("spec") or {}
    deletion = meta.get("deletionGracePeriodSeconds")
    grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS)
    if isinstance(deletion, int) and deletion >= 0:
        grace = deletion
    if not isinstance(grace, int | float) or grace < 0:
        grace = DEFAULT_GRACE_SECONDS
    return float(min(grace, cap))


def _ready(pod: Mapping[str, Any]) -> str | None:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c.get("status") for c in conditions if c.get("type") == "Ready"), None)


def next_backoff(current: float) -> float:
    return min(max(current * 2, BACKOFF_FIRST_SECONDS), BACKOFF_MAX_SECONDS)


@dataclasses.dataclass
class Container:
    """One container of the pod and what the kubelet knows of it."""

    spec: JSON
    state: JSON
    restart_count: int = 0
    last_state: JSON = dataclasses.field(default_factory=dict)
    ready: bool = False
    started: bool = False
    done: bool = False  # will not run again (restart policy, or the pod stopping)
    plan: ContainerPlan | None = None
    process: ContainerProcess | None = None

    @property
    def name(self) -> str:
        return str(self.spec.get("name"))

    def extra(self) -> JSON:
        return {
            "restartCount": self.restart_count,
            "lastState": self.last_state,
            "ready": self.ready,
            "started": self.started,
        }


class PodWorker:
    def __init__(self, agent: NodeAgent, pod: JSON) -> None:
        self.agent = agent
        self.pod = pod
        self.uid = str(pod["metadata"]["uid"])
        config = agent.config
        self.files = PodFiles(
            config.pods_dir, config.logs_dir, pod, real_mounts=config.mount_namespaces
        )
        status = pod.get("status") or {}
        self.start_time = str(status.get("startTime") or fmt_time(now()))
        self.containers = [
            Container(spec=c, state=waiting())
            for c in (pod.get("spec") or {}).get("containers") or []
        ]
        self.stop_reason: str | None = None  # deleted | shutdown | deadline | gone
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()
        self._closing = False
        self.task: asyncio.Task[None] | None = None
        self._last_setup_message: str | None = None
        # Its own address once its network namespace is made; the machine's without one.
        self.pod_ip: str | None = NODE_IP if self._network is None else None
        self._adopt(status)

    @property
    def extra(self) -> dict[str, str]:
        return log_extra(self.pod)

    @property
    def _network(self) -> PodNetwork | None:
        """The node's pod network, unless the pod asks for the machine's (`hostNetwork`)."""
        host_network = bool((self.pod.get("spec") or {}).get("hostNetwork"))
        return None if host_network else self.agent.network

    @property
    def restart_policy(self) -> str:
        return str((self.pod.get("spec") or {}).get("restartPolicy") or "Always")

    @property
    def shutting_down(self) -> bool:
        return self.stop_reason == "shutdown"

    def _adopt(self, status: JSON) -> None:
        """A pod this node was running before the agent restarted: its processes died with the
        old agent, so a container that was running ended (the kubelet's words for one it cannot
        find) and runs again only if the restart policy says so."""
        before = {cs.get("name"): cs for cs in status.get("containerStatuses") or []}
        for container in self.containers:
            old = before.get(container.name)
            if not old:
                continue
            container.restart_count = int(old.get("restartCount") or 0)
            container.last_state = old.get("lastState") or {}
            state = old.get("state") or {}
            if "running" in state:
                state = terminated(
                    137,
                    LOST_REASON,
                    message=LOST_MESSAGE,
                    started_at=state["running"].get("startedAt"),
                )
            if "terminated" not in state:
                continue
            code = int(state["terminated"].get("exitCode") or 0)
            if self._restarts(code):
                container.last_state = state
                container.restart_count += 1
            else:
                container.state = state
                container.done = True

    def _restarts(self, code: int) -> bool:
        policy = self.restart_policy
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    def update(self, pod: JSON) -> None:
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.request_stop("deleted")
        elif _ready(pod) != _ready({"status": self._status(self._phase())}):
            # Someone else rewrote what this node reports (the node lifecycle controller marks
            # the pods of a node it lost touch with not Ready): reported again, as the kubelet's
            # status manager reconciles, or the pod would stay out of its Services.
            self._changed()

    def request_stop(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    # --- status ---------------------------------------------------------------------------

    def _changed(self) -> None:
        self._dirty.set()

    def _phase(self) -> str:
        if all(c.done for c in self.containers):
            codes = [
                int((c.state.get("terminated") or {}).get("exitCode", 1)) for c in self.containers
            ]
            return "Succeeded" if codes and not any(codes) else "Failed"
        ever_ran = any(
            "waiting" not in c.state or c.restart_count or c.last_state for c in self.containers
        )
        return "Running" if ever_ran else "Pending"

    def _status(self, phase: str, reason: str | None = None, message: str | None = None) -> JSON:
        ids = {
            c.name: f"local://{c.process.pid}"
            for c in self.containers
            if c.process is not None and c.process.pid
        }
        status = pod_status(
            self.pod,
            phase,
            {c.name: c.state for c in self.containers},
            start_time=self.start_time,
            container_ids=ids,
            reason=reason,
            message=message,
            extras={c.name: c.extra() for c in self.containers},
            pod_ip=self.pod_ip,
        )
        if self.shutting_down and phase == "Failed":
            status["conditions"].append(
                condition("DisruptionTarget", True, "TerminationByKubelet", SHUTDOWN_MESSAGE)
            )
        return status

    async def _reporter(self) -> None:
        """Writes the latest status whenever something changed, one write at a time, so they
        land in the order they were decided; stops when the final one is due."""
        while not self._closing:
            await self._dirty.wait()
            self._dirty.clear()
            if self._closing:
                return
            if not await self._write(self._status(self._phase()), attempts=5):
                # The apiserver away: the latest status goes again a little later even if
                # nothing changes meanwhile, as the kubelet's status manager resyncs.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), _REPORT_RETRY_MAX)
                self._dirty.set()

    async def _write(self, status: JSON, attempts: int | None) -> bool:
        """PATCH pods/status until it lands, the pod is gone, or `attempts` are used up (an
        intermediate report: the reporter sends the latest one again); False in that case."""
        delay = 0.2
        tried = 0
        while True:
            tried += 1
            try:
                await self.agent.api.patch_status(self.pod, status)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if getattr(error, "status", None) in (404, 409):
                    return True  # deleted, or a new pod of the same name: nothing to report
                if attempts is not None and tried >= attempts:
                    log.warning("pod %s: status not reported (%s)", describe(self.pod), error)
                    return False
                log.info("pod %s: status report failed (%s); retrying", describe(self.pod), error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _REPORT_RETRY_MAX)

    async def event(self, type_: str, reason: str, message: str) -> None:
        if not self.shutting_down:
            await self.agent.api.event(self.pod, type_, reason, message)

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s: the node agent failed", describe(self.pod), extra=self.extra)
        finally:
            self._kill_now()
            self.files.remove()
            if self._network is not None:
                await self._network.detach(self.uid)
            self.agent.release(self)

    async def _run(self) -> None:
        reporter = asyncio.create_task(self._reporter())
        self._changed()
        pending = not all(c.done for c in self.containers)
        if pending and self._network is not None:
            # The pod's sandbox first, as the kubelet makes it: its address is then reported.
            self.pod_ip = await self._network.attach(self.uid)
            self._changed()
        plans = await self._prepare() if pending else None
        if plans is not None and self._network is not None:
            for plan in plans.values():
                plan.netns = self._network.path(self.uid)
        reason = message = None
        if plans is not None:
            reason, message = await self._supervise(plans)
        elif not all(c.done for c in self.containers):
            for container in self.containers:
                container.done = True  # stopped before anything could start
        if self.shutting_down:
            reason, message = "Terminated", SHUTDOWN_MESSAGE
        await self._finish(reporter, reason, message)

    async def _prepare(self) -> dict[str, ContainerPlan] | None:
        """Volumes, environment and commands, retried with back-off while a Secret, a key or an
        image is missing; None if the pod is stopped first."""
        delay = _SETUP_RETRY_FIRST
        image_backoff = 0.0
        api = self.agent.api
        while not self._stop.is_set():
            try:
                if (self.pod.get("spec") or {}).get("initContainers"):
                    raise config_error("init containers are not supported by the node agent")
                argvs = {c.name: self._argv(c.spec) for c in self.containers}
                await self.files.prepare_volumes(api.get_secret, api.get_configmap, api.token)
                plans = {}
                for container in self.containers:
                    plans[container.name] = await self.files.plan(
                        container.spec,
                        argvs[container.name],
                        self.agent.config.base_env,
                        self.agent.container_env,
                        api.get_secret,
                        api.get_configmap,
                    )
                return plans
            except SetupError as error:
                await self._setup_failed(error)
                if error.reason == "ErrImagePull":
                    image_backoff = next_backoff(image_backoff)
                    await self._wait_stop(1.0)
                    image = error.message.split('"')[1] if '"' in error.message else ""
                    backoff = SetupError(
                        "ImagePullBackOff", f'Back-off pulling image "{image}"', "BackOff"
                    )
                    await self._setup_failed(backoff)
                    await self._wait_stop(image_backoff)
                    continue
            except Exception as error:  # the API unreachable, say: try again
                log.warning(
                    "pod %s: setup failed (%s)", describe(self.pod), error, extra=self.extra
                )
            await self._wait_stop(delay)
            delay = min(delay * 2, _SETUP_RETRY_MAX)
        return None

    async def _wait_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def _argv(self, container: JSON) -> list[str]:
        """The image's command; an image missing from the map cannot be pulled."""
        image = str(container.get("image") or "")
        if not image:
            raise SetupError("InvalidImageName", "the container names no image")
        argv = lookup_image(self.agent.config.images, image)
        if argv is None:
            raise SetupError(
                "ErrImagePull",
                f'Failed to pull image "{image}": this node has no command for the image '
                "(add it to the node agent's image map)",
            )
        return [] if container.get("command") else list(argv)

    async def _setup_failed(self, error: SetupError) -> None:
        for container in self.containers:
            if not container.done:
                container.state = waiting(error.reason, error.message)
        self._changed()
        if error.message != self._last_setup_message:
            self._last_setup_message = error.message
            log.warning(
                "pod %s: %s: %s", describe(self.pod), error.reason, error.message, extra=self.extra
            )
            message = error.message
            if error.reason in ("CreateContainerConfigError", "ErrImagePull"):
                message = f"Error: {message}" if error.reason != "ErrImagePull" else message
            await self.event("Warning", error.event_reason, message)

    def _deadline(self) -> float | None:
        seconds = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        started = parse_time(self.start_time)
        if not isinstance(seconds, int) or started is None:
            return None
        return max(0.0, (started + timedelta(seconds=seconds) - now()).total_seconds())

    async def _supervise(self, plans: dict[str, ContainerPlan]) -> tuple[str | None, str | None]:
        runs = [
            asyncio.create_task(self._run_container(c, plans[c.name]))
            for c in self.containers
            if not c.done
        ]
        refresher = asyncio.create_task(self._refresh_tokens())
        stopper: asyncio.Task[Any] = asyncio.create_task(self._stop.wait())
        reason = message = None
        try:
            pending: set[asyncio.Task[Any]] = set(runs)
            while pending:
                done, pending = await asyncio.wait(
                    [*pending, stopper], timeout=self._deadline(), return_when="FIRST_COMPLETED"
                )
                if not done:
                    reason, message = "DeadlineExceeded", DEADLINE_MESSAGE
                    self.request_stop("deadline")
                    await self.event("Normal", "DeadlineExceeded", DEADLINE_MESSAGE)
                if self._stop.is_set():
                    await self._kill_all()
                    await asyncio.gather(*runs, return_exceptions=True)
                    break
                pending.discard(stopper)
        finally:
            stopper.cancel()
            refresher.cancel()
        for run in runs:
            if run.done() and not run.cancelled() and run.exception() is not None:
                log.error("pod %s: %s", describe(self.pod), run.exception(), extra=self.extra)
        return reason, message

    async def _refresh_tokens(self) -> None:
        api = self.agent.api
        while self.files.token_refresh_at is not None:
            await asyncio.sleep(max((self.files.token_refresh_at - now()).total_seconds(), 1.0))
            try:
                await self.files.refresh_tokens(api.token)
            except SetupError as error:
                log.warning("pod %s: %s", describe(self.pod), error.message, extra=self.extra)
                await asyncio.sleep(10)

    async def _run_container(self, container: Container, plan: ContainerPlan) -> None:
        """Starts the container, again and again as the restart policy says, until it is done
        or the pod stops."""
        backoff = 0.0
        while not self._stop.is_set():
            log_dir = plan.log_file.parent / container.name
            log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            attempt = dataclasses.replace(plan, log_file=log_dir / f"{container.restart_count}.log")
            code = await self._run_once(container, attempt)
            self._changed()
            if self._stop.is_set() or not self._restarts(code):
                break
            ran = (
                (container.process.finished_at - container.process.started_at).total_seconds()
                if (
                    container.process
                    and container.process.started_at
                    and container.process.finished_at
                )
                else 0.0
            )
            if ran >= BACKOFF_RESET_SECONDS:
                backoff = 0.0
            backoff = next_backoff(backoff)
            container.last_state = container.state
            meta = self.pod["metadata"]
            who = f"container={container.name} pod={meta['name']}_{meta['namespace']}({self.uid})"
            container.state = waiting(
                "CrashLoopBackOff", f"back-off {backoff:g}s restarting failed {who}"
            )
            self._changed()
            await self.event(
                "Warning", "BackOff", f"Back-off restarting failed container {container.name}"
            )
            await self._wait_stop(backoff)
            if self._stop.is_set():
                break
            container.restart_count += 1
        container.done = True

    async def _run_once(self, container: Container, plan: ContainerPlan) -> int:
        if not container.restart_count:
            await self.event(
                "Normal",
                "Pulled",
                f'Container image "{container.spec.get("image")}" already present on machine',
            )
        process = ContainerProcess(plan)
        container.plan, container.process = plan, process
        try:
            await process.start()
        except StartError as error:
            log.warning("pod %s: %s", describe(self.pod), error, extra=self.extra)
            container.state = terminated(128, "StartError", message=str(error))
            await self.event("Warning", "Failed", f"Error: {error}")
            return 128
        enter = entering(plan.netns) if plan.netns else ()
        probes = probes_of(container.spec, self.pod_ip or NODE_IP, enter)
        container.started = "startup" not in probes
        container.ready = "readiness" not in probes
        container.state = running(fmt_time(process.started_at or now()))
        self._changed()
        log.info(
            "pod %s: container %s started (pid %s), log at %s",
            describe(self.pod),
            container.name,
            process.pid,
            plan.log_file,
            extra=self.extra,
        )
        await self.event("Normal", "Created", f"Created container: {container.name}")
        await self.event("Normal", "Started", f"Started container {container.name}")
        prober = asyncio.create_task(self._probe(container, process, probes))
        try:
            code = await process.wait()
        finally:
            prober.cancel()
        container.ready = False
        failed = code != 0
        container.state = terminated(
            code,
            "Error" if failed else "Completed",
            message=process.termination_message(failed),
            started_at=fmt_time(process.started_at) if process.started_at else None,
            finished_at=fmt_time(process.finished_at or now()),
            container_id=f"local://{process.pid}",
        )
        return code

    async def _probe(
        self, container: Container, process: ContainerProcess, probes: dict[str, Probe]
    ) -> None:
        env = process.plan.env
        startup = probes.get("startup")
        if startup is not None:
            if not await self._probe_loop(container, startup, env, until_success=True):
                await self._restart_unhealthy(container, process, "startup")
                return
            container.started = True
            self._changed()
        loops = [
            self._probe_loop(container, probes[kind], env)
            for kind in ("readiness", "liveness")
            if kind in probes
        ]
        results = await asyncio.gather(*loops)
        if "liveness" in probes and not results[-1]:
            await self._restart_unhealthy(container, process, "liveness")

    async def _probe_loop(
        self,
        container: Container,
        probe: Probe,
        env: Mapping[str, str],
        until_success: bool = False,
    ) -> bool:
        """Runs one probe every period. Readiness goes on for ever, flipping `ready`; liveness
        and startup return False once `failureThreshold` runs in a row failed (startup returns
        True at its first success)."""
        await asyncio.sleep(probe.initial_delay)
        successes = failures = 0
        while True:
            ok, why = await probe.check(env)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if probe.kind == "readiness":
                ready = container.ready
                if ok and successes >= probe.success_threshold:
                    ready = True
                elif not ok and failures >= probe.failure_threshold:
                    ready = False
                if ready != container.ready:
                    container.ready = ready
                    self._changed()
                    if not ready:
                        await self.event("Warning", "Unhealthy", why)
            elif ok and until_success:
                return True
            elif not ok:
                await self.event("Warning", "Unhealthy", why)
                if failures >= probe.failure_threshold:
                    return False
            await asyncio.sleep(probe.period)

    async def _restart_unhealthy(
        self, container: Container, process: ContainerProcess, kind: str
    ) -> None:
        message = f"Container {container.name} failed {kind} probe, will be restarted"
        log.info("pod %s: %s", describe(self.pod), message, extra=self.extra)
        await self.event("Normal", "Killing", message)
        await process.terminate(grace_seconds(self.pod))

    async def _kill_all(self) -> None:
        cap = STOP_GRACE_SECONDS if self.shutting_down else MAX_GRACE_SECONDS
        grace = grace_seconds(self.pod, cap)
        live = [
            c for c in self.containers if c.process is not None and c.process.returncode is None
        ]
        for container in live:
            log.info(
                "pod %s: stopping container %s (%s, grace %ss)",
                describe(self.pod),
                container.name,
                self.stop_reason,
                grace,
                extra=self.extra,
            )
            await self.event("Normal", "Killing", f"Stopping container {container.name}")
        await asyncio.gather(
            *(c.process.terminate(grace) for c in live if c.process is not None),
            return_exceptions=True,
        )

    def _kill_now(self) -> None:
        for container in self.containers:
            if container.process is not None:
                container.process.kill()

    async def _finish(
        self, reporter: asyncio.Task[None], reason: str | None, message: str | None
    ) -> None:
        """Private files go as soon as the containers are done, before anything is written;
        then the final status (retried until it lands), then the delete a deleted pod waits
        for."""
        self._kill_now()
        self.files.remove()
        self._closing = True
        self._dirty.set()
        with contextlib.suppress(Exception):
            await reporter
        if self.stop_reason == "gone":
            return  # the object is gone already: nothing to report to
        phase = self._phase()
        attempts = 1 if self.shutting_down else None
        await self._write(self._status(phase, reason, message), attempts)
        log.info(
            "pod %s: %s%s",
            describe(self.pod),
            phase,
            f" ({reason})" if reason else "",
            extra=self.extra,
        )
        if self.pod["metadata"].get("deletionTimestamp") and not self.shutting_down:
            await self.agent.delete_pod(self.pod)
