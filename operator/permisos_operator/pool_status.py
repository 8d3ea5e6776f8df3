"""A RunnerPool's status: how many runners run and how many requests wait (what `kubectl get
runnerpools` shows, and the scale subresource's selector an HPA needs)."""

from __future__ import annotations

import asyncio
import time

from permisos_operator.context import Context
from permisos_operator.indexes import Key
from permisos_operator.jobs import pool_selector
from permisos_operator.kube import Gone
from permisos_operator.metrics import PoolSnapshot

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
        status = {
            "replicas": snapshot.running,
            "queued": snapshot.queued,
            "selector": pool_selector(self.pool[1]),
            "observedGeneration": pool.generation,
        }
        current = pool.status
        if status == self._written or all(current.get(k) == v for k, v in status.items()):
            return
        wait = self._written_at + INTERVAL - time.monotonic()
        if wait > 0:
            # Too soon: the admission looks again once the interval is over.
            asyncio.get_running_loop().call_later(wait, self.ctx.wake(self.pool).set)
            return
        self._written_at, self._written = time.monotonic(), status
        try:
            await self.ctx.writer.write_pool_status(*self.pool, status)
        except Gone:
            return
