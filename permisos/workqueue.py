"""A keyed work queue, as Kubernetes controllers use: a key is never worked on twice at once.

Adding a key that is waiting does nothing; adding one that is being worked on marks it to be
worked on again afterwards. Delayed adds keep only the earliest deadline per key. The operator's
controller and the sandbox's Job and TTL controllers all work from one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._again: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        """The keys waiting to be worked on (not those being worked on, nor delayed ones)."""
        return len(self._queued)

    def add(self, key: K) -> None:
        if key in self._processing:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queues `key` after `delay` seconds; an earlier pending timer for it wins."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= due:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(due, self._fire, key)

    def add_at(self, key: K, when: datetime) -> None:
        """Queues `key` at the (timezone-aware) time `when`; an earlier pending timer wins."""
        self.add_after(key, (when - datetime.now(UTC)).total_seconds())

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def get(self) -> K:
        key = await self._ready.get()
        self._queued.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def clear(self) -> None:
        """Forgets everything waiting: timers, keys to work on again, and queued keys."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._again.clear()
        while not self._ready.empty():
            self._queued.discard(self._ready.get_nowait())
