"""The Stripe-compatible HTTP API under /v1, plus the hosted voucher and 3-D Secure pages.

Requests are authenticated with the secret key (Bearer or Basic), bodies are form-encoded with
bracket notation, POSTs honour Idempotency-Key, errors are Stripe's error object.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from . import forms, oxxo, stripejs
from . import publishable as publishable_key
from .config import PaymentsConfig
from .errors import ControlError, StripeError
from .events import RequestInfo
from .idempotency import IdempotencyCache
from .intents import Payments, expandable
from .store import Json, Store, new_id, paginate, public

log = logging.getLogger("permisos_sandbox.payments")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Operation = Callable[[web.Request, forms.Params, RequestInfo], Json]

NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization "
    "header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See "
    "https://stripe.com/docs/api#authentication for details, or we can help at "
    "https://support.stripe.com/."
)


# Stripe's API answers browsers from any origin (Stripe.js calls it from the merchant's page).
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, PATCH, POST, DELETE",
    "Access-Control-Expose-Headers": "Request-Id, Stripe-Manage-Version, Stripe-Should-Retry, "
    "X-Stripe-External-Auth-Required, X-Stripe-Privileged-Session-Required",
    "Access-Control-Max-Age": "300",
}


def _redact(key: str) -> str:
    return key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "*" * len(key)


def _json(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    return web.Response(
        status=status, body=body, headers=headers, content_type="application/json", charset="utf-8"
    )


def _dump(obj: object) -> bytes:
    return json.dumps(obj, indent=2).encode()


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One line per request: method, route template, status. Never bodies or query strings."""
    started = time.monotonic()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        template = resource.canonical if resource is not None else "-"
        log.info(
            "%s %s %d %.1fms", request.method, template, status, (time.monotonic() - started) * 1000
        )


