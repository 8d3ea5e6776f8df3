"""The Job controller (batch/v1, NonIndexed): pods for Jobs, their counts, and how Jobs end.

Level-triggered like kube's: each sync reads the Job and its pods from the caches and moves one
step. Pods carry the `batch.kubernetes.io/job-tracking` finalizer until the controller has
counted them (through `status.uncountedTerminatedPods`), so a pod deleted while it runs is still
seen to fail. A Job ends in two steps, as since Kubernetes 1.31: `SuccessCriteriaMet` or
`FailureTarget` first (remaining pods are deleted), then `Complete` or `Failed` once no pod of
it is running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import timedelta
from typing import Any

from permisos.workqueue import WorkQueue

from .informer import Informer, Key
from .jobstatus import (
    BACKOFF_LIMIT,
    COMPLETIONS_REACHED,
    COUNTERS,
    DEADLINE,
    RESUMED,
    SUSPENDED,
    Tally,
    Target,
    finished,
    has_finalizer,
    holding,
    job_condition,
    merge_patch,
    set_condition,
    status_fields,
    tally,
    target_of,
    true_condition,
)
from .kube import JSON, Kube, fmt_time, key_of, now, parse_time, status_code, uid_of
from .settings import MAX_BACKOFF_SECONDS, TRACKING_FINALIZER, ExecutorConfig

log = logging.getLogger("permisos.executor.jobs")

_RETRY_SECONDS = 1.0
# The work-queue key under which pods that lost their controller reference are let go.
ORPHANS: Key = ("", "")


def controller_of(obj: JSON) -> JSON | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return dict(ref)
    return None


def job_extra(job: JSON) -> dict[str, str]:
    labels = job["metadata"].get("labels") or {}
    extra = {
        "job": job["metadata"]["name"],
        "permitrequest": labels.get("permisosdigitales.mx/permitrequest"),
        "attempt": labels.get("permisosdigitales.mx/attempt"),
    }
    return {k: v for k, v in extra.items() if v}


class JobController:
    def __init__(self, config: ExecutorConfig, kube: Kube, jobs: Informer, pods: Informer) -> None:
        self.config = config
        self.kube = kube
        self.jobs = jobs
        self.pods = pods
        self.queue: WorkQueue[Key] = WorkQueue()
        # Pods by the Job (namespace, name) their controller reference names.
        self._pods_of: dict[Key, set[Key]] = {}
        self._job_of: dict[Key, Key] = {}
        # Pods we asked to delete, counted as terminating until their deletion shows.
        self._deleting: set[str] = set()
        # Job uid -> (failures seen, monotonic time the last one was first seen): the backoff.
        self._failures: dict[str, tuple[int, float]] = {}
        # Pods with the tracking finalizer but no Job controller reference (orphaned).
        self._orphans: set[Key] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        for pod in self.pods.values():
            self._index(pod, deleted=False)
            self._note_orphan(pod, deleted=False)
        self.jobs.handlers.append(self._on_job)
        self.pods.handlers.append(self._on_pod)
        for job in self.jobs.values():
            self.queue.add(key_of(job))
        for job_key in list(self._pods_of):
            self.queue.add(job_key)
        self._task = asyncio.get_running_loop().create_task(self._work(), name="job-controller")

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.jobs.handlers.remove(self._on_job)
        with contextlib.suppress(ValueError):
            self.pods.handlers.remove(self._on_pod)
        self.queue.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    # --- events ---------------------------------------------------------------------------

    def _on_job(self, event_type: str, job: JSON) -> None:
        self.queue.add(key_of(job))

    def _on_pod(self, event_type: str, pod: JSON) -> None:
        deleted = event_type == "DELETED"
        owner = self._index(pod, deleted=deleted)
        if deleted:
            self._deleting.discard(uid_of(pod))
        if owner is not None:
            self.queue.add(owner)
        self._note_orphan(pod, deleted)

    def _note_orphan(self, pod: JSON, deleted: bool) -> None:
        key = key_of(pod)
        if not deleted and controller_of(pod) is None and has_finalizer(pod):
            self._orphans.add(key)
            self.queue.add(ORPHANS)
        else:
            self._orphans.discard(key)

    def _index(self, pod: JSON, deleted: bool) -> Key | None:
        key = key_of(pod)
        before = self._job_of.pop(key, None)
        if before is not None:
            self._pods_of.get(before, set()).discard(key)
            if not self._pods_of.get(before):
                self._pods_of.pop(before, None)
        ref = controller_of(pod)
        if ref is None:
            return before
        owner = (key[0], str(ref.get("name")))
        if not deleted:
            self._job_of[key] = owner
            self._pods_of.setdefault(owner, set()).add(key)
        return owner

    def pods_of(self, job_key: Key) -> list[JSON]:
        found = (self.pods.get(k) for k in self._pods_of.get(job_key, ()))
        return [p for p in found if p is not None]

    # --- the loop ---------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                await self.sync(key)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                code = status_code(error)
                if code == 409:
                    log.info("job %s/%s: conflict; syncing again", *key)
                    await self._refresh(key)
                    self.queue.add_after(key, 0.05)
                else:
                    log.warning("job %s/%s: sync failed (%s); retrying", *key, error)
                    self.queue.add_after(key, _RETRY_SECONDS)
            finally:
                self.queue.done(key)

    async def _refresh(self, key: Key) -> None:
        with contextlib.suppress(Exception):
            job = await self.kube.get_job(*key)
            if job is not None:
                self.jobs.put(job)

    async def sync(self, key: Key) -> None:
        if key == ORPHANS:
            orphans = (self.pods.get(k) for k in list(self._orphans))
            await self._release(p for p in orphans if p is not None)
            return
        job = self.jobs.get(key)
        pods = self.pods_of(key)
        if job is None:
            # Its Job is gone: nothing will count these pods, so they are let go.
            await self._release(pods)
            return
        owned = [p for p in pods if (controller_of(p) or {}).get("uid") == uid_of(job)]
        await self._release(p for p in pods if p not in owned)
        if job["metadata"].get("deletionTimestamp") or finished(job):
            await self._release(owned)
            return
        await self._sync_active(job, owned)

    async def _sync_active(self, job: JSON, pods: list[JSON]) -> None:
        spec = job.get("spec") or {}
        status = dict(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        t = tally(job, pods, self._deleting)
        suspended = bool(spec.get("suspend"))
        events: list[tuple[str, str, str]] = []

        if suspended:
            if not true_condition(job, "Suspended"):
                conditions = set_condition(conditions, job_condition("Suspended", True, *SUSPENDED))
                events.append(("Normal", "Suspended", SUSPENDED[1]))
        else:
            if true_condition(job, "Suspended"):
                conditions = set_condition(conditions, job_condition("Suspended", False, *RESUMED))
                events.append(("Normal", "Resumed", RESUMED[1]))
                status["startTime"] = fmt_time(now())
            status.setdefault("startTime", fmt_time(now()))

        target = target_of(job)
        if target is None and not suspended:
            target = self._decide(job, t, status)
            if target is not None:
                conditions = set_condition(
                    conditions, job_condition(target.kind, True, target.reason, target.message)
                )
        if target is not None or suspended:
            await self._delete_pods(job, t.active)
            t.terminating.extend(t.active)
            t.active = []
            t.ready = 0
        else:
            await self._create_pods(job, t)

        final = None
        if target is not None and not t.active and not t.terminating and not t.uncounted:
            final = target
            conditions = set_condition(
                conditions, job_condition(target.final, True, target.reason, target.message)
            )
            if target.final == "Complete":
                status["completionTime"] = fmt_time(now())
        desired = {k: v for k, v in status.items() if k not in COUNTERS}
        desired.update(status_fields(t))
        desired["conditions"] = conditions
        if not conditions:
            del desired["conditions"]
        current = job.get("status") or {}
        if merge_patch(current, desired):
            await self._write_status(job, desired)
        await self._release(p for p in pods if uid_of(p) in t.uncounted)
        if final is not None:
            await self._announce(job, final)
        for event_type, reason, message in events:
            await self.kube.event(job, event_type, reason, message)
        if target is None and not suspended:
            self._requeue_at_deadline(job, desired)

    def _decide(self, job: JSON, t: Tally, status: JSON) -> Target | None:
        spec = job.get("spec") or {}
        backoff_limit = spec.get("backoffLimit", 6)
        if isinstance(backoff_limit, int) and t.total_failed > backoff_limit:
            return Target("FailureTarget", *BACKOFF_LIMIT)
        if self._past_deadline(spec, status):
            return Target("FailureTarget", *DEADLINE)
        completions = spec.get("completions")
        if completions is None:
            if t.total_succeeded > 0 and not t.active:
                return Target("SuccessCriteriaMet", *COMPLETIONS_REACHED)
        elif t.total_succeeded >= int(completions):
            return Target("SuccessCriteriaMet", *COMPLETIONS_REACHED)
        return None

    def _past_deadline(self, spec: JSON, status: JSON) -> bool:
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status.get("startTime"))
        if not isinstance(deadline, int) or started is None:
            return False
        return now() >= started + timedelta(seconds=deadline)

    def _requeue_at_deadline(self, job: JSON, status: JSON) -> None:
        deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
        started = parse_time(status.get("startTime"))
        if isinstance(deadline, int) and started is not None:
            remaining = (started + timedelta(seconds=deadline) - now()).total_seconds()
            self.queue.add_after(key_of(job), max(0.0, remaining) + 0.05)

    # --- pods -------------------------------------------------------------------------------

    async def _create_pods(self, job: JSON, t: Tally) -> None:
        spec = job.get("spec") or {}
        parallelism = int(spec.get("parallelism", 1) or 0)
        completions = spec.get("completions")
        wanted = (
            parallelism
            if completions is None
            else min(parallelism, int(completions) - t.total_succeeded)
        )
        missing = wanted - len(t.active) - (0 if t.replace_terminating else len(t.terminating))
        if missing <= 0:
            return
        delay = self._backoff(job, t.total_failed)
        if delay > 0:
            self.queue.add_after(key_of(job), delay)
            return
        for _ in range(missing):
            pod = await self.kube.create_pod(self._pod_for(job))
            self.pods.put(pod)
            t.active.append(pod)
            log.info(
                "job %s/%s: created pod %s",
                pod["metadata"].get("namespace"),
                job["metadata"]["name"],
                pod["metadata"]["name"],
                extra=job_extra(job),
            )
            await self.kube.event(
                job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}"
            )

    def _backoff(self, job: JSON, failures: int) -> float:
        """Seconds before a new pod may replace failed ones (kube: 10 s doubling, 6 min cap)."""
        if failures <= 0:
            return 0.0
        uid = uid_of(job)
        seen, since = self._failures.get(uid, (0, 0.0))
        clock = time.monotonic()
        if failures != seen:
            seen, since = failures, clock
            self._failures[uid] = (seen, since)
        delay = min(self.config.backoff_seconds * 2.0 ** (failures - 1), MAX_BACKOFF_SECONDS)
        return max(0.0, since + delay - clock)

    def _pod_for(self, job: JSON) -> JSON:
        meta = job["metadata"]
        template = (job.get("spec") or {}).get("template") or {}
        tmeta = template.get("metadata") or {}
        labels = {
            **(tmeta.get("labels") or {}),
            "batch.kubernetes.io/controller-uid": meta["uid"],
            "batch.kubernetes.io/job-name": meta["name"],
            "controller-uid": meta["uid"],
            "job-name": meta["name"],
        }
        pod_meta: JSON = {
            "generateName": f"{meta['name']}-",
            "namespace": meta.get("namespace"),
            "labels": labels,
            "finalizers": [TRACKING_FINALIZER],
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        }
        if tmeta.get("annotations"):
            pod_meta["annotations"] = dict(tmeta["annotations"])
        spec = dict(template.get("spec") or {})
        spec["nodeName"] = self.config.node_name
        return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}

    async def _delete_pods(self, job: JSON, pods: list[JSON]) -> None:
        for pod in pods:
            uid = uid_of(pod)
            if uid in self._deleting:
                continue
            namespace, name = key_of(pod)
            await self.kube.delete_pod(namespace, name)
            self._deleting.add(uid)
            log.info("job %s/%s: deleted pod %s", namespace, job["metadata"]["name"], name)
            await self.kube.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    async def _release(self, pods: Any) -> None:
        """Removes the tracking finalizer from pods that have been counted or are no Job's any
        more, unless this node's kubelet is still stopping them."""
        for pod in list(pods):
            if not has_finalizer(pod) or holding(pod, self.config.node_name):
                continue
            namespace, name = key_of(pod)
            rest = [f for f in pod["metadata"].get("finalizers") or [] if f != TRACKING_FINALIZER]
            updated = await self.kube.set_pod_finalizers(
                namespace, name, rest, str(pod["metadata"].get("resourceVersion") or "")
            )
            if updated is not None:
                self.pods.put(updated)

    # --- status -----------------------------------------------------------------------------

    async def _write_status(self, job: JSON, desired: JSON) -> None:
        namespace, name = key_of(job)
        patch = merge_patch(job.get("status") or {}, desired)
        updated = await self.kube.patch_job_status(
            namespace, name, patch, str(job["metadata"].get("resourceVersion") or "")
        )
        self.jobs.put(updated)

    async def _announce(self, job: JSON, target: Target) -> None:
        namespace, name = key_of(job)
        extra = {**job_extra(job), "reason": target.reason}
        if target.final == "Complete":
            log.info("job %s/%s: Complete", namespace, name, extra=extra)
            event = ("Normal", "Completed", "Job completed")
        else:
            log.info("job %s/%s: Failed (%s)", namespace, name, target.reason, extra=extra)
            event = ("Warning", target.reason, target.message)
        await self.kube.event(job, *event)
