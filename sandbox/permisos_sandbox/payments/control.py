"""The control API tests and the demo use to play the outside world: the customer paying at an
OXXO store or letting the voucher lapse, the bank's 3-D Secure page, and webhook plumbing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from .config import DeliveryFaults
from .errors import ControlError, StripeError
from .intents import Payments
from .store import Json, Store, public
from .webhooks import WebhookDispatcher


class Control:
    def __init__(
        self,
        payments: Payments,
        store: Store,
        webhooks: WebhookDispatcher,
        reset: Callable[[], None],
    ) -> None:
        self.payments = payments
        self.store = store
        self.webhooks = webhooks
        self.reset = reset

    def add_routes(self, app: web.Application) -> None:
        actions: dict[str, Callable[[str], Json]] = {
            "/__control/oxxo/{id}/pay": self.payments.pay_oxxo,
            "/__control/oxxo/{id}/expire": self.payments.expire_oxxo,
            "/__control/3ds/{id}/complete": lambda i: self.payments.complete_3ds(i, ok=True),
            "/__control/3ds/{id}/fail": lambda i: self.payments.complete_3ds(i, ok=False),
            "/__control/payment_intents/{id}/processing": self.payments.mark_processing,
        }
        for path, action in actions.items():
            app.router.add_post(path, self._action(action))
        app.router.add_get("/__control/deliveries", self.deliveries)
        app.router.add_get("/__control/webhooks", self.get_webhooks)
        app.router.add_post("/__control/webhooks", self.set_webhooks)
        app.router.add_get("/__control/webhooks/faults", self.get_faults)
        app.router.add_put("/__control/webhooks/faults", self.set_faults)
        app.router.add_post("/__control/events/{id}/resend", self.resend)
        app.router.add_post("/__control/reset", self.do_reset)
        app.router.add_get("/__control/health", self.health)

    @staticmethod
    def _action(action: Callable[[str], Json]) -> Callable[[web.Request], Any]:
        async def handle(request: web.Request) -> web.Response:
            try:
                pi = action(request.match_info["id"])
            except StripeError as exc:
                return web.json_response(exc.body(), status=exc.status)
            except ControlError as exc:
                return web.json_response({"error": {"message": str(exc)}}, status=409)
            return web.json_response(public(pi))

        return handle

    async def deliveries(self, request: web.Request) -> web.Response:
        event_id = request.query.get("event")
        return web.json_response({"deliveries": self.webhooks.deliveries(event_id)})

    async def get_webhooks(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"endpoints": [{"id": e.id, "url": e.url} for e in self.webhooks.endpoints]}
        )

    async def set_webhooks(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text() or "{}")
        except json.JSONDecodeError:
            return web.json_response({"error": {"message": "body must be JSON"}}, status=400)
        url, secret = body.get("url"), body.get("secret")
        if url is not None and not isinstance(url, str):
            return web.json_response({"error": {"message": "url must be a string"}}, status=400)
        if url and (not isinstance(secret, str) or not secret.startswith("whsec_")):
            return web.json_response({"error": {"message": "secret must be whsec_…"}}, status=400)
        self.webhooks.configure(url, secret or "")
        return await self.get_webhooks(request)

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.webhooks.faults.model_dump(mode="json"))

    async def set_faults(self, request: web.Request) -> web.Response:
        """Merges the body's fields into the delivery faults; `{}` shows them unchanged."""
        try:
            changes = json.loads(await request.text() or "{}")
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object")
            merged = DeliveryFaults.model_validate(self.webhooks.faults.model_dump() | changes)
        except ValidationError as exc:
            errors = json.loads(exc.json(include_url=False, include_input=False))
            body = {"error": {"message": "invalid delivery faults", "detail": errors}}
            return web.json_response(body, status=400)
        except ValueError as exc:  # JSONDecodeError included
            return web.json_response({"error": {"message": str(exc)}}, status=400)
        self.webhooks.faults = merged
        return await self.get_faults(request)

    async def resend(self, request: web.Request) -> web.Response:
        event = self.store.events.get(request.match_info["id"])
        if event is None:
            return web.json_response({"error": {"message": "no such event"}}, status=404)
        return web.json_response({"resent_to": self.webhooks.resend(event)})

    async def do_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})
