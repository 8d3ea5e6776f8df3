"""List-then-watch caches of one resource type (client-go's informer, in small).

A watch that breaks is resumed from the last resourceVersion seen; one that answers 410 Gone
(its history was compacted) or any other error is replaced by a fresh list, and what vanished
in between is reported as deleted. Handlers are plain callables that must not block: they
enqueue work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from lightkube import ALL_NS, AsyncClient

from .kube import JSON, as_dict, key_of, status_code

log = logging.getLogger("permisos.executor")
Key = tuple[str, str]
Handler = Callable[[str, JSON], None]

_RETRY_FIRST = 0.2
_RETRY_MAX = 5.0
_TOMBSTONES = 10_000
# Each watch request asks the server to end it after this long (client-go: 5 to 10 minutes);
# the watch then resumes from the last resourceVersion seen, or lists again if that is gone.
WATCH_TIMEOUT_SECONDS = 300


def _rv(obj: JSON) -> int | None:
    try:
        return int(obj["metadata"].get("resourceVersion") or "")
    except ValueError:
        return None


def newer(candidate: JSON, current: JSON | None) -> bool:
    """Whether `candidate` is a later version than `current`. resourceVersions are opaque to
    clients in general; when both are integers (etcd's and the emulator's are) the larger one
    wins, otherwise the later arrival does."""
    if current is None:
        return True
    a, b = _rv(candidate), _rv(current)
    return a is None or b is None or a > b


class Informer:
    def __init__(
        self,
        client: AsyncClient,
        resource: Any,
        namespace: str | None,
        *,
        fields: dict[str, Any] | None = None,
        server_timeout: int = WATCH_TIMEOUT_SECONDS,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.fields = fields
        self.server_timeout = server_timeout
        self.handlers: list[Handler] = []
        self.synced = asyncio.Event()
        self._cache: dict[Key, JSON] = {}
        # resourceVersions of deletions, so a late write response never resurrects an object.
        self._tombstones: dict[Key, JSON] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def kind(self) -> str:
        return str(self.resource.__name__)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"watch-{self.kind}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def get(self, key: Key) -> JSON | None:
        return self._cache.get(key)

    def values(self) -> Iterator[JSON]:
        return iter(list(self._cache.values()))

    def put(self, obj: JSON) -> None:
        """Records an object a write of ours returned, before its watch event arrives."""
        self._apply("MODIFIED", obj)

    def forget(self, obj: JSON) -> None:
        """Records a deletion of ours (the object is gone for good)."""
        self._apply("DELETED", obj)

    def _dispatch(self, event_type: str, obj: JSON) -> None:
        for handler in self.handlers:
            try:
                handler(event_type, obj)
            except Exception:  # one handler's bug never stops the watch
                log.exception("%s handler failed", self.kind)

    def _apply(self, event_type: str, obj: JSON) -> None:
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            return
        key = key_of(obj)
        current = self._cache.get(key)
        if event_type == "DELETED":
            if current is not None and current["metadata"].get("uid") != obj["metadata"].get("uid"):
                return  # the end of an earlier object of the same name
            self._cache.pop(key, None)
            self._tombstones.pop(key, None)
            self._tombstones[key] = obj
            while len(self._tombstones) > _TOMBSTONES:
                self._tombstones.pop(next(iter(self._tombstones)))
            if current is not None:
                self._dispatch("DELETED", obj)
            return
        tomb = self._tombstones.get(key)
        if tomb is not None:
            if not newer(obj, tomb):
                return
            del self._tombstones[key]
        if not newer(obj, current):
            return
        self._cache[key] = obj
        self._dispatch("ADDED" if current is None else "MODIFIED", obj)

    async def _relist(self) -> str:
        items = self.client.list(
            self.resource, namespace=self.namespace or ALL_NS, fields=self.fields
        )
        fresh = {key_of(o): o for o in [as_dict(i) async for i in items]}
        version = str(items.resourceVersion)
        self._tombstones.clear()
        for key, old in list(self._cache.items()):
            if key not in fresh:
                self._cache.pop(key)
                self._dispatch("DELETED", old)
            elif old["metadata"].get("uid") != fresh[key]["metadata"].get("uid"):
                # Deleted and created again while we were not watching.
                self._cache.pop(key)
                self._dispatch("DELETED", old)
        for obj in fresh.values():
            self._apply("MODIFIED", obj)
        return version

    async def _run(self) -> None:
        delay = _RETRY_FIRST
        while True:
            try:
                version = await self._relist()
                self.synced.set()
                delay = _RETRY_FIRST
                async for event_type, obj in self.client.watch(
                    self.resource,
                    namespace=self.namespace or ALL_NS,
                    fields=self.fields,
                    resource_version=version,
                    server_timeout=self.server_timeout,
                ):
                    self._apply(event_type, as_dict(obj))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if status_code(error) == 410:
                    log.info("%s watch expired (410 Gone); listing again", self.kind)
                    continue
                log.warning("%s watch failed (%s); listing again in %.1fs", self.kind, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)
