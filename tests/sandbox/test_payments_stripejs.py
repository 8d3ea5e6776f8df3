"""The simulator's Stripe.js stand-in driven in a real Chromium, from a shop page of another origin
under the strict Content-Security-Policy Stripe documents (its script, frames and API only): the
card Element in the simulator's iframe, confirmCardPayment's results for a good card, a declined
one and 3-D Secure completed and failed, and the card number reaching only the simulator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Request

from tests.sandbox.payments_fixtures import Harness, harness

PK = "pk_test_contract_stripejs_0000"
SHOP_JS = """
document.addEventListener("DOMContentLoaded", function () {
  var shop = document.getElementById("shop");
  var stripe = Stripe(shop.dataset.key, { locale: "es-419" });
  var card = stripe.elements().create("card", { style: { base: { fontSize: "16px" } } });
  card.mount("#card");
  card.on("ready", function () { shop.dataset.ready = "yes"; });
  card.on("change", function (e) {
    document.getElementById("change").textContent = JSON.stringify(e);
  });
  document.getElementById("pay").addEventListener("click", function () {
    stripe.confirmCardPayment(shop.dataset.secret, { payment_method: { card: card } })
      .then(function (r) { document.getElementById("result").textContent = JSON.stringify(r); });
  });
});
"""


@dataclass
class Shop:
    """A merchant's page: it holds the client_secret and the publishable key, never a card."""

    sim: str
    url: str = ""
    received: list[str] = field(default_factory=list)

    async def page(self, request: web.Request) -> web.Response:
        self.received.append(request.path_qs + (await request.text()))
        policy = (
            "default-src 'self'; "
            f"script-src 'self' {self.sim}; frame-src {self.sim}; connect-src 'self' {self.sim}; "
            "style-src 'self'; frame-ancestors 'none'"
        )
        html = (
            '<!doctype html><html lang="es-MX"><head><meta charset="utf-8"><title>Tienda</title>'
            f'<script src="{self.sim}/v3/" defer></script><script src="/shop.js" defer></script>'
            f'</head><body><main id="shop" data-key="{PK}" '
            f'data-secret="{request.query["secret"]}"><div id="card"></div>'
            '<button id="pay" type="button">Pagar</button>'
            '<pre id="change"></pre><pre id="result"></pre></main></body></html>'
        )
        return web.Response(
            text=html, content_type="text/html", headers={"Content-Security-Policy": policy}
        )

    async def script(self, request: web.Request) -> web.Response:
        self.received.append(request.path_qs)
        return web.Response(text=SHOP_JS, content_type="text/javascript")


@pytest.fixture
async def h() -> AsyncIterator[Harness]:
    async with harness(publishable_key=PK) as value:
        yield value


@pytest.fixture
async def shop(h: Harness) -> AsyncIterator[Shop]:
    value = Shop(h.sim.url)
    app = web.Application()
    app.router.add_get("/", value.page)
    app.router.add_get("/shop.js", value.script)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    value.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield value
    await runner.cleanup()


@dataclass
class Checkout:
    page: Page
    sent: list[tuple[str, str]]  # every request the browser made: URL and body
    violations: list[str]

    def card(self, name: str) -> Any:
        frame = self.page.frame_locator("iframe[title='Campo seguro para los datos de la tarjeta']")
        return frame.locator(f"[autocomplete={name}]")

    async def type_card(self, number: str, expiry: str = "12 / 34", cvc: str = "123") -> None:
        await self.card("cc-number").fill(number)
        await self.card("cc-exp").fill(expiry)
        await self.card("cc-csc").fill(cvc)

    async def pay(self) -> None:
        await self.page.locator("#result").evaluate("e => e.textContent = ''")
        await self.page.click("#pay")

    async def result(self) -> dict[str, Any]:
        shown = self.page.locator("#result:not(:empty)")
        await shown.wait_for(timeout=10_000)
        value: dict[str, Any] = json.loads(await shown.inner_text())
        return value

    async def change(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(await self.page.locator("#change").inner_text())
        return value


async def checkout(browser: Browser, shop: Shop, client_secret: str) -> Checkout:
    page = await browser.new_page()
    sent: list[tuple[str, str]] = []
    violations: list[str] = []

    def record(request: Request) -> None:
        sent.append((request.url, request.post_data or ""))

    page.on("request", record)
    page.on(
        "console", lambda m: violations.append(m.text) if "Content Security" in m.text else None
    )
    await page.goto(f"{shop.url}/?secret={client_secret}")
    await page.wait_for_selector("#shop[data-ready=yes]", timeout=10_000)
    return Checkout(page, sent, violations)


async def new_intent(h: Harness) -> Any:
    return await h.call(
        h.client.v1.payment_intents.create,
        params={"amount": 150_000, "currency": "mxn", "payment_method_types": ["card"]},
    )


async def test_a_good_card_is_paid_and_its_number_reaches_only_the_simulator(
    h: Harness, shop: Shop, browser: Browser
) -> None:
    intent = await new_intent(h)
    c = await checkout(browser, shop, intent.client_secret)
    await c.type_card("4242 4242 4242 4242")
    assert (await c.change())["complete"] is True
    assert (await c.change())["brand"] == "visa"
    await c.pay()
    result = await c.result()
    assert result["paymentIntent"]["id"] == intent.id
    assert result["paymentIntent"]["status"] == "succeeded"
    assert "error" not in result
    assert (await h.call(h.client.v1.payment_intents.retrieve, intent.id)).status == "succeeded"
    carrying = [url for url, body in c.sent if "4242424242424242" in body]
    assert carrying == [f"{h.sim.url}/v1/payment_methods"]
    assert not any("4242" in r for r in shop.received)
    assert c.violations == []


async def test_a_declined_card_and_mistakes_in_the_field(
    h: Harness, shop: Shop, browser: Browser
) -> None:
    intent = await new_intent(h)
    c = await checkout(browser, shop, intent.client_secret)
    # An incomplete card is refused in the browser, before any call, as Stripe.js does.
    await c.type_card("4242 4242", expiry="", cvc="")
    await c.pay()
    error = (await c.result())["error"]
    assert (error["type"], error["code"]) == ("validation_error", "incomplete_number")
    assert error["message"] == "El número de tu tarjeta está incompleto."
    # A number that fails the check digit is flagged as it is typed.
    await c.type_card("4242 4242 4242 4241")
    change = await c.change()
    assert change["complete"] is False
    assert change["error"]["code"] == "invalid_number"
    assert change["error"]["message"] == "El número de tu tarjeta no es válido."
    await c.type_card("4000 0000 0000 0002")
    await c.pay()
    error = (await c.result())["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert error["message"] == "Your card was declined."
    assert error["payment_intent"]["status"] == "requires_payment_method"
    await h.receiver.wait_for("payment_intent.payment_failed", intent.id)
    assert c.violations == []


@pytest.mark.parametrize("passes", [True, False], ids=["completed", "failed"])
async def test_3d_secure_in_the_modal(
    h: Harness, shop: Shop, browser: Browser, passes: bool
) -> None:
    intent = await new_intent(h)
    c = await checkout(browser, shop, intent.client_secret)
    await c.type_card("4000 0027 6000 3184")
    await c.pay()
    modal = c.page.get_by_role("dialog", name="Verificación de tu banco")
    await modal.wait_for(timeout=10_000)
    bank = c.page.frame_locator("iframe[title='Verificación 3-D Secure de tu banco']")
    button = "Complete authentication" if passes else "Fail authentication"
    await bank.get_by_role("button", name=button).click()
    result = await c.result()
    assert await modal.count() == 0
    if passes:
        assert result["paymentIntent"]["status"] == "succeeded"
        await h.receiver.wait_for("payment_intent.succeeded", intent.id)
    else:
        error = result["error"]
        assert error["code"] == "payment_intent_authentication_failure"
        assert error["payment_intent"]["status"] == "requires_payment_method"
        await h.receiver.wait_for("payment_intent.payment_failed", intent.id)
    assert c.violations == []
