"""Webhook endpoints: Stripe's signature scheme and delivery with exponential-backoff retries.

`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<payload>" keyed by the whsec_ secret>`.
Each attempt is signed afresh with the time it is sent, as Stripe does. Deliveries run as tasks,
never inside the API request that caused them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from .config import DeliveryFaults
from .store import Json, new_id, public

log = logging.getLogger("permisos_sandbox.payments.webhooks")


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header value for a payload."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@dataclass
class Endpoint:
    url: str
    secret: str
    id: str = field(default_factory=lambda: new_id("we"))


@dataclass
class Attempt:
    """One POST of one event to one endpoint (GET /__control/deliveries)."""

    event_id: str
    event_type: str
    endpoint: str
    url: str
    attempt: int
    outcome: str  # succeeded | retrying | failed | lost (an injected fault)
    status: int | None
    error: str | None
    at: float
    duration_ms: float
    next_retry_in: float | None = None


class WebhookDispatcher:
    def __init__(
        self,
        *,
        retry_base: Callable[[], float],
        max_attempts: Callable[[], int],
        timeout: Callable[[], float],
        on_settled: Callable[[str], None],
    ) -> None:
        self.endpoints: list[Endpoint] = []
        self.attempts: list[Attempt] = []
        self.faults = DeliveryFaults()
        self._held: list[Json] = []  # events kept back to be delivered out of order
        self._retry_base = retry_base
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._on_settled = on_settled
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def configure(self, url: str | None, secret: str) -> None:
        """Replace the endpoints with one (or none when url is empty)."""
        self.endpoints = [Endpoint(url, secret)] if url else []

    async def start(self) -> None:
        # No proxies from the environment: receivers are on loopback.
        self._session = aiohttp.ClientSession(trust_env=False)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def publish(self, event: Json) -> None:
        """Deliver a new event to every endpoint, in the background, as `faults` say."""
        faults = self.faults
        if self._to_lose(event):
            faults.lose_next -= 1
            self._lose(event)
        elif faults.reorder_seconds > 0:
            if not self._held:
                self._track(self._release_held(faults.reorder_seconds))
            self._held.append(event)
        else:
            self._send(event)

    def _to_lose(self, event: Json) -> bool:
        faults = self.faults
        if not faults.lose_next or (faults.lose_types and event["type"] not in faults.lose_types):
            return False
        methods = (event.get("data", {}).get("object") or {}).get("payment_method_types") or []
        return not faults.lose_methods or bool(set(methods) & set(faults.lose_methods))

    def _send(self, event: Json) -> None:
        copies, delay = self.faults.copies, self.faults.delay_seconds
        for endpoint in self.endpoints:
            for copy in range(copies):
                self._spawn(endpoint, event, settle=copy == 0, delay=delay)

    async def _release_held(self, after: float) -> None:
        await asyncio.sleep(after)
        held, self._held = self._held, []
        for event in reversed(held):
            self._send(event)

    def _lose(self, event: Json) -> None:
        """Recorded as an attempt that never left (outcome `lost`), and no longer pending."""
        for endpoint in self.endpoints:
            self._record(endpoint, event, 0, "lost", None, "lost (injected)", 0.0, None)
            self._on_settled(event["id"])
        log.info("webhook %s: lost (injected)", event["type"])

    def resend(self, event: Json) -> int:
        for endpoint in self.endpoints:
            self._spawn(endpoint, event, settle=False)
        return len(self.endpoints)

    def _spawn(
        self, endpoint: Endpoint, event: Json, settle: bool = True, delay: float = 0.0
    ) -> None:
        if self._session is None:
            log.warning("webhook dispatcher not started; event %s not delivered", event["id"])
            return
        self._track(self._deliver(endpoint, event, settle, delay))

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def idle(self, within: float = 10.0) -> None:
        """Wait until no delivery (or retry) is outstanding."""
        deadline = time.monotonic() + within
        while self._tasks:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("webhook deliveries still outstanding")
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def _deliver(self, endpoint: Endpoint, event: Json, settle: bool, delay: float) -> None:
        # One payload for every attempt, as Stripe sends the same event body on retries.
        payload = json.dumps(public(event), indent=2)
        attempts = self._max_attempts()
        try:
            await asyncio.sleep(delay)
            for number in range(1, attempts + 1):
                ok = await self._attempt(endpoint, event, payload, number, attempts)
                if ok:
                    return
                if number < attempts:
                    await asyncio.sleep(self._retry_base() * 2 ** (number - 1))
        finally:
            if settle:
                self._on_settled(event["id"])

    async def _attempt(
        self, endpoint: Endpoint, event: Json, payload: str, number: int, attempts: int
    ) -> bool:
        assert self._session is not None
        started = time.monotonic()
        status: int | None = None
        error: str | None = None
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, endpoint.secret),
        }
        try:
            async with self._session.post(
                endpoint.url,
                data=payload.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self._timeout()),
                allow_redirects=False,
            ) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        retry_in = None if ok or number >= attempts else self._retry_base() * 2 ** (number - 1)
        outcome = "succeeded" if ok else ("retrying" if retry_in is not None else "failed")
        took = round((time.monotonic() - started) * 1000, 1)
        self._record(endpoint, event, number, outcome, status, error, took, retry_in)
        log.info(
            "webhook %s attempt %d: %s (%s)",
            event["type"],
            number,
            outcome,
            status if status is not None else error,
        )
        return ok

    def _record(
        self,
        endpoint: Endpoint,
        event: Json,
        number: int,
        outcome: str,
        status: int | None,
        error: str | None,
        duration_ms: float,
        retry_in: float | None,
    ) -> None:
        self.attempts.append(
            Attempt(
                event_id=event["id"],
                event_type=event["type"],
                endpoint=endpoint.id,
                url=endpoint.url,
                attempt=number,
                outcome=outcome,
                status=status,
                error=error,
                at=time.time(),
                duration_ms=duration_ms,
                next_retry_in=retry_in,
            )
        )

    def deliveries(self, event_id: str | None = None) -> list[dict[str, Any]]:
        return [asdict(a) for a in self.attempts if event_id is None or a.event_id == event_id]

    def clear(self) -> None:
        self.attempts.clear()
        self.faults = DeliveryFaults()
        self._held.clear()
        with contextlib.suppress(RuntimeError):
            for task in list(self._tasks):
                task.cancel()
