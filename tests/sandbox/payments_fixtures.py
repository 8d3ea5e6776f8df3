"""Shared pieces of the payments simulator's contract tests: the simulator, a real `stripe`
client pointed at it, and a webhook receiver that records what it gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import stripe
from aiohttp import web

from permisos_sandbox.payments import PaymentsConfig, PaymentsSimulator

API_KEY = "sk_test_contract_4eC39HqLyjWDarjtT1zdp7dc"
SECRET = "whsec_contract_test_secret"

T = TypeVar("T")


@dataclass
class Received:
    body: bytes
    signature: str

    @property
    def event(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A merchant's webhook endpoint. `statuses` are answered first, then 200."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(await request.read(), request.headers["Stripe-Signature"]))
        async with self._arrived:
            self._arrived.notify_all()
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")

    def events(self, type_: str | None = None) -> list[dict[str, Any]]:
        return [r.event for r in self.received if type_ is None or r.event["type"] == type_]

    async def wait_for(self, type_: str, intent_id: str, timeout: float = 5.0) -> Received:
        def find() -> Received | None:
            for r in self.received:
                event = r.event
                if event["type"] == type_ and event["data"]["object"].get("id") == intent_id:
                    return r
            return None

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: find() is not None)
        found = find()
        assert found is not None
        return found


@dataclass
class Harness:
    sim: PaymentsSimulator
    client: stripe.StripeClient
    receiver: Receiver

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous SDK call off the event loop, as the app's threads would."""
        return await asyncio.to_thread(fn, *args, **kwargs)


def make_client(url: str, api_key: str = API_KEY) -> stripe.StripeClient:
    # No SDK retries: a contract test must see the simulator's first answer.
    return stripe.StripeClient(api_key, base_addresses={"api": url}, max_network_retries=0)


@contextlib.asynccontextmanager
async def harness(**config: Any) -> AsyncIterator[Harness]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/webhooks/stripe", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    receiver.url = f"http://127.0.0.1:{port}/webhooks/stripe"
    settings: dict[str, Any] = {
        "api_key": API_KEY,
        "webhook_url": receiver.url,
        "webhook_secret": SECRET,
        "retry_base_seconds": 0.1,
        "max_attempts": 4,
        "oxxo_test_delay_seconds": 0.2,
        **config,
    }
    sim = PaymentsSimulator(PaymentsConfig(**settings))
    await sim.start()
    try:
        yield Harness(sim, make_client(sim.url), receiver)
    finally:
        await sim.stop()
        await runner.cleanup()


def oxxo_params(amount: int = 37_450, **extra: Any) -> dict[str, Any]:
    """Create-and-confirm parameters for an OXXO PaymentIntent, as the applicant API sends them."""
    return {
        "amount": amount,
        "currency": "mxn",
        "payment_method_types": ["oxxo"],
        "payment_method_data": {
            "type": "oxxo",
            "billing_details": {"name": "Juana Pérez López", "email": "juana@example.com"},
        },
        "confirm": True,
        "metadata": {"application_id": "app-123"},
        **extra,
    }
