"""A RunnerPool's status: how many runners run and how many requests wait (what `kubectl get
runnerpools` shows, and the scale subresource's selector an HPA needs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from permisos.kube import fmt_time
from permisos_operator import events
from permisos_operator.context import Context
from permisos_operator.indexes import Key
from permisos_operator.jobs import pool_selector
from permisos_operator.kube import Gone
from permisos_operator.metrics import PoolSnapshot
from permisos_operator.portal_gate import Gate
from permisos_operator.timeutil import utcnow

PORTAL_AVAILABLE = "PortalAvailable"
# A summary: written at most this often, so a burst of admissions costs one write, not many.
INTERVAL = 1.0


class PoolStatusWriter:
    def __init__(self, ctx: Context, pool: Key) -> None:
        self.ctx, self.pool = ctx, pool
        self._written_at = float("-inf")
        self._written: dict[str, object] | None = None

    async def write(self, snapshot: PoolSnapshot) -> None:
        pool = self.ctx.known.pool(*self.pool)
        if pool is None:
            return
        current = pool.status
        memory = self.ctx.portal(self.pool)
        hold = memory.hold.wire() if memory.hold is not None else None
        status = {
            "replicas": snapshot.running,
            "queued": snapshot.queued,
            "selector": pool_selector(self.pool[1]),
            "observedGeneration": pool.generation,
            "conditions": [_portal_condition(snapshot.gate, pool.generation, current)],
            "portalHold": hold,
            "circuit": memory.circuit.wire(),
        }
        if status == self._written or all(current.get(k) == v for k, v in status.items()):
            return
        wait = self._written_at + INTERVAL - time.monotonic()
        if wait > 0:
            # Too soon: the admission looks again once the interval is over.
            asyncio.get_running_loop().call_later(wait, self.ctx.wake(self.pool).set)
            return
        # Every change written is an Event (a flip undone within the interval is not), against
        # what this replica last wrote: the watch may not have brought that back yet. A new
        # pool's healthy start is not news.
        before = _condition(self._written or current)
        reason = snapshot.gate.reason
        if (before or {}).get("reason", "PortalHealthy") != reason:
            events.portal_gate(pool.ref, reason, snapshot.gate.message)
        self._written_at, self._written = time.monotonic(), status
        try:
            await self.ctx.writer.write_pool_status(*self.pool, status)
        except Gone:
            return


def _condition(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    found = (c for c in status.get("conditions") or [] if c.get("type") == PORTAL_AVAILABLE)
    return next(found, None)


def _portal_condition(
    gate: Gate, generation: int | None, current: Mapping[str, Any]
) -> dict[str, Any]:
    """PortalAvailable: True while attempts may start, False (why) while the portal's gate is
    closed; its transition time moves only when its status does."""
    value = "Unknown" if gate.reason == "InvalidTimeZone" else ("True" if gate.open else "False")
    before = _condition(current)
    since = (
        before["lastTransitionTime"]
        if before is not None and before.get("status") == value
        else fmt_time(utcnow())
    )
    condition = {
        "type": PORTAL_AVAILABLE,
        "status": value,
        "reason": gate.reason,
        "message": gate.message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition
