"""The payments harness: the Stripe simulator, and the API served by uvicorn on a loopback port
so the simulator's signed webhooks reach it over HTTP. Tests drive the same app in process."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import stripe
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from permisos_sandbox.payments import PaymentsConfig, PaymentsSimulator, sign
from tests.api.conftest import APPLICATION, ROOT, Api, User, sql

API_KEY = "sk_test_permisos_api_payments"
PUBLISHABLE_KEY = "pk_test_permisos_api_payments"
WEBHOOK_SECRET = "whsec_permisos_api_payments"
UNREACHABLE = "http://127.0.0.1:9/v1/webhooks/stripe"  # discard port: nothing listens

T = TypeVar("T")


@dataclass
class Pay:
    api: Api
    app: FastAPI
    sim: PaymentsSimulator
    url: str  # the API over HTTP (uvicorn)
    stripe: stripe.StripeClient  # for tests that act as someone else talking to Stripe
    _server: uvicorn.Server
    _thread: threading.Thread

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/v1/webhooks/stripe"

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        return sql(self.api.settings, query, *params)

    async def new_application(self, user: User, **changes: Any) -> str:
        r = await user.client.post(
            "/v1/applications", json={**APPLICATION, **changes}, headers=user.bearer()
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    async def pay(self, user: User, application_id: str, **body: Any) -> httpx.Response:
        return await user.client.post(
            f"/v1/applications/{application_id}/payments", json=body, headers=user.bearer()
        )

    async def application(self, user: User, application_id: str) -> dict[str, Any]:
        r = await user.client.get(f"/v1/applications/{application_id}", headers=user.bearer())
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def status_becomes(self, user: User, application_id: str, status: str) -> None:
        async def check() -> bool:
            return (await self.application(user, application_id))["status"] == status

        await eventually(check)

    def events_for(self, intent_id: str) -> list[dict[str, Any]]:
        """Every event the simulator emitted for an intent, oldest first."""
        return [
            e
            for e in self.sim.store.events.values()
            if e["data"]["object"].get("id") == intent_id
            or e["data"]["object"].get("payment_intent") == intent_id
        ]

    async def post_event(
        self, event: dict[str, Any], *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None
    ) -> httpx.Response:
        payload = json.dumps(event)
        return await self.deliver(payload, sign(payload, secret, timestamp))

    async def deliver(self, payload: str | bytes, signature: str | None) -> httpx.Response:
        """A POST to the webhook endpoint with this body and Stripe-Signature (None: none)."""
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        async with httpx.AsyncClient() as http:
            return await http.post(self.webhook_url, content=payload, headers=headers)

    async def paid_voucher(self, user: User) -> tuple[str, dict[str, Any]]:
        """An application whose OXXO voucher was paid at the store, with webhooks off: its id and
        Stripe's `payment_intent.succeeded` event, for the test to deliver."""
        self.sim.configure_webhook(UNREACHABLE, WEBHOOK_SECRET)
        app_id = await self.new_application(user)
        r = await self.pay(user, app_id, method="oxxo")
        intent_id = r.json()["intent_id"]
        self.sim.pay_oxxo(intent_id)
        succeeded = next(e for e in self.events_for(intent_id) if e["type"].endswith(".succeeded"))
        return app_id, succeeded

    async def sim_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A synchronous SDK call, off the event loop the simulator runs on."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as http:
            return (await http.get(f"{self.url}/metrics")).text

    async def reconcile_command(self, *application_ids: str) -> dict[str, Any]:
        """`python -m permisos_api.reconcile --older-than-minutes 0 --application ID ...` as its
        CronJob runs it: a process of its own on the same database; its JSON summary."""
        env = {
            **os.environ,
            "PERMISOS_API_DATABASE_URL": self.api.settings.database_url,
            "PERMISOS_API_STRIPE_SECRET_KEY": API_KEY,
            "PERMISOS_API_STRIPE_API_BASE": self.sim.url,
            "PERMISOS_API_MAIL_OUTBOX_DIR": str(self.api.settings.mail_outbox_dir),
        }
        only = [arg for app_id in application_ids for arg in ("--application", app_id)]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "permisos_api.reconcile",
            "--older-than-minutes",
            "0",
            *only,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return summary

    def outbox_rows(self, application_id: str) -> list[tuple[Any, ...]]:
        return self.sql(
            "SELECT kind, dispatched_at FROM outbox WHERE application_id = %s", application_id
        )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def start(api: Api, **overrides: Any) -> Pay:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    sim = PaymentsSimulator(
        PaymentsConfig(
            api_key=API_KEY,
            publishable_key=PUBLISHABLE_KEY,
            webhook_url=f"{url}/v1/webhooks/stripe",
            webhook_secret=WEBHOOK_SECRET,
            retry_base_seconds=0.1,
            max_attempts=3,
            delivery_timeout_seconds=5,
            oxxo_test_delay_seconds=0.2,
        )
    )
    await sim.start()
    app = api.app(
        stripe_secret_key=SecretStr(API_KEY),
        stripe_api_base=sim.url,
        stripe_webhook_secret=SecretStr(WEBHOOK_SECRET),
        # The browser's Stripe.js: the simulator's stand-in.
        stripe_publishable_key=PUBLISHABLE_KEY,
        stripe_js_url=f"{sim.url}/v3/",
        price_carga_centavos=1_200_000,  # above OXXO's limit of 10,000.00 MXN
        **overrides,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    assert server.started
    client = stripe.StripeClient(API_KEY, base_addresses={"api": sim.url}, max_network_retries=0)
    return Pay(api, app, sim, url, client, server, thread)


async def stop(pay: Pay) -> None:
    pay._server.should_exit = True
    await asyncio.to_thread(pay._thread.join, 5)
    await pay.sim.stop()
