"""Objects, the global resourceVersion, the per-type event history and live watchers.

Everything here runs on one event loop without awaiting, so taking a snapshot and subscribing a
watcher happen atomically: no event can fall between a list and the watch that follows it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import gone

JSON = dict[str, Any]
Predicate = Callable[[JSON], bool]


@dataclass(frozen=True)
class Event:
    type: str
    obj: JSON
    old: JSON | None
    rv: int


class Watcher:
    """One client's watch: filters events through its selectors into a queue."""

    def __init__(self, key: str, predicate: Predicate | None) -> None:
        self.key = key
        self.predicate = predicate
        self.queue: asyncio.Queue[tuple[str, JSON] | None] = asyncio.Queue()

    def _matches(self, obj: JSON | None) -> bool:
        return obj is not None and (self.predicate is None or self.predicate(obj))

    def offer(self, event: Event) -> None:
        if event.type != "MODIFIED":
            if self._matches(event.obj):
                self.queue.put_nowait((event.type, event.obj))
            return
        now, before = self._matches(event.obj), self._matches(event.old)
        # Objects entering or leaving the selection look like creations and deletions.
        if now and before:
            self.queue.put_nowait(("MODIFIED", event.obj))
        elif now:
            self.queue.put_nowait(("ADDED", event.obj))
        elif before:
            self.queue.put_nowait(("DELETED", event.obj))

    def close(self) -> None:
        self.queue.put_nowait(None)


# Events kept per resource type for watches resuming from a resourceVersion; a real API server
# keeps about five minutes' worth, which bursts of thousands of writes fill quickly.
DEFAULT_HISTORY = 10_000


class Store:
    def __init__(self, history_limit: int = DEFAULT_HISTORY) -> None:
        self.history_limit = max(1, history_limit)
        self.rv = 0
        self._objects: dict[str, dict[tuple[str, str], JSON]] = {}
        self._history: dict[str, deque[Event]] = {}
        # The newest resourceVersion evicted from a type's history: resuming before it is 410.
        self._compacted: dict[str, int] = {}
        self._watchers: dict[str, set[Watcher]] = {}
        self.listeners: list[Callable[[str, Event], None]] = []

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def get(self, key: str, namespace: str, name: str) -> JSON | None:
        return self._objects.get(key, {}).get((namespace, name))

    def items(self, key: str, namespace: str | None = None) -> list[JSON]:
        objs = self._objects.get(key, {})
        keys = sorted(k for k in objs if namespace is None or k[0] == namespace)
        return [objs[k] for k in keys]

    def keys(self) -> list[str]:
        return list(self._objects)

    def all_objects(self) -> list[tuple[str, JSON]]:
        return [(key, obj) for key, objs in self._objects.items() for obj in objs.values()]

    def write(self, key: str, obj: JSON, old: JSON | None) -> None:
        """Stores obj (its resourceVersion already set) and tells watchers."""
        meta = obj["metadata"]
        self._objects.setdefault(key, {})[(meta.get("namespace", ""), meta["name"])] = obj
        rv = int(meta["resourceVersion"])
        self._emit(key, Event("ADDED" if old is None else "MODIFIED", obj, old, rv))

    def remove(self, key: str, obj: JSON) -> None:
        meta = obj["metadata"]
        self._objects.get(key, {}).pop((meta.get("namespace", ""), meta["name"]), None)
        self._emit(key, Event("DELETED", obj, None, int(meta["resourceVersion"])))

    def drop_type(self, key: str) -> None:
        self._objects.pop(key, None)

    def _emit(self, key: str, event: Event) -> None:
        history = self._history.setdefault(key, deque())
        if len(history) >= self.history_limit:
            self._compacted[key] = history.popleft().rv
        history.append(event)
        for watcher in list(self._watchers.get(key, ())):
            watcher.offer(event)
        for listener in self.listeners:
            listener(key, event)

    def watch(
        self,
        key: str,
        namespace: str | None,
        predicate: Predicate | None,
        since: int | None,
    ) -> tuple[Watcher, list[tuple[str, JSON]]]:
        """Subscribes and returns the events the client must see first.

        Without a resourceVersion those are synthetic ADDEDs for what exists now; with one, the
        recorded events after it, or 410 Expired when they are no longer in the history.
        """

        def visible(obj: JSON) -> bool:
            in_ns = namespace is None or obj["metadata"].get("namespace") == namespace
            return in_ns and (predicate is None or predicate(obj))

        watcher = Watcher(key, visible)
        backlog: list[tuple[str, JSON]] = []
        if since is None:
            backlog = [("ADDED", obj) for obj in self.items(key, namespace) if visible(obj)]
        else:
            if since < self._compacted.get(key, 0):
                raise gone(f"too old resource version: {since} ({self._compacted[key] + 1})")
            replay = Watcher(key, visible)
            for event in self._history.get(key, ()):
                if event.rv > since:
                    replay.offer(event)
            while not replay.queue.empty():
                item = replay.queue.get_nowait()
                if item is not None:
                    backlog.append(item)
        self._watchers.setdefault(key, set()).add(watcher)
        return watcher, backlog

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.key, set()).discard(watcher)

    def close_watchers(self) -> None:
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.close()
        self._watchers.clear()
