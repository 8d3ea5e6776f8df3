"""PaymentsSimulator: the Stripe stand-in on a loopback port, for tests, the demo and the app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from . import stripejs
from .config import PaymentsConfig
from .control import Control
from .events import EventLog
from .idempotency import IdempotencyCache
from .intents import Payments
from .routes import Api, access_log
from .store import Json, Store, public
from .webhooks import WebhookDispatcher


class PaymentsSimulator:
    """Speaks the subset of Stripe's API the applicant API uses, through the real SDK.

    >>> sim = PaymentsSimulator(PaymentsConfig(api_key="sk_test_x", webhook_url=url,
    ...                                        webhook_secret="whsec_x"))
    >>> await sim.start()                   # port 0 picks a free port
    >>> client = stripe.StripeClient("sk_test_x", base_addresses={"api": sim.url})
    >>> sim.pay_oxxo(intent_id)             # the customer paid at the store
    >>> await sim.wait_for_deliveries()     # every webhook delivered or given up on
    """

    def __init__(self, config: PaymentsConfig | None = None) -> None:
        self.config = config or PaymentsConfig()
        self.store = Store()
        self.url = ""
        self.events = EventLog(self.store, lambda: self.config.api_version)
        self.webhooks = WebhookDispatcher(
            retry_base=lambda: self.config.retry_base_seconds,
            max_attempts=lambda: self.config.max_attempts,
            timeout=lambda: self.config.delivery_timeout_seconds,
            on_settled=self.events.settled,
        )
        self.webhooks.configure(self.config.webhook_url, self.config.webhook_secret)
        self.events.endpoint_count = lambda: len(self.webhooks.endpoints)
        self.events.listeners.append(self.webhooks.publish)
        self.idempotency = IdempotencyCache()
        self.payments = Payments(
            self.store,
            self.events,
            base_url=lambda: (self.config.public_url or self.url).rstrip("/"),
            default_oxxo_days=lambda: self.config.oxxo_default_expires_days,
            schedule=self._schedule,
            oxxo_test_delay=lambda: self.config.oxxo_test_delay_seconds,
        )
        self._runner: web.AppRunner | None = None
        self._expiry: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[access_log])
        api = Api(self.payments, self.store, self.idempotency, lambda: self.config)
        api.add_routes(app)
        Control(self.payments, self.store, self.webhooks, self.reset).add_routes(app)
        stripejs.add_routes(app)
        api.add_fallback(app)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.webhooks.start()
        # aiohttp's access log would print query strings; the middleware logs safely instead.
        self._runner = web.AppRunner(self.app(), shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{bound}"
        self._expiry = asyncio.get_running_loop().create_task(self._expire_vouchers())

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
            self._expiry = None
        await self.webhooks.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _schedule(self, delay: float, action: Callable[[], object]) -> None:
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(timer)
            action()

        timer = loop.call_later(delay, fire)
        self._timers.add(timer)

    async def _expire_vouchers(self) -> None:
        while True:
            await asyncio.sleep(self.config.expiry_check_seconds)
            self.payments.expire_due_vouchers()

    # ---- conveniences (same as the control API) ----------------------------------------------

    def pay_oxxo(self, intent_id: str) -> Json:
        """The customer paid the voucher at the store: requires_action → succeeded."""
        return public(self.payments.pay_oxxo(intent_id))

    def expire_oxxo(self, intent_id: str) -> Json:
        """The voucher lapsed unpaid: → requires_payment_method, payment_intent.payment_failed."""
        return public(self.payments.expire_oxxo(intent_id))

    def complete_3ds(self, intent_id: str, ok: bool = True) -> Json:
        """The cardholder passed (or failed) the 3-D Secure challenge."""
        return public(self.payments.complete_3ds(intent_id, ok=ok))

    def mark_processing(self, intent_id: str) -> Json:
        return public(self.payments.mark_processing(intent_id))

    def configure_webhook(self, url: str | None, secret: str) -> None:
        self.webhooks.configure(url, secret)

    def deliveries(self, event_id: str | None = None) -> list[dict[str, Any]]:
        return self.webhooks.deliveries(event_id)

    def event_types(self) -> list[str]:
        """Every event so far, oldest first."""
        return [e["type"] for e in self.store.events.values()]

    async def wait_for_deliveries(self, within: float = 10.0) -> None:
        await self.webhooks.idle(within)

    def reset(self) -> None:
        self.store.clear()
        self.idempotency.clear()
        self.webhooks.clear()
