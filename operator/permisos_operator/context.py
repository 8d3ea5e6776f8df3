"""What every handler of the operator works with, kept in Kopf's memo.

Kopf owns the watches, the per-object workers and the indexes. What is ours is small: the
client, the metrics, one lock per request (handlers of a request, of its Job and pod, its pool's
admission and the rechecks may all want to act on it at once), a wake-up per pool, the
admissions whose status write the watches have not brought back yet, and when each request
wants its next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from permisos.resources import PortalCircuit, PortalHold
from permisos_operator.indexes import Indexes, Key
from permisos_operator.kube import Writer
from permisos_operator.leadership import Leadership
from permisos_operator.metrics import OperatorMetrics, PoolSnapshot
from permisos_operator.portal_gate import MINUTE
from permisos_operator.settings import OperatorSettings

# An admission is "recent" until the watches have certainly shown its Running phase and its Job:
# meanwhile the pool counts it as running, and no recheck creates its Job a second time.
ADMISSION_GRACE = 10.0


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Key, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Key) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class RecentAdmissions:
    """Admissions the indexes do not show yet, by pool: each request with the attempt it was
    admitted for, until its watch event shows that attempt (or ADMISSION_GRACE passes)."""

    def __init__(self) -> None:
        self._by_pool: dict[Key, dict[str, tuple[int, float]]] = {}

    def note(self, pool: Key, name: str, attempt: int) -> None:
        self._by_pool.setdefault(pool, {})[name] = (attempt, time.monotonic())

    def forget(self, pool: Key, name: str) -> None:
        self._by_pool.get(pool, {}).pop(name, None)

    def shown(self, pool: Key, name: str, attempts: int) -> None:
        """The request's watch event (already in the indexes) shows `attempts`."""
        noted = self._by_pool.get(pool, {}).get(name)
        if noted is not None and attempts >= noted[0]:
            self.forget(pool, name)

    def of(self, pool: Key) -> set[str]:
        admitted = self._by_pool.get(pool, {})
        horizon = time.monotonic() - ADMISSION_GRACE
        for name in [name for name, (_, at) in admitted.items() if at < horizon]:
            del admitted[name]
        return set(admitted)


@dataclass
class PortalMemory:
    """What a pool's portal gate needs beyond the indexes: when its recent attempts started (for
    the rate limit; a newly active replica takes them from the Jobs), the wait the portal last
    asked for and the circuit breaker's state (the active replica's own, written into the
    pool's status and read back by the next one)."""

    started: deque[datetime] = field(default_factory=deque)
    hold: PortalHold | None = None
    circuit: PortalCircuit = field(default_factory=PortalCircuit)
    # How long the pool's recent attempts took, seconds (for the queue's estimated starts).
    durations: deque[float] = field(default_factory=lambda: deque(maxlen=20))

    def note_start(self, now: datetime) -> None:
        self.started.append(now)
        while self.started and self.started[0] <= now - MINUTE:
            self.started.popleft()

    def note_hold(self, hold: PortalHold | None) -> None:
        if hold is not None and (self.hold is None or hold.until > self.hold.until):
            self.hold = hold


@dataclass
class Context:
    writer: Writer
    settings: OperatorSettings
    metrics: OperatorMetrics
    leadership: Leadership
    indexes: Indexes | None = None  # Kopf's, handed over by the startup handler
    locks: KeyedLocks = field(default_factory=KeyedLocks)  # per request
    admissions: RecentAdmissions = field(default_factory=RecentAdmissions)
    snapshots: dict[Key, PoolSnapshot] = field(default_factory=dict)
    # When each running or backing-off request wants to be looked at again by the rechecks, and
    # the resourceVersion that was decided on.
    due: dict[Key, tuple[datetime, int]] = field(default_factory=dict)
    # The resourceVersion each request's last status write returned: its watch event brings
    # nothing the operator does not know, so it is not reconciled again.
    written: dict[Key, str] = field(default_factory=dict)
    portals: dict[Key, PortalMemory] = field(default_factory=dict)
    _wakes: dict[Key, asyncio.Event] = field(default_factory=dict)
    _pool_locks: dict[Key, asyncio.Lock] = field(default_factory=dict)

    @property
    def known(self) -> Indexes:
        assert self.indexes is not None, "indexes are handed over before any handler runs"
        return self.indexes

    def wake(self, pool: Key) -> asyncio.Event:
        """The event that wakes the pool's admission."""
        return self._wakes.setdefault(pool, asyncio.Event())

    def portal(self, pool: Key) -> PortalMemory:
        return self.portals.setdefault(pool, PortalMemory())

    def pool_lock(self, pool: Key) -> asyncio.Lock:
        """Held while deciding about the pool's room (taken before any request's lock)."""
        return self._pool_locks.setdefault(pool, asyncio.Lock())
