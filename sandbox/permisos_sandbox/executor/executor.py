"""JobExecutor: the Job controller, scheduler, kubelet and TTL controller of one local node."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType, TracebackType

from lightkube import AsyncClient, KubeConfig
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import Pod

from .informer import Informer
from .jobcontroller import JobController
from .kube import Kube
from .kubelet import Kubelet
from .settings import (
    DEFAULT_BACKOFF_SECONDS,
    NO_ENV,
    NO_IMAGES,
    ExecutorConfig,
)
from .ttl import TtlController

log = logging.getLogger("permisos.executor")

SYNC_TIMEOUT_SECONDS = 30.0
WORKDIR_PREFIX = "permisos-executor-"
PID_FILE = "executor.pid"


def _sweep_dead_workdirs() -> None:
    """Removes the temporary directories of executors that died without cleaning up (their
    pods' Secret files may still be there)."""
    for candidate in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        try:
            if candidate.stat().st_uid != os.getuid():
                continue
            pid = int((candidate / PID_FILE).read_text())
        except (OSError, ValueError):
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(candidate, ignore_errors=True)
        except PermissionError:
            continue


class JobExecutor:
    """Runs the Jobs of a Kubernetes API server as local processes.

    >>> async with JobExecutor(Path("var/kubeconfig"), max_pods=2) as executor:
    ...     ...  # Jobs created now get pods, the pods run, Jobs complete or fail
    """

    def __init__(
        self,
        kubeconfig: Path,
        *,
        namespace: str | None = None,
        max_pods: int | None = None,
        images: Mapping[str, Sequence[str]] = NO_IMAGES,
        workdir: Path | None = None,
        extra_env: Mapping[str, str] = NO_ENV,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
    ) -> None:
        if max_pods is not None and max_pods < 1:
            raise ValueError("max_pods must be at least 1")
        self.kubeconfig = Path(kubeconfig)
        self.namespace = namespace
        self.max_pods = max_pods or os.cpu_count() or 1
        self.images = MappingProxyType({k: tuple(v) for k, v in images.items()})
        self.extra_env = MappingProxyType(dict(extra_env))
        self.backoff_seconds = backoff_seconds
        self._requested_workdir = Path(workdir) if workdir is not None else None
        self._own_workdir = False
        self.config: ExecutorConfig | None = None
        self._client: AsyncClient | None = None
        self._informers: list[Informer] = []
        self._kubelet: Kubelet | None = None
        self._jobs: JobController | None = None
        self._ttl: TtlController | None = None

    @property
    def workdir(self) -> Path:
        if self.config is None:
            raise RuntimeError("the executor has not started")
        return self.config.workdir

    @property
    def logs_dir(self) -> Path:
        """Container logs: `<namespace>_<pod>_<uid>/<container>.log`."""
        return self.workdir / "logs"

    async def __aenter__(self) -> JobExecutor:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Lists Jobs and pods, adopts them as they are, and starts working; returns once the
        caches are filled (raises if the API server cannot be reached within 30 s)."""
        if self.config is not None:
            raise RuntimeError("the executor is already running")
        self.config = ExecutorConfig(
            kubeconfig=self.kubeconfig,
            namespace=self.namespace,
            max_pods=self.max_pods,
            images=self.images,
            workdir=self._prepare_workdir(),
            extra_env=self.extra_env,
            backoff_seconds=self.backoff_seconds,
        )
        try:
            await self._start(self.config)
        except BaseException:
            await self.stop()
            raise
        log.info(
            "executor on node %s: %s, at most %d pods at once, files under %s",
            self.config.node_name,
            f"namespace {self.namespace}" if self.namespace else "all namespaces",
            self.max_pods,
            self.config.workdir,
        )

    def _prepare_workdir(self) -> Path:
        if self._requested_workdir is None:
            _sweep_dead_workdirs()
            self._own_workdir = True
            workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
        else:
            workdir = self._requested_workdir
            workdir.mkdir(parents=True, exist_ok=True)
            # Private files an earlier executor could not remove (it was killed) go now.
            shutil.rmtree(workdir / "pods", ignore_errors=True)
        (workdir / PID_FILE).write_text(str(os.getpid()))
        return workdir

    async def _start(self, config: ExecutorConfig) -> None:
        for directory in (config.pods_dir, config.logs_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._client = AsyncClient(
            KubeConfig.from_file(str(config.kubeconfig)), field_manager="permisos-executor"
        )
        jobs = Informer(self._client, Job, config.namespace)
        pods = Informer(self._client, Pod, config.namespace)
        self._informers = [jobs, pods]
        for informer in self._informers:
            informer.start()
        await asyncio.wait_for(
            asyncio.gather(*(i.synced.wait() for i in self._informers)), SYNC_TIMEOUT_SECONDS
        )
        self._kubelet = Kubelet(
            config,
            Kube(self._client, "kubelet", host=config.node_name),
            Kube(self._client, "default-scheduler"),
            pods,
        )
        self._jobs = JobController(config, Kube(self._client, "job-controller"), jobs, pods)
        self._ttl = TtlController(Kube(self._client, "ttl-after-finished-controller"), jobs)
        self._kubelet.start()
        self._jobs.start()
        self._ttl.start()

    async def stop(self) -> None:
        """Stops creating pods, kills every process it started, reports those pods Failed
        (a graceful node shutdown), and removes every private file it wrote."""
        if self._ttl is not None:
            await self._ttl.stop()
        if self._jobs is not None:
            await self._jobs.stop()
        if self._kubelet is not None:
            await self._kubelet.stop()
        for informer in self._informers:
            await informer.stop()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
        if self.config is not None:
            shutil.rmtree(self.config.pods_dir, ignore_errors=True)
            (self.config.workdir / PID_FILE).unlink(missing_ok=True)
            if self._own_workdir:
                shutil.rmtree(self.config.workdir, ignore_errors=True)
        self._ttl = self._jobs = self._kubelet = None
        self._informers = []
        self._client = None
        self.config = None
