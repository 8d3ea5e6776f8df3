"""Why each queued request waits, in its own status: its place in line (`queuePosition`), when it
should start (`estimatedStartAt`) and the reason of its `Admitted` condition (PoolFull, or the
portal's gate: MaintenanceWindow, RateLimited, PortalUnavailable, …).

Every admission moves everyone behind it, so writing every queued request's place after each
would cost a write per request per admission. Only the first `WINDOW` in line carry a place; a
request's status is written only when its place or its reason changed, and a pool's line at most
every `INTERVAL` seconds.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import statistics
import time
from datetime import datetime, timedelta

from permisos.resources import PermitRequestStatus
from permisos_operator.conditions import set_condition
from permisos_operator.context import Context
from permisos_operator.indexes import Entry, Key
from permisos_operator.kube import Conflict, Gone
from permisos_operator.portal_gate import Gate
from permisos_operator.timeutil import utcnow

log = logging.getLogger("permisos.operator")

WINDOW = 100
INTERVAL = 5.0
WRITERS = 8
# An attempt's duration before the pool has finished any.
DEFAULT_ATTEMPT_SECONDS = 120.0


def waiting_reason(gate: Gate, pool: str) -> tuple[str, str]:
    """The Admitted condition's reason and message for a request waiting in `pool`."""
    if gate.open:
        return "PoolFull", f"waiting for a runner in pool {pool}"
    return gate.reason, gate.message


def estimate(
    position: int, replicas: int, durations: list[float], gate: Gate, now: datetime
) -> datetime | None:
    """When the request at `position` should start: after the gate opens, one attempt's
    duration per full round of the pool's replicas ahead of it (None while the pool is
    paused)."""
    if replicas <= 0:
        return None
    seconds = statistics.median(durations) if durations else DEFAULT_ATTEMPT_SECONDS
    rounds = math.ceil(position / replicas) - 1
    start = gate.until if gate.until is not None and gate.until > now else now
    return (start + timedelta(seconds=rounds * seconds)).replace(microsecond=0)


class QueueStatusWriter:
    def __init__(self, ctx: Context, pool: Key) -> None:
        self.ctx, self.pool = ctx, pool
        self._written_at = float("-inf")

    async def write(self, waiting: list[Entry], gate: Gate, replicas: int) -> None:
        if time.monotonic() - self._written_at < INTERVAL:
            return
        self._written_at = time.monotonic()
        now = utcnow()
        reason, _ = waiting_reason(gate, self.pool[1])
        line = heapq.nsmallest(WINDOW, waiting, key=lambda e: e.order)
        changed = [
            (i, e)
            for i, e in enumerate(line, start=1)
            if e.position != i or e.waiting_reason != reason
        ]
        if not changed:
            return
        durations = list(self.ctx.portal(self.pool).durations)
        gate_writers = asyncio.Semaphore(WRITERS)

        async def one(position: int, entry: Entry) -> None:
            async with gate_writers:
                start = estimate(position, replicas, durations, gate, now)
                await self._write_one(entry.name, position, start, gate)

        await asyncio.gather(*(one(i, e) for i, e in changed))

    async def _write_one(
        self, name: str, position: int, start: datetime | None, gate: Gate
    ) -> None:
        namespace, pool = self.pool
        async with self.ctx.locks.hold((namespace, name)):
            body = self.ctx.known.request(namespace, name)
            if body is None or (body.get("status") or {}).get("phase") != "Queued":
                return
            old = PermitRequestStatus.model_validate(body.get("status") or {})
            new = old.model_copy(deep=True)
            new.queue_position, new.estimated_start_at = position, start
            reason, message = waiting_reason(gate, pool)
            generation = body["metadata"].get("generation")
            new.conditions = set_condition(
                new.conditions, "Admitted", "False", reason, message, generation, utcnow()
            )
            meta = body["metadata"]
            try:
                updated = await self.ctx.writer.write_status(
                    namespace, name, meta["resourceVersion"], body.get("status") or {}, new.wire()
                )
            except (Conflict, Gone):
                return  # it moved on; the next pass sees where it is
            except Exception:
                self.ctx.metrics.api_errors.labels("admission").inc()
                log.exception("queue position not written", extra={"permitrequest": name})
                return
            self.ctx.written[(namespace, name)] = str(updated["metadata"]["resourceVersion"])
