"""Applies the lifecycle to the cluster: per-request reconciliation and per-pool admission.

Watch events (from Kopf) update the cache and put the affected request on a work queue; workers
reconcile one request at a time per key; one admission loop moves Queued requests to Running while
their pool has room. Everything is derived from the cache, so the controller holds no state that
a restart could lose.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter as Tally
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lightkube import ApiError
from pydantic import ValidationError

from permisos.resources import (
    TERMINAL_PHASES,
    PermitRequestSpec,
    PermitRequestStatus,
    RunnerPoolSpec,
)
from permisos.workqueue import WorkQueue
from permisos_operator.cache import Body, Cache, Key, key_of, request_of
from permisos_operator.jobs import job_manifest, pool_selector
from permisos_operator.kube import Conflict, Kube
from permisos_operator.lifecycle import Step, Transition, admit, decide, job_name, transition
from permisos_operator.metrics import OperatorMetrics, PoolSnapshot
from permisos_operator.observe import JobObservation, observe_job
from permisos_operator.settings import OperatorSettings
from permisos_operator.timeutil import parse_time, utcnow

if TYPE_CHECKING:
    from permisos_operator.mirror import Mirror, Snapshot

FINALIZER = "permisosdigitales.mx/record-outcome"
# Admissions written at once; bounded so a burst does not flood the API server.
ADMISSION_CONCURRENCY = 16
# Pool status is a summary; writing it at most this often keeps bursts cheap.
POOL_STATUS_INTERVAL = 1.0
# A burst of watch events wakes admission many times; passes this far apart coalesce them.
ADMISSION_PAUSE = 0.05

log = logging.getLogger("permisos.operator")


def _phase(body: Body) -> str | None:
    phase = (body.get("status") or {}).get("phase")
    return str(phase) if phase else None


def _queue_order(request: Body) -> tuple[int, str, str]:
    """Higher priority first, then oldest first; the name breaks ties deterministically."""
    return (
        -int(request.get("spec", {}).get("priority", 0)),
        request["metadata"].get("creationTimestamp", ""),
        request["metadata"]["name"],
    )


class Controller:
    def __init__(self, kube: Kube, settings: OperatorSettings, metrics: OperatorMetrics) -> None:
        self.kube = kube
        self.settings = settings
        self.metrics = metrics
        self.cache = Cache()
        self.queue: WorkQueue[Key] | None = None
        self._pool_wake = asyncio.Event()
        self._pool_status_written: dict[Key, tuple[float, Body]] = {}
        self.snapshots: dict[str, PoolSnapshot] = {}
        # Keys that watch events touched during a resync's list, which the list may predate.
        self._touched: set[tuple[str, Key]] | None = None
        self._events: asyncio.Queue[tuple[Body, str, str, str]] | None = None
        self.running = False
        # The phase mirror (off without a database): per request, what was last written and
        # what still has to be, so a database outage is repaired when it ends.
        self.mirror: Mirror | None = None
        if settings.database_url:
            # Imported only when mirroring: SQLAlchemy would slow every operator's start.
            from permisos_operator.mirror import Mirror

            self.mirror = Mirror(
                settings.database_url,
                settings.database_pool_size,
                settings.database_connect_timeout_seconds,
            )
        self._mirrored: dict[Key, Snapshot] = {}
        self._mirror_pending: dict[Key, list[Snapshot]] = {}
        self._mirror_due: set[Key] = set()
        self._mirror_wake = asyncio.Event()
        self._mirror_locks: dict[Key, asyncio.Lock] = {}

    # --- what the watches report -------------------------------------------------------------

    def _enqueue(self, key: Key) -> None:
        if self.queue is not None:
            self.queue.add(key)

    def _record(self, kind: str, body: Body, deleted: bool) -> bool:
        """Applies a watch event to the cache; False when it tells nothing new."""
        key = key_of(body)
        if self._touched is not None:
            self._touched.add((kind, key))
        if deleted:
            self.cache.drop(kind, key)
            return True
        return self.cache.put(kind, body)

    def on_request(self, body: Body, deleted: bool) -> None:
        if self._record("requests", body, deleted):
            self._enqueue(key_of(body))
            self._pool_wake.set()

    def on_pool(self, body: Body, deleted: bool) -> None:
        if self._record("pools", body, deleted):
            for request in self.cache.requests_in_pool(key_of(body)):
                self._enqueue(key_of(request))
            self._pool_wake.set()

    def on_job(self, body: Body, deleted: bool) -> None:
        request = request_of(body)
        if self._record("jobs", body, deleted) and request:
            self._enqueue((key_of(body)[0], request))

    def on_pod(self, body: Body, deleted: bool) -> None:
        request = request_of(body)
        if self._record("pods", body, deleted) and request:
            self._enqueue((key_of(body)[0], request))

    # --- running while this replica is the active one -----------------------------------------

    async def run_forever(self) -> None:
        """Runs the controller until cancelled, starting it again after a failure.

        A failure here is the API server failing the initial list; waiting and trying again is
        all that can be done, and nothing is lost meanwhile: the objects hold the state.
        """
        delay = 1.0
        while True:
            started = time.monotonic()
            try:
                await self.run()
            except Exception:
                self.metrics.api_errors.labels("controller").inc()
                log.exception("controller failed; starting again in %.0fs", delay)
            if time.monotonic() - started > 60:
                delay = 1.0
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def run(self) -> None:
        """Works until cancelled (shutdown, or a higher-priority peer took over)."""
        self.queue = WorkQueue[Key]()
        self._events = asyncio.Queue()
        self.running = True
        log.info("controller started")
        try:
            await self.resync()
            await self._settle()
            async with asyncio.TaskGroup() as tasks:
                for _ in range(self.settings.workers):
                    tasks.create_task(self._worker())
                tasks.create_task(self._admission_loop())
                # One poster, so Events keep the order of the transitions they tell.
                tasks.create_task(self._event_poster(self._events))
                tasks.create_task(self._resync_loop())
                if self.mirror is not None:
                    tasks.create_task(self._mirror_loop())
        finally:
            # A paused replica must not act later on what it saw while active.
            self.running = False
            if self.queue is not None:
                self.queue.clear()
            self._events = None
            self._pool_status_written.clear()
            self.queue = None
            self.cache.clear()
            self.snapshots.clear()
            # Whichever replica runs next re-mirrors what it finds (idempotently).
            self._mirrored.clear()
            self._mirror_pending.clear()
            self._mirror_due.clear()
            log.info("controller stopped")

    async def resync(self) -> None:
        """Re-lists everything, so the cache holds exactly what exists.

        Objects the list did not return are dropped, unless a watch event touched them while the
        list was in flight (they were created after the list was taken).
        """
        self._touched = set()
        try:
            listed = await self.kube.list_all(self.settings.namespaces)
            touched = self._touched
        finally:
            self._touched = None
        for kind, bodies in listed.items():
            seen = set()
            for body in bodies:
                self.cache.put(kind, body)
                seen.add(key_of(body))
            for key in self.cache.keys(kind):
                if key not in seen and (kind, key) not in touched:
                    self.cache.drop(kind, key)
        for key in self.cache.requests:
            self._enqueue(key)
        self._pool_wake.set()

    async def _settle(self) -> None:
        """Reconciles everything listed before admitting anything.

        A backlog found at start (a restart, a failover) is then queued as a whole, so the first
        free runners go to the highest-priority, oldest requests, not to whichever was looked at
        first.
        """
        assert self.queue is not None
        gate = asyncio.Semaphore(ADMISSION_CONCURRENCY)

        async def one(key: Key) -> None:
            async with gate:
                try:
                    await self.reconcile(key)
                except Conflict:
                    pass  # still queued from the resync: the workers take it again
                except Exception:
                    self.metrics.api_errors.labels("reconcile").inc()
                    log.exception("reconcile failed", extra={"permitrequest": key[1]})

        await asyncio.gather(*(one(key) for key in list(self.cache.requests)))

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            try:
                await self.resync()
            except Exception:
                self.metrics.api_errors.labels("resync").inc()
                log.exception("resync failed")

    async def _worker(self) -> None:
        queue = self.queue
        assert queue is not None
        while True:
            key = await queue.get()
            started = time.perf_counter()
            try:
                await self.reconcile(key)
            except Conflict:
                queue.add(key)  # a newer object is on its way through the watch
            except Exception:
                self.metrics.api_errors.labels("reconcile").inc()
                log.exception("reconcile failed", extra={"permitrequest": key[1]})
                queue.add_at(key, _later(5))
            finally:
                self.metrics.reconcile.observe(time.perf_counter() - started)
                queue.done(key)

    # --- one request ---------------------------------------------------------------------------

    def _observe(self, namespace: str, name: str) -> JobObservation | None:
        job = self.cache.jobs.get((namespace, name))
        if job is None:
            return None
        return observe_job(job, self.cache.pods_of_job((namespace, name)))

    def _pool_spec(self, namespace: str, pool: str) -> RunnerPoolSpec | None:
        body = self.cache.pools.get((namespace, pool))
        if body is None or body["metadata"].get("deletionTimestamp"):
            return None
        return RunnerPoolSpec.model_validate(body.get("spec") or {})

    async def reconcile(self, key: Key) -> None:
        body = self.cache.requests.get(key)
        if body is None:
            return
        namespace, name = key
        meta = body["metadata"]
        self._mirror_note(body)
        if meta.get("deletionTimestamp"):
            await self._finalize(body)
            return
        if FINALIZER not in (meta.get("finalizers") or []):
            body = await self.kube.set_finalizers(
                namespace,
                name,
                meta["resourceVersion"],
                [*(meta.get("finalizers") or []), FINALIZER],
            )
            self.cache.put_request(body)
            meta = body["metadata"]
        status = PermitRequestStatus.model_validate(body.get("status") or {})
        try:
            spec = PermitRequestSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            if status.phase not in TERMINAL_PHASES:
                new, change = transition(
                    status,
                    "Failed",
                    "InvalidSpec",
                    str(error.errors()[0]["msg"]),
                    meta.get("generation"),
                    utcnow(),
                )
                await self._write(body, status, new, change)
            return
        current = status.current_job or (job_name(name, status.attempts) if status.attempts else "")
        step = decide(
            name,
            meta.get("generation"),
            spec,
            status,
            self._observe(namespace, current) if current else None,
            self._pool_spec(namespace, spec.pool),
            utcnow(),
        )
        await self._apply(body, spec, status, step)

    async def _apply(
        self, body: Body, spec: PermitRequestSpec, status: PermitRequestStatus, step: Step
    ) -> None:
        namespace, name = key_of(body)
        if step.delete_job:
            # First the Job, then the status: a crash in between re-decides from a Job that is
            # gone, and never leaves a browser running for an attempt that was given up.
            await self.kube.delete_job(namespace, step.delete_job)
        if step.status is not None and step.transition is not None:
            body = await self._write(body, status, step.status, step.transition)
        if step.verdict is not None:
            self.metrics.attempts.labels(
                step.verdict.outcome, self.metrics.reason_label(step.verdict.reason)
            ).inc()
            if step.verdict.result is not None:
                self.metrics.observe_steps(step.verdict.outcome, step.verdict.result.timings)
        if step.create_job:
            pool = self._pool_spec(namespace, spec.pool)
            if pool is not None:
                await self._create_job(body, spec, pool, step.create_job, status.attempts)
        if step.requeue_at is not None and self.queue is not None:
            self.queue.add_at((namespace, name), step.requeue_at)

    async def _write(
        self,
        body: Body,
        old: PermitRequestStatus,
        new: PermitRequestStatus,
        change: Transition,
    ) -> Body:
        namespace, name = key_of(body)
        meta = body["metadata"]
        updated = await self.kube.write_status(
            namespace, name, meta["resourceVersion"], body.get("status") or {}, new.wire()
        )
        self.cache.put_request(updated)
        self._mirror_note(updated)
        self.metrics.transitions.labels(change.new).inc()
        log.info(
            "phase %s -> %s (%s)",
            change.old or "Pending",
            change.new,
            change.reason,
            extra={
                "permitrequest": name,
                "attempt": new.attempts,
                "phase": change.new,
                "reason": change.reason,
            },
        )
        if change.new == "Succeeded" and body.get("spec", {}).get("paidAt"):
            paid = parse_time(body["spec"]["paidAt"])
            self.metrics.payment_to_permit.observe(max(0.0, (utcnow() - paid).total_seconds()))
        self._event(updated, change.event_type, change.reason, change.message)
        self._pool_wake.set()
        return updated

    def _event(self, body: Body, type_: str, reason: str, message: str) -> None:
        """Queues an Event; posting it is off the request's critical path."""
        if self._events is not None:
            self._events.put_nowait((body, type_, reason, message))

    async def _event_poster(self, events: asyncio.Queue[tuple[Body, str, str, str]]) -> None:
        while True:
            body, type_, reason, message = await events.get()
            try:
                await self.kube.post_event(body, type_, reason, message)
            except Exception:
                # An Event is a courtesy to humans; losing one must not stop the request.
                self.metrics.api_errors.labels("event").inc()
                log.warning(
                    "could not post event", extra={"permitrequest": body["metadata"]["name"]}
                )

    async def _create_job(
        self, body: Body, spec: PermitRequestSpec, pool: RunnerPoolSpec, job: str, attempt: int
    ) -> None:
        namespace, name = key_of(body)
        manifest = job_manifest(
            name=job,
            namespace=namespace,
            request=name,
            request_uid=body["metadata"]["uid"],
            attempt=attempt,
            spec=spec,
            pool=pool,
            settings=self.settings,
        )
        created = await self.kube.create_job(manifest)
        if created is not None:
            created.setdefault("kind", "Job")
            self.cache.put_job(created)
            if attempt == 1:
                born = parse_time(body["metadata"]["creationTimestamp"])
                self.metrics.job_start_delay.observe(max(0.0, (utcnow() - born).total_seconds()))

    async def _finalize(self, body: Body) -> None:
        """Records the deletion, then lets the object go (its Jobs follow by owner reference)."""
        namespace, name = key_of(body)
        meta = body["metadata"]
        finalizers = meta.get("finalizers") or []
        if FINALIZER not in finalizers:
            return
        # The final state reaches the database before the object may go; if the database is
        # down, the finalizer stays and the request is looked at again (that is what it is for).
        if not await self._mirror_flush((namespace, name)):
            return
        phase = _phase(body) or "Pending"
        log.info("deleted in phase %s", phase, extra={"permitrequest": name, "phase": phase})
        # Posted before the finalizer goes: the Event must name an object that still exists.
        try:
            await self.kube.post_event(body, "Normal", "Deleted", f"deleted in phase {phase}")
        except ApiError:
            self.metrics.api_errors.labels("event").inc()
        remaining = [f for f in finalizers if f != FINALIZER]
        try:
            updated = await self.kube.set_finalizers(
                namespace, name, meta["resourceVersion"], remaining
            )
        except ApiError as error:
            if error.status.code != 404:
                raise
            return
        if updated.get("metadata", {}).get("deletionTimestamp") and not remaining:
            self.cache.drop_request((namespace, name))
        self._mirror_forget((namespace, name))

    # --- the phase mirror ----------------------------------------------------------------------

    def _mirror_note(self, body: Body) -> None:
        """Level-triggered: queues the request's current state if it is not mirrored yet."""
        if self.mirror is None:
            return
        from permisos_operator.mirror import snapshot_of

        snap = snapshot_of(body)
        if snap is None:
            return
        key = key_of(body)
        pending = self._mirror_pending.setdefault(key, [])
        last = pending[-1] if pending else self._mirrored.get(key)
        if snap != last:
            pending.append(snap)
        if pending:
            self._mirror_due.add(key)
            self._mirror_wake.set()
        else:
            del self._mirror_pending[key]

    async def _mirror_flush(self, key: Key) -> bool:
        """Writes what is pending for one request; False (and a later retry) if it failed."""
        if self.mirror is None:
            return True
        lock = self._mirror_locks.setdefault(key, asyncio.Lock())
        async with lock:
            pending = self._mirror_pending.get(key)
            if not pending:
                return True
            batch = list(pending)
            try:
                await self.mirror.write(batch)
            except Exception as error:
                self.metrics.api_errors.labels("mirror").inc()
                log.warning(
                    "could not mirror phase %s: %s",
                    batch[-1].phase,
                    type(error).__name__,
                    extra={"permitrequest": key[1], "phase": batch[-1].phase},
                )
                if self.queue is not None:
                    self.queue.add_at(key, _later(self.settings.mirror_retry_seconds))
                return False
            del pending[: len(batch)]
            self._mirrored[key] = batch[-1]
            if not pending:
                self._mirror_pending.pop(key, None)
            return True

    def _mirror_forget(self, key: Key) -> None:
        self._mirrored.pop(key, None)
        self._mirror_pending.pop(key, None)
        self._mirror_due.discard(key)
        self._mirror_locks.pop(key, None)

    async def _mirror_loop(self) -> None:
        while True:
            await self._mirror_wake.wait()
            self._mirror_wake.clear()
            keys, self._mirror_due = self._mirror_due, set()
            await asyncio.gather(*(self._mirror_flush(key) for key in keys))

    # --- admission -----------------------------------------------------------------------------

    async def _admission_loop(self) -> None:
        while True:
            await self._pool_wake.wait()
            await asyncio.sleep(ADMISSION_PAUSE)
            self._pool_wake.clear()
            for pool in sorted(self.cache.pool_keys()):
                try:
                    await self._admit_pool(pool)
                except Exception:
                    self.metrics.api_errors.labels("admission").inc()
                    log.exception("admission failed", extra={"pool": pool[1]})
                    asyncio.get_running_loop().call_later(1.0, self._pool_wake.set)

    async def _admit_pool(self, pool_key: Key) -> None:
        namespace, pool_name = pool_key
        pool_body = self.cache.pools.get(pool_key)
        running = 0
        waiting = []
        for request in self.cache.requests_in_pool(pool_key):
            phase = _phase(request)
            if phase == "Running":
                running += 1
            elif (
                phase == "Queued"
                and not request["metadata"].get("deletionTimestamp")
                and not request.get("spec", {}).get("cancel")
            ):
                waiting.append(request)
        pool = self._pool_spec(namespace, pool_name)
        limit = pool.replicas if pool is not None else 0
        # Only the first few in line matter: no full sort of a long queue on every event.
        chosen = heapq.nsmallest(max(0, limit - running), waiting, key=_queue_order)
        queued = len(waiting)
        if chosen and pool is not None:
            gate = asyncio.Semaphore(ADMISSION_CONCURRENCY)

            async def one(request: Body) -> bool:
                async with gate:
                    return await self._admit(request, pool)

            admitted = await asyncio.gather(*(one(r) for r in chosen), return_exceptions=True)
            started = sum(1 for ok in admitted if ok is True)
            for outcome in admitted:
                if isinstance(outcome, BaseException) and not isinstance(outcome, Conflict):
                    log.error("admission failed: %s", outcome, extra={"pool": pool_name})
            running += started
            queued -= started
        self.snapshots[pool_name] = PoolSnapshot(queued, running, limit)
        if pool_body is not None:
            await self._write_pool_status(pool_body, running, queued)

    async def _admit(self, request: Body, pool: RunnerPoolSpec) -> bool:
        namespace, name = key_of(request)
        meta = request["metadata"]
        status = PermitRequestStatus.model_validate(request.get("status") or {})
        spec = PermitRequestSpec.model_validate(request.get("spec") or {})
        new, change, job = admit(name, status, meta.get("generation"), utcnow())
        try:
            updated = await self._write(request, status, new, change)
        except Conflict:
            self._enqueue((namespace, name))
            return False
        await self._create_job(updated, spec, pool, job, new.attempts)
        return True

    async def _write_pool_status(self, pool_body: Body, running: int, queued: int) -> None:
        key = key_of(pool_body)
        status = {
            "replicas": running,
            "queued": queued,
            "selector": pool_selector(key[1]),
            "observedGeneration": pool_body["metadata"].get("generation"),
        }
        last = self._pool_status_written.get(key)
        now = time.monotonic()
        if last is not None and last[1] == status:
            return
        if last is not None and now - last[0] < POOL_STATUS_INTERVAL:
            # Too soon: look again once the interval is over.
            asyncio.get_running_loop().call_later(POOL_STATUS_INTERVAL, self._pool_wake.set)
            return
        current = pool_body.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            self._pool_status_written[key] = (now, status)
            return
        try:
            updated = await self.kube.write_pool_status(key[0], key[1], status)
        except ApiError as error:
            if error.status.code == 404:
                return
            raise
        self._pool_status_written[key] = (now, status)
        self.cache.put_pool(updated)

    # --- for metrics ---------------------------------------------------------------------------

    def phase_tally(self) -> Tally[str]:
        return Tally(_phase(r) or "Pending" for r in self.cache.requests.values())


def _later(seconds: float) -> datetime:
    return utcnow() + timedelta(seconds=seconds)
