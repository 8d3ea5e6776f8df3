"""The mirror's loop: list, then watch, the PermitRequests of the API's namespace; per request,
write what is new into the database, then hold or release the finalizer.

Level-triggered: every (re)list looks at every PermitRequest's current state, so whatever a gap
in the watch hid is repaired. What each request last had written is remembered, so a relist of
thousands of unchanged requests writes nothing. A request is worked on by one task at a time (a
keyed work queue); what the database has not taken yet stays pending and is tried again.

Finalizer changes are merge patches that carry the resourceVersion they were decided from: the
finalizer goes only from the version whose state was written, a newer version answers 409 and
is looked at again when the watch brings it, and when two replicas race, one wins and the other
gets 409 or 404, both fine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Engine
from sqlalchemy import exc as db_errors

from permisos.kube import JSON, MERGE_PATCH, KubeError

from ..kube import FINALIZER, ApiKube, configured, permit_requests
from ..settings import ApiSettings
from .queue import NameQueue
from .snapshot import Snapshot, snapshot_of
from .store import record_all

log = logging.getLogger("permisos.api.mirror")

# The server ends each watch after this long; a connection silent for longer is given up.
WATCH_SECONDS = 290
WATCH_GRACE_SECONDS = 30
LIST_PAGE = 500
# Requests worked on at once (each write holds one database connection in a thread).
WORKERS = 4
# Failures that mean the database is unreachable, not that one write is wrong: every request
# waits, rather than each trying (and timing out) on its own.
DATABASE_DOWN = (db_errors.OperationalError, db_errors.InterfaceError, db_errors.TimeoutError)


class MirrorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.writes = Counter(
            "permisos_mirror_writes",
            "PermitRequest states written into the database.",
            registry=registry,
        )
        self.write_failures = Counter(
            "permisos_mirror_write_failures",
            "Failed database writes of PermitRequest states (each is retried later).",
            registry=registry,
        )
        self.kubernetes_errors = Counter(
            "permisos_mirror_kubernetes_errors",
            "Failed PermitRequest lists, watches and finalizer patches (each is retried).",
            registry=registry,
        )
        self.pending = Gauge(
            "permisos_mirror_pending",
            "PermitRequests whose latest state waits for a database write.",
            registry=registry,
        )
        self.watching = Gauge(
            "permisos_mirror_watching",
            "1 while the mirror has listed the PermitRequests and follows their watch; 0 while "
            "it lists again or cannot reach the API server.",
            registry=registry,
        )


@dataclass(frozen=True)
class Seen:
    """What the finalizer decision needs from a PermitRequest's latest version."""

    resource_version: str
    finalizers: tuple[str, ...]
    deleting: bool

    @classmethod
    def of(cls, body: JSON) -> Seen:
        meta = body.get("metadata") or {}
        return cls(
            str(meta.get("resourceVersion") or ""),
            tuple(meta.get("finalizers") or ()),
            bool(meta.get("deletionTimestamp")),
        )

    def wanted_finalizers(self) -> list[str] | None:
        """The finalizers to set, or None when ours is where it belongs: on every request, until
        one being deleted has its final state recorded (the caller sees to that)."""
        ours = FINALIZER in self.finalizers
        if self.deleting and ours:
            return [f for f in self.finalizers if f != FINALIZER]
        if not self.deleting and not ours:  # made before the dispatcher added it
            return [*self.finalizers, FINALIZER]
        return None


