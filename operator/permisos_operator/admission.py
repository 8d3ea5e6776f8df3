"""Admission per RunnerPool: requests run while the pool has room, highest priority first, then
oldest first.

A request whose next step is into the queue (new, back from a backoff) is handed here: if it is
among the first the pool has room for, it starts at once (Pending → Running, one status write),
else it is written Queued. The pool's daemon (so Kopf runs it only on the active replica, starts
it with the pool and stops it when the pool goes) admits Queued requests as room frees up. Both
decide under the pool's lock (taken before the request's, released before any write): one
decision at a time about the pool's room, which an admission takes at once.

The indexes show an admission only once its watch event is back; until then the pool counts the
request among its running ones (`Context.admissions`), or it would admit more than its replicas.
Requests not queued yet (new, or waiting for the pool to exist) keep their place in line, so a
backlog found at start goes oldest first.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from permisos.resources import (
    PermitRequestSpec,
    PermitRequestStatus,
    PortalCircuit,
    PortalHold,
    RunnerPoolSpec,
)
from permisos_operator import probes
from permisos_operator.conditions import set_condition
from permisos_operator.context import ADMISSION_GRACE, Context
from permisos_operator.indexes import Body, Entry, Key, entry_of
from permisos_operator.kube import Conflict, Gone
from permisos_operator.lifecycle import Transition, admit
from permisos_operator.metrics import PoolSnapshot
from permisos_operator.pool_status import PoolStatusWriter
from permisos_operator.portal_gate import MINUTE, OPEN, Gate, gate
from permisos_operator.queue_status import QueueStatusWriter, waiting_reason
from permisos_operator.reconcile import apply, create_job, decide_now, pool_spec, reconcile, write
from permisos_operator.timeutil import utcnow

log = logging.getLogger("permisos.operator")

# Admissions written at once; bounded so a burst does not flood the API server.
ADMISSION_CONCURRENCY = 16
# A burst of watch events wakes admission many times; passes this far apart coalesce them.
ADMISSION_PAUSE = 0.05
# Without any wake-up, the pool still looks again this often (its status, lost wake-ups).
IDLE_PASS = 5.0


@dataclass(frozen=True)
class Room:
    """The pool as one admission decision sees it."""

    spec: RunnerPoolSpec | None
    running: int
    waiting: list[Entry]  # Queued, not admitted yet
    unsettled: list[Entry]  # not queued yet, but about to be
    gate: Gate = OPEN

    @property
    def free(self) -> int:
        if self.spec is None:
            return 0
        free = max(0, self.spec.replicas - self.running)
        return free if self.gate.allowed is None else min(free, self.gate.allowed)

    def first(self, extra: Entry | None = None) -> list[Entry]:
        """The first in line, as many as the pool has room for."""
        candidates = self.waiting + self.unsettled
        if extra is not None and all(e.name != extra.name for e in candidates):
            candidates.append(extra)
        # Only the first few in line matter: no full sort of a long queue on every pass.
        return heapq.nsmallest(self.free, candidates, key=lambda e: e.order)


def room(ctx: Context, pool: Key, *, whole_line: bool = False) -> Room:
    """The pool's room, and its line (who waits, who is about to) when there is room left or
    `whole_line` asks for it: going through the whole queue is what costs."""
    namespace, name = pool
    spec = pool_spec(ctx, namespace, name)
    recent = ctx.admissions.of(pool)
    running = ctx.known.running(namespace, name) + len(recent)
    memory = ctx.portal(pool)
    moment = utcnow()
    if memory.hold is not None and memory.hold.until <= moment:
        memory.hold = None  # waited out
    now = (
        gate(spec, memory.started, memory.hold, moment, memory.circuit, running)
        if spec is not None
        else OPEN
    )
    full = Room(spec=spec, running=running, waiting=[], unsettled=[], gate=now)
    if not whole_line and full.free == 0:
        return full
    entries = ctx.known.entries(namespace, name)
    return Room(
        gate=now,
        spec=spec,
        running=running,
        waiting=[e for e in entries if e.waiting and e.name not in recent],
        unsettled=[
            e
            for e in entries
            if e.phase in (None, "Pending") and e.open_since and e.name not in recent
        ],
    )


async def enqueue(ctx: Context, pool: Key, name: str) -> None:
    """The request's next step is into the queue: it starts now, or it waits in line. The pool's
    lock is held for the decision only, never across the writes."""
    try:
        async with contextlib.AsyncExitStack() as stack:
            deciding = ctx.pool_lock(pool)
            await deciding.acquire()
            stack.callback(lambda: deciding.release() if held else None)
            held = True
            await stack.enter_async_context(ctx.locks.hold((pool[0], name)))
            body = ctx.known.request(pool[0], name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return
            decision = await decide_now(ctx, body)
            starts = False
            now: Room | None = None
            if decision is not None and decision.queues and decision.pool is not None:
                now = room(ctx, pool)
                line = now.first(entry_of(body))
                starts = name in {e.name for e in line}
                if starts:  # the room is taken from now on
                    ctx.admissions.note(pool, name, decision.status.attempts + 1)
                    ctx.portal(pool).note_start(utcnow())
            held = False
            deciding.release()
            if decision is None:
                return
            step = decision.step
            if starts and decision.pool is not None and step.status is not None:
                await _start(ctx, pool, decision.pool, body, decision.status, step.status)
            else:  # in line; or it changed since: its own step, then
                if now is not None and step.status is not None and not now.gate.open:
                    # In line because of the portal, not the pool: its condition says so.
                    reason, message = waiting_reason(now.gate, pool[1])
                    step.status.conditions = set_condition(
                        step.status.conditions,
                        "Admitted",
                        "False",
                        reason,
                        message,
                        body["metadata"].get("generation"),
                        utcnow(),
                    )
                await apply(ctx, decision)
    except (Conflict, Gone):
        pass  # a newer object (or its deletion) is on its way through the watch
    except Exception:
        ctx.metrics.api_errors.labels("admission").inc()
        log.exception("admission failed", extra={"permitrequest": name, "pool": pool[1]})


async def run(ctx: Context, pool: Key) -> None:
    """Admits for one pool until cancelled (Kopf cancels the daemon on pause, exit, deletion)."""
    wake = ctx.wake(pool)
    status = PoolStatusWriter(ctx, pool)
    queue = QueueStatusWriter(ctx, pool)
    # A wait the portal asked for outlives a change of active replica: it is in the status.
    known = ctx.known.pool(*pool)
    if known is not None and known.status.get("portalHold"):
        with contextlib.suppress(ValueError):
            ctx.portal(pool).note_hold(PortalHold.model_validate(known.status["portalHold"]))
    if known is not None and known.status.get("circuit"):  # so is the circuit breaker's state
        with contextlib.suppress(ValueError):
            ctx.portal(pool).circuit = PortalCircuit.model_validate(known.status["circuit"])
    # A replica new to leading this pool counts the rate limit's last minute from the Jobs
    # created in it, whichever replica created them. One that has started attempts keeps its
    # own count: the Jobs of its latest starts may not be in the indexes yet.
    memory, minute_ago = ctx.portal(pool), utcnow() - MINUTE
    if not any(started > minute_ago for started in memory.started):
        memory.started = deque(ctx.known.started_since(*pool, minute_ago))
    # Requests that waited for this pool to exist are looked at first.
    for entry in ctx.known.entries(*pool):
        if entry.phase in (None, "Pending") and await reconcile(ctx, pool[0], entry.name):
            await enqueue(ctx, pool, entry.name)
    try:
        while True:
            try:
                await probes.tend(ctx, pool)
                ctx.snapshots[pool] = snapshot = await admit_queued(ctx, pool, queue)
                await status.write(snapshot)
            except Exception:
                ctx.metrics.api_errors.labels("admission").inc()
                log.exception("admission failed", extra={"pool": pool[1]})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), IDLE_PASS)
            await asyncio.sleep(ADMISSION_PAUSE)
            wake.clear()
    finally:
        ctx.snapshots.pop(pool, None)


async def admit_queued(ctx: Context, pool: Key, queue: QueueStatusWriter) -> PoolSnapshot:
    """Queued requests first in line start while the pool has room."""
    async with ctx.pool_lock(pool):
        now = room(ctx, pool, whole_line=True)
        chosen = [e for e in now.first() if e.waiting]
        taken = {e.name for e in chosen}
        behind = [e for e in now.waiting if e.name not in taken]
        for entry in chosen:
            ctx.admissions.note(pool, entry.name, entry.attempts + 1)
            ctx.portal(pool).note_start(utcnow())
    started = 0
    if chosen and now.spec is not None:
        writers = asyncio.Semaphore(ADMISSION_CONCURRENCY)
        spec = now.spec

        async def one(entry: Entry) -> bool:
            async with writers:
                return await _admit_queued(ctx, pool, spec, entry.name)

        started = sum(await asyncio.gather(*(one(e) for e in chosen)))
    limit = now.spec.replicas if now.spec is not None else 0
    if now.spec is not None:
        await queue.write(behind, now.gate, now.spec.replicas)
    if now.gate.until is not None:  # look again when the portal's gate may open
        delay = max(0.0, (now.gate.until - utcnow()).total_seconds())
        if delay < IDLE_PASS:  # later ones: a pass comes before then anyway
            asyncio.get_running_loop().call_later(delay, ctx.wake(pool).set)
    circuit = ctx.portal(pool).circuit.state
    return PoolSnapshot(len(now.waiting) - started, now.running + started, limit, now.gate, circuit)


async def _admit_queued(ctx: Context, pool: Key, spec: RunnerPoolSpec, name: str) -> bool:
    """Queued → Running; False (and its room given back) when the request changed meanwhile."""
    async with ctx.locks.hold((pool[0], name)):
        body = ctx.known.request(pool[0], name)
        if body is None or not entry_of(body).waiting:
            ctx.admissions.forget(pool, name)
            return False
        status = PermitRequestStatus.model_validate(body.get("status") or {})
        try:
            await _start(ctx, pool, spec, body, status, status)
        except (Conflict, Gone):
            return False
        return True


async def _start(
    ctx: Context,
    pool: Key,
    spec: RunnerPoolSpec,
    body: Body,
    old: PermitRequestStatus,
    queued: PermitRequestStatus,
) -> None:
    """The next attempt of a request whose room is taken: Running (one status write from
    whatever phase it was in), then its Job. A failed write gives the room back."""
    name = body["metadata"]["name"]
    now = utcnow()
    new, change, job = admit(name, queued, body["metadata"].get("generation"), now)
    started = Transition(old.phase, "Running", change.reason, change.message)
    try:
        updated = await write(ctx, body, old, new, started)
    except BaseException:
        ctx.admissions.forget(pool, name)
        raise
    # Its Job's events tell the rest; the rechecks look once the admission's grace is over.
    version = int(updated["metadata"]["resourceVersion"])
    ctx.due[(pool[0], name)] = (now + timedelta(seconds=ADMISSION_GRACE), version)
    request = PermitRequestSpec.model_validate(body.get("spec") or {})
    try:
        await create_job(ctx, body, request, spec, job, new.attempts)
    except Exception:
        # Running without its Job: the request's recheck makes it once the grace is over.
        ctx.metrics.api_errors.labels("admission").inc()
        log.exception("could not create the Job", extra={"permitrequest": name, "job": job})
