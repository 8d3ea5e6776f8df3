"""The TTL-after-finished controller: deletes a finished Job `ttlSecondsAfterFinished` seconds
after its Complete or Failed condition, as kube's does: it reads the Job afresh before deleting,
and deletes with propagationPolicy Foreground, so the API server's garbage collector removes the
Job's pods before the Job itself goes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from lightkube.types import CascadeType

from permisos.workqueue import WorkQueue

from .informer import Informer, Key
from .jobstatus import finished
from .kube import JSON, Kube, key_of, now, parse_time, uid_of

log = logging.getLogger("permisos.executor.ttl")

_RETRY_SECONDS = 1.0


def seconds_left(job: JSON) -> float | None:
    """Seconds until a finished Job with a TTL expires (<= 0: now); None if it never does."""
    if job["metadata"].get("deletionTimestamp"):
        return None
    ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
    ended = finished(job)
    if not isinstance(ttl, int) or ended is None:
        return None
    at = parse_time(ended.get("lastTransitionTime"))
    if at is None:
        return None
    return (at + timedelta(seconds=ttl) - now()).total_seconds()


class TtlController:
    def __init__(self, kube: Kube, jobs: Informer) -> None:
        self.kube = kube
        self.jobs = jobs
        self.queue: WorkQueue[Key] = WorkQueue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.jobs.handlers.append(self._on_job)
        for job in self.jobs.values():
            self._on_job("ADDED", job)
        self._task = asyncio.get_running_loop().create_task(self._work(), name="ttl-controller")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.jobs.handlers.remove(self._on_job)
        self.queue.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _on_job(self, event_type: str, job: JSON) -> None:
        if event_type == "DELETED":
            return
        left = seconds_left(job)
        if left is not None:
            self.queue.add_after(key_of(job), left)

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self._expire(key)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("job %s/%s: TTL cleanup failed (%s); retrying", *key, error)
                self.queue.add_after(key, _RETRY_SECONDS)
            finally:
                self.queue.done(key)

    async def _expire(self, key: Key) -> None:
        cached = self.jobs.get(key)
        left = seconds_left(cached) if cached is not None else None
        if left is None:
            return
        if left > 0:
            self.queue.add_after(key, left)
            return
        # The TTL may have changed since the cache saw it: decide on the Job as it is now.
        fresh = await self.kube.get_job(*key)
        if fresh is None or uid_of(fresh) != uid_of(cached or fresh):
            return
        left = seconds_left(fresh)
        if left is None:
            return
        if left > 0:
            self.queue.add_after(key, left)
            return
        await self.kube.delete_job(key[0], key[1], CascadeType.FOREGROUND)
        log.info(
            "job %s/%s: deleted %ss after it finished (ttlSecondsAfterFinished)",
            *key,
            (fresh.get("spec") or {}).get("ttlSecondsAfterFinished"),
            extra={"job": key[1]},
        )
