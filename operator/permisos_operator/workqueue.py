"""A keyed work queue, as Kubernetes controllers use: a key is never worked on twice at once.

Adding a key that is waiting does nothing; adding one that is being worked on marks it to be
worked on again afterwards. Delayed adds keep only the earliest deadline per key.
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
        self._timers: dict[K, tuple[datetime, asyncio.TimerHandle]] = {}

    def __len__(self) -> int:
        return len(self._queued)

    def add(self, key: K) -> None:
        if key in self._processing:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def add_at(self, key: K, when: datetime) -> None:
        delay = (when - datetime.now(UTC)).total_seconds()
        if delay <= 0:
            self.add(key)
            return
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= when:
                return
            existing[1].cancel()
        handle = asyncio.get_running_loop().call_later(delay, self._fire, key)
        self._timers[key] = (when, handle)

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
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._again.clear()
        while not self._ready.empty():
            self._queued.discard(self._ready.get_nowait())