class Mirror:
    def __init__(self, settings: ApiSettings, engine: Engine, metrics: MirrorMetrics) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.namespace = settings.kubernetes_namespace
        self.retry_seconds = settings.mirror_retry_seconds
        self.kube = ApiKube(settings.kubernetes_timeout_seconds)
        self._seen: dict[str, Seen] = {}
        self._written: dict[str, Snapshot] = {}  # the last state written, per request
        self._pending: dict[str, list[Snapshot]] = {}  # states to write, in order
        self._gone: set[str] = set()  # deleted: forgotten once their last state is written
        self._database_back_at = 0.0  # loop time before which no write is tried
        self._queue = NameQueue()

    async def close(self) -> None:
        await self.kube.reset()

    async def run_forever(self) -> None:
        """Runs until cancelled; Kubernetes and database failures are retried, never raised."""
        if not configured():
            log.warning("no Kubernetes configuration: the PermitRequest mirror does not run")
            return
        try:
            async with asyncio.TaskGroup() as tasks:
                for _ in range(WORKERS):
                    tasks.create_task(self._work())
                tasks.create_task(self._follow())
        finally:
            await self.close()

    # --- list and watch ------------------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            try:
                version = await self._list()
                # From here on every change is seen: the watch starts where the list ended.
                self.metrics.watching.set(1)
                while True:
                    version = await self._watch(version)
            except KubeError as error:
                self.metrics.watching.set(0)
                if error.status == 410:  # the watch's resourceVersion is too old: list again
                    log.info("PermitRequest watch expired; listing again")
                    continue
                self._failed_watch(error)
            except Exception as error:  # unreachable, TLS, a silent connection
                self.metrics.watching.set(0)
                await self.kube.reset()
                self._failed_watch(error)
            await asyncio.sleep(self.retry_seconds)

    def _failed_watch(self, error: Exception) -> None:
        self.metrics.kubernetes_errors.inc()
        log.warning(
            "PermitRequest list or watch failed (%s); listing again in %gs",
            _describe(error),
            self.retry_seconds,
        )

    async def _list(self) -> str:
        """Every PermitRequest, page by page; returns the list's resourceVersion."""
        kube = await self.kube.client()
        path = permit_requests(self.namespace)
        listed: set[str] = set()
        query: dict[str, Any] = {"limit": LIST_PAGE}
        while True:
            page = await kube.request(
                "GET", path, query=query, request_timeout=self.kube.timeout_seconds
            )
            for item in page.get("items") or []:
                listed.add(item["metadata"]["name"])
                self._observe(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            query = {"limit": LIST_PAGE, "continue": meta["continue"]}
        # Deleted while no watch ran: their last state (if any was pending) is still written.
        for name in set(self._seen) - listed:
            self._vanished(name, None)
        return str(meta["resourceVersion"])

    async def _watch(self, version: str) -> str:
        """One watch request from `version`; returns the last resourceVersion it saw."""
        kube = await self.kube.client()
        events = kube.watch(
            permit_requests(self.namespace),
            resource_version=version,
            timeout_seconds=WATCH_SECONDS,
        )
        # Closed on the way out, whatever ends it: its connection goes back at once.
        async with (
            contextlib.aclosing(events),
            asyncio.timeout(WATCH_SECONDS + WATCH_GRACE_SECONDS),
        ):
            async for kind, body in events:
                if kind == "ERROR":  # a Status: 410 Gone above all
                    raise KubeError(int(body.get("code") or 500), json.dumps(body))
                version = str((body.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "DELETED":
                    self._vanished(body["metadata"]["name"], body)
                elif kind in ("ADDED", "MODIFIED"):
                    self._observe(body)
        return version

    # --- what each version asks for ------------------------------------------------------------

    def _observe(self, body: JSON) -> None:
        name = str(body["metadata"]["name"])
        self._gone.discard(name)
        seen = self._seen[name] = Seen.of(body)
        self._note(name, body)
        if name in self._pending or seen.wanted_finalizers() is not None:
            self._queue.add(name)

    def _vanished(self, name: str, body: JSON | None) -> None:
        if body is not None:
            self._note(name, body)
        self._seen.pop(name, None)
        self._gone.add(name)
        self._queue.add(name)

    def _note(self, name: str, body: JSON) -> None:
        """Queues the version's state unless it is the last one written or queued."""
        snap = snapshot_of(body)
        if snap is None:
            return
        pending = self._pending.setdefault(name, [])
        last = pending[-1] if pending else self._written.get(name)
        if snap != last:
            pending.append(snap)
        if not pending:
            del self._pending[name]
        self.metrics.pending.set(len(self._pending))

    # --- the work on one request ---------------------------------------------------------------

    async def _work(self) -> None:
        queue = self._queue
        while True:
            name = await queue.get()
            try:
                await self._sync(name)
            except Exception as error:  # a finalizer patch failed: try again later
                self.metrics.kubernetes_errors.inc()
                log.warning(
                    "finalizer patch failed (%s); retrying in %gs",
                    _describe(error),
                    self.retry_seconds,
                    extra={"permitrequest": name},
                )
                if not isinstance(error, KubeError):
                    await self.kube.reset()
                queue.add_after(name, self.retry_seconds)
            finally:
                queue.done(name)

    async def _sync(self, name: str) -> None:
        # Taken before writing: the finalizer may change only at a version whose state is written.
        seen = self._seen.get(name)
        if not await self._write(name):
            return
        if name in self._gone:
            if name not in self._pending:  # nothing arrived while writing
                self._forget(name)
            return
        wanted = seen.wanted_finalizers() if seen is not None else None
        if seen is None or wanted is None:
            return
        patch = {"metadata": {"resourceVersion": seen.resource_version, "finalizers": wanted}}
        try:
            await self.kube.patch(permit_requests(self.namespace, name), patch, MERGE_PATCH)
        except KubeError as error:
            if error.status in (404, 409):  # gone, or changed since: the watch brings what is new
                return
            raise
        if seen.deleting:
            last = self._written.get(name)
            log.info(
                "outcome recorded; finalizer released",
                extra={"permitrequest": name, "phase": last.phase if last else None},
            )

    async def _write(self, name: str) -> bool:
        """Writes what is pending for one request; False (and a retry later) if it failed."""
        pending = self._pending.get(name)
        if not pending:
            return True
        loop = asyncio.get_running_loop()
        if (wait := self._database_back_at - loop.time()) > 0:
            self._queue.add_after(name, wait)
            return False
        batch = list(pending)
        try:
            await asyncio.to_thread(record_all, self.engine, batch)
        except Exception as error:
            self.metrics.write_failures.inc()
            if isinstance(error, DATABASE_DOWN):
                self._database_back_at = loop.time() + self.retry_seconds
            log.warning(
                "could not mirror phase %s (%s); retrying in %gs",
                batch[-1].phase,
                type(error).__name__,
                self.retry_seconds,
                extra={"permitrequest": name, "phase": batch[-1].phase},
            )
            self._queue.add_after(name, self.retry_seconds)
            return False
        self.metrics.writes.inc(len(batch))
        del pending[: len(batch)]
        self._written[name] = batch[-1]
        if not pending:
            del self._pending[name]
        self.metrics.pending.set(len(self._pending))
        return True

    def _forget(self, name: str) -> None:
        self._gone.discard(name)
        self._written.pop(name, None)
        self._pending.pop(name, None)
        self.metrics.pending.set(len(self._pending))


def _describe(error: Exception) -> str:
    """The kind of failure, never a body: a Status message may quote an object."""
    if isinstance(error, KubeError):
        return f"Kubernetes API {error.status} {error.reason}".strip()
    return type(error).__name__