class Api:
    def __init__(
        self,
        payments: Payments,
        store: Store,
        idempotency: IdempotencyCache,
        config: Callable[[], PaymentsConfig],
    ) -> None:
        self.payments = payments
        self.store = store
        self.idempotency = idempotency
        self.config = config

    def add_routes(self, app: web.Application) -> None:
        p = self.payments
        ops: list[tuple[str, str, Operation]] = [
            ("POST", "/v1/payment_intents", lambda r, q, i: p.create_intent(q, i)),
            (
                "GET",
                "/v1/payment_intents",
                lambda r, q, i: paginate(self.store.intents, q, "/v1/payment_intents"),
            ),
            ("GET", "/v1/payment_intents/{id}", lambda r, q, i: p.intent(r.match_info["id"])),
            (
                "POST",
                "/v1/payment_intents/{id}",
                lambda r, q, i: p.update_intent(r.match_info["id"], q),
            ),
            (
                "POST",
                "/v1/payment_intents/{id}/confirm",
                lambda r, q, i: p.confirm_intent(r.match_info["id"], q, i),
            ),
            (
                "POST",
                "/v1/payment_intents/{id}/cancel",
                lambda r, q, i: p.cancel_intent(r.match_info["id"], q, i),
            ),
            ("POST", "/v1/payment_methods", lambda r, q, i: p.create_payment_method(q)),
            (
                "GET",
                "/v1/payment_methods/{id}",
                lambda r, q, i: p.payment_method(r.match_info["id"]),
            ),
            ("GET", "/v1/charges/{id}", lambda r, q, i: p.charge(r.match_info["id"])),
            ("POST", "/v1/refunds", lambda r, q, i: p.create_refund(q, i)),
            ("GET", "/v1/refunds/{id}", lambda r, q, i: p.refund(r.match_info["id"])),
            ("GET", "/v1/events", lambda r, q, i: self._events(q)),
            ("GET", "/v1/events/{id}", lambda r, q, i: self._event(r.match_info["id"])),
        ]
        for method, path, op in ops:
            app.router.add_route(method, path, self._endpoint(op))
        app.router.add_get("/vouchers/{id}", self.voucher)
        app.router.add_get("/3ds/{id}", self.challenge)
        app.router.add_post("/3ds/{id}/{result:complete|fail}", self.challenge_result)

    def add_fallback(self, app: web.Application) -> None:
        app.router.add_route("OPTIONS", "/v1/{tail:.*}", self.preflight)
        app.router.add_route("*", "/v1/{tail:.*}", self.unrecognized)

    # ---- the /v1 envelope --------------------------------------------------------------------

    def _authenticate(self, request: web.Request, params: forms.Params) -> tuple[str, bool]:
        """The key, and whether it is the publishable one. Stripe.js sends it as the `key`
        parameter (so its requests need no CORS preflight); SDKs in the Authorization header."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = value.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(value.strip()).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                key = ""
        elif isinstance(params.get("key"), str):
            key = params["key"]
        if not key:
            raise StripeError(401, NO_KEY)
        config = self.config()
        if key == config.publishable_key:
            return key, True
        if key != config.api_key:
            raise StripeError(
                401,
                f"Invalid API Key provided: {_redact(key)}",
                code="api_key_invalid" if key.startswith("sk_") else None,
            )
        return key, False

    def _admit(self, request: web.Request, params: forms.Params, publishable: bool) -> None:
        template = request.match_info.route.resource.canonical  # type: ignore[union-attr]
        if publishable:
            publishable_key.admit(request.method, template)
        if template in publishable_key.NEEDS_SECRET and (publishable or "client_secret" in params):
            intent = self.store.intents.get(request.match_info["id"])
            publishable_key.check_secret(intent, params.get("client_secret"))
        publishable_key.pop_auth(params)

    def _endpoint(self, op: Operation) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            request_id = new_id("req", 14)
            headers = {
                **CORS,
                "Request-Id": request_id,
                "Stripe-Version": request.headers.get("Stripe-Version", self.config().api_version),
            }
            publishable = False
            try:
                if request.method == "POST":
                    pairs = parse_qsl(await request.text(), keep_blank_values=True)
                else:
                    pairs = list(request.query.items())
                params = forms.parse(pairs)
                account, publishable = self._authenticate(request, params)
                self._admit(request, params, publishable)
            except StripeError as exc:
                return _json(exc.status, _dump(exc.body()), {**headers, **exc.headers})
            key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
            info = RequestInfo(request_id, key)
            endpoint = f"{request.method} {request.path}"
            if key:
                headers["Idempotency-Key"] = key
                try:
                    saved = self.idempotency.lookup(account, key, endpoint, pairs)
                except StripeError as exc:
                    return _json(exc.status, _dump(exc.body()), headers)
                if saved is not None:
                    headers.update(
                        {"Idempotent-Replayed": "true", "Original-Request": saved.request_id}
                    )
                    return _json(saved.status, saved.body, headers)
                self.idempotency.begin(account, key)
            result: tuple[int, bytes, str] | None = None
            try:
                obj = expandable(op(request, params, info), self.store, params.get("expand"))
                body = _dump(publishable_key.client_view(obj) if publishable else obj)
                result = (200, body, request_id)
                return _json(200, body, headers)
            except StripeError as exc:
                if publishable and isinstance(exc.extra.get("payment_intent"), dict):
                    exc.extra["payment_intent"] = publishable_key.client_view(
                        exc.extra["payment_intent"]
                    )
                body = _dump(exc.body())
                if exc.saved:
                    result = (exc.status, body, request_id)
                return _json(exc.status, body, {**headers, **exc.headers})
            finally:
                if key:
                    self.idempotency.finish(account, key, endpoint, pairs, result)

        return handle

    async def unrecognized(self, request: web.Request) -> web.Response:
        error = StripeError(
            404,
            f"Unrecognized request URL ({request.method}: {request.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )
        return _json(404, _dump(error.body()), {**CORS, "Request-Id": new_id("req", 14)})

    async def preflight(self, request: web.Request) -> web.Response:
        """CORS preflight: any origin, any method of the API, the headers asked for."""
        asked = request.headers.get("Access-Control-Request-Headers", "")
        headers = {**CORS, "Access-Control-Allow-Headers": asked} if asked else dict(CORS)
        return web.Response(status=200, headers=headers)

    def _events(self, query: forms.Params) -> Json:
        kind = query.get("type")
        events = self.store.events
        if isinstance(kind, str):
            # Stripe accepts `*` wildcards in the type filter (payment_intent.*).
            prefix = kind[:-1] if kind.endswith("*") else None
            events = {
                k: e
                for k, e in events.items()
                if (e["type"] == kind if prefix is None else e["type"].startswith(prefix))
            }
        return paginate(events, {k: v for k, v in query.items() if k != "type"}, "/v1/events")

    def _event(self, event_id: str) -> Json:
        event = self.store.events.get(event_id)
        if event is None:
            raise StripeError(
                404, f"No such event: '{event_id}'", code="resource_missing", param="id"
            )
        return event

    # ---- pages a customer's browser opens ----------------------------------------------------

    async def voucher(self, request: web.Request) -> web.Response:
        intent_id = request.match_info["id"]
        pi = self.store.intents.get(intent_id)
        voucher = self.store.vouchers.get(intent_id)
        if pi is None or voucher is None:
            return web.Response(status=404, text="Ficha no encontrada", content_type="text/html")
        page = oxxo.voucher_page(
            number=voucher.number,
            amount=pi["amount"],
            currency=pi["currency"],
            expires_after=voucher.expires_after,
            state=voucher.state,
        )
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    async def challenge(self, request: web.Request) -> web.Response:
        intent_id = html.escape(request.match_info["id"])
        if request.match_info["id"] not in self.store.challenges:
            return web.Response(status=404, text="No challenge pending", content_type="text/html")
        page = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<title>3D Secure 2 Test Page</title></head><body><h1>3D Secure 2 Test Page</h1>"
            f'<form method="post" action="/3ds/{intent_id}/complete">'
            '<button id="complete" type="submit">Complete authentication</button></form>'
            f'<form method="post" action="/3ds/{intent_id}/fail">'
            '<button id="fail" type="submit">Fail authentication</button></form>'
            "</body></html>"
        )
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    async def challenge_result(self, request: web.Request) -> web.Response:
        intent_id = request.match_info["id"]
        ok = request.match_info["result"] == "complete"
        try:
            pi = self.payments.complete_3ds(intent_id, ok=ok)
        except (ControlError, StripeError):
            return web.Response(status=409, text="No challenge pending", content_type="text/html")
        return_url = self.store.intents[intent_id].get("_return_url")
        if return_url:
            query = urlencode(
                {
                    "payment_intent": pi["id"],
                    "payment_intent_client_secret": pi["client_secret"],
                    "redirect_status": "succeeded" if ok else "failed",
                }
            )
            separator = "&" if "?" in return_url else "?"
            raise web.HTTPSeeOther(f"{return_url}{separator}{query}")
        status = public(pi)["status"]
        if "text/html" in request.headers.get("Accept", ""):
            # A browser: Stripe.js shows this page in its modal and waits for its message.
            return web.Response(
                text=stripejs.challenge_done(ok), content_type="text/html", charset="utf-8"
            )
        return web.Response(text=json.dumps({"status": status}), content_type="application/json")
