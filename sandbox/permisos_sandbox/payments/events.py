"""Events: every state change becomes an `evt_` object, stored for /v1/events and published."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from .store import Json, Store, new_id, now, public


@dataclass(frozen=True)
class RequestInfo:
    """The API request that caused an event (`event.request`); None ids for control actions."""

    id: str | None = None
    idempotency_key: str | None = None


class EventLog:
    def __init__(self, store: Store, api_version: Callable[[], str]) -> None:
        self.store = store
        self.api_version = api_version
        # How many endpoints will receive a new event; set by the webhook dispatcher.
        self.endpoint_count: Callable[[], int] = lambda: 0
        self.listeners: list[Callable[[Json], None]] = []

    def emit(self, type_: str, obj: Json, request: RequestInfo | None = None) -> Json:
        request = request or RequestInfo()
        event: Json = {
            "id": new_id("evt"),
            "object": "event",
            "api_version": self.api_version(),
            "created": now(),
            # A snapshot: later changes to the object must not rewrite history.
            "data": {"object": copy.deepcopy(public(obj))},
            "livemode": False,
            "pending_webhooks": self.endpoint_count(),
            "request": {"id": request.id, "idempotency_key": request.idempotency_key},
            "type": type_,
        }
        self.store.events[event["id"]] = event
        for listener in self.listeners:
            listener(event)
        return event

    def settled(self, event_id: str) -> None:
        """One endpoint stopped waiting for this event (delivered, or out of retries)."""
        event = self.store.events.get(event_id)
        if event is not None and event["pending_webhooks"] > 0:
            event["pending_webhooks"] -= 1
