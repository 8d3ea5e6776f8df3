"""The names of the PermitRequests the mirror has work for, as a controller's work queue holds
them: a name waits once however often it is added, and two workers never hold the same name
(one added while it is worked on is worked on again afterwards), so one request's writes and
finalizer patches stay in order while different requests proceed side by side."""

from __future__ import annotations

import asyncio


class NameQueue:
    def __init__(self) -> None:
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._waiting: set[str] = set()
        self._working: set[str] = set()
        self._again: set[str] = set()

    def add(self, name: str) -> None:
        if name in self._working:
            self._again.add(name)
        elif name not in self._waiting:
            self._waiting.add(name)
            self._ready.put_nowait(name)

    def add_after(self, name: str, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, name)

    async def get(self) -> str:
        name = await self._ready.get()
        self._waiting.discard(name)
        self._working.add(name)
        return name

    def done(self, name: str) -> None:
        self._working.discard(name)
        if name in self._again:
            self._again.discard(name)
            self.add(name)
